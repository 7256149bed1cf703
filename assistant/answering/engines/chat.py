"""The generative engine: any LangChain chat model (OpenAI-compatible endpoint or Ollama), streamed; and
`is_refusal`, whether its reply says the passages do not answer."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from assistant.answering.engines.base import Embed, Engine
from assistant.answering.prompts import load_prompt
from assistant.config import EngineName, LLMSettings, Settings
from assistant.errors import EngineError
from assistant.models import Passage

log = logging.getLogger(__name__)

PACKAGES = {"openai": "langchain-openai", "ollama": "langchain-ollama"}
_TAG = re.compile(r"<\s*/?\s*passages?\b[^>]*>", re.I)


def format_passages(passages: list[Passage]) -> str:
    """Passages numbered [n], each inside its <passage> tags: title, outlet, date and body alike.

    Every article field is data and gets the same escaping: tags are neutralised, so no field can close its
    block and speak as the user, and the one-line fields are kept on one line, so a title cannot start a
    fake "System:" line. Missing fields are left out.
    """
    blocks = []
    for n, p in enumerate(passages, 1):
        fields = [(name, " ".join(_data(value).split())) for name, value in
                  (("title", p.title), ("outlet", p.source), ("date", p.published_at)) if value and value.strip()]
        head = "".join(f"{name}: {value}\n" for name, value in fields)
        blocks.append(f'[{n}]\n<passage n="{n}">\n{head}\n{_data(p.text.strip())}\n</passage>')
    return "\n\n".join(blocks)


def _data(text: str) -> str:
    """Article text with passage tags neutralised (‹passage›): it can quote a tag, never close its block."""
    return _TAG.sub(lambda m: m.group().replace("<", "‹").replace(">", "›"), text)


def format_history(history: list[tuple[str, str]]) -> str:
    """Previous turns as 'Journalist:' / 'Assistant:' lines."""
    return "\n".join(f"Journalist: {q}\nAssistant: {a}" for q, a in history)


class ChatEngine(Engine):
    """Answers with a chat model told to cite the numbered passages; `condense` rewrites follow-ups.

    Args:
        name: 'openai' (any OpenAI-compatible endpoint) or 'ollama'.
        llm: the llm settings: endpoint, model, timeout, sampling and the prompts folder.
    """

    generative = True

    @classmethod
    def from_settings(cls, name: EngineName, settings: Settings, embed: Embed) -> ChatEngine:
        return cls(name, settings.llm)

    def __init__(self, name: str, llm: LLMSettings):
        self.name = name
        self.llm = llm
        folder = llm.prompts_dir or None
        self.system_prompt = load_prompt("answer_system", folder)
        self.user_prompt = load_prompt("answer_user", folder)
        self.condense_prompt = load_prompt("condense", folder)
        self.model = self._model(name, llm)

    @staticmethod
    def _model(name: str, llm: LLMSettings):
        try:
            if name == "openai":
                from langchain_openai import ChatOpenAI

                return ChatOpenAI(base_url=llm.base_url, api_key=llm.api_key, model=llm.model,
                                  timeout=llm.timeout, max_tokens=llm.max_tokens, temperature=llm.temperature,
                                  max_retries=llm.max_retries)
            if name == "ollama":
                from langchain_ollama import ChatOllama

                return ChatOllama(base_url=llm.ollama_base_url, model=llm.model, temperature=llm.temperature,
                                  num_predict=llm.max_tokens, client_kwargs={"timeout": llm.timeout})
        except ImportError as e:
            raise EngineError(f"the {name} engine needs the {PACKAGES[name]} package ({e.name} is missing)",
                              f"pip install {PACKAGES[name]}") from e
        raise EngineError(f"unknown chat engine {name!r}", "use 'openai' or 'ollama'")

    @property
    def endpoint(self) -> str:
        return self.llm.base_url if self.name == "openai" else self.llm.ollama_base_url

    def messages(self, question: str, passages: list[Passage]) -> list[tuple[str, str]]:
        """System prompt (rules) + user message (numbered, delimited passages and the question)."""
        return [("system", self.system_prompt.render()),
                ("user", self.user_prompt.render(passages=format_passages(passages), question=question))]

    def stream(self, question: str, passages: list[Passage],
               history: list[tuple[str, str]] | None = None) -> Iterator[str]:
        """Text deltas as the model sends them; any server failure becomes EngineError."""
        # History is not sent: the question was already condensed, and old answers would be unquoted claims.
        yield from self._stream(self.messages(question, passages))

    def condense(self, question: str, history: list[tuple[str, str]]) -> str:
        """A follow-up ("And China?") rewritten as a standalone question from the conversation."""
        prompt = self.condense_prompt.render(history=format_history(history[-3:]), question=question)
        text = "".join(self._stream([("user", prompt)])).strip().strip('"“”').strip()
        first = text.splitlines()[0].strip() if text else ""
        return first or question

    def _stream(self, messages: list[tuple[str, str]]) -> Iterator[str]:
        try:
            for chunk in self.model.stream(messages):
                text = chunk.content if isinstance(chunk.content, str) else "".join(
                    part.get("text", "") if isinstance(part, dict) else str(part) for part in chunk.content)
                if text:
                    yield text
        except EngineError:
            raise
        except Exception as e:  # noqa: BLE001 - every client/server failure must reach the user as EngineError
            raise self._error(e) from e

    def _error(self, e: Exception) -> EngineError:
        """A model-server failure as a message a journalist can act on."""
        where = f"the {self.name} model server at {self.endpoint}"
        url_setting = "llm.base_url" if self.name == "openai" else "llm.ollama_base_url"
        hint = f"check that the server is running and {url_setting} / llm.model are right"
        kind = type(e).__name__
        status = getattr(e, "status_code", None) or getattr(getattr(e, "response", None), "status_code", None)
        if "Timeout" in kind or "timed out" in str(e).lower():
            return EngineError(f"{where} did not answer within {self.llm.timeout:g}s",
                               "raise llm.timeout or use a smaller model")
        if "Connect" in kind or isinstance(e, ConnectionError):
            return EngineError(f"cannot reach {where}", hint)
        if status:
            return EngineError(f"{where} returned HTTP {status}: {_short(e)}", hint)
        log.debug("model server failure", exc_info=e)
        return EngineError(f"{where} sent a reply that could not be read ({kind}: {_short(e)})", hint)


def _short(e: Exception, limit: int = 160) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + "…"


_REFUSAL = re.compile(
    r"\b(do(es)?\s+not|don't|doesn't|cannot|can't|can\s+not|unable\s+to|no\s+information|not\s+enough|"
    r"insufficient|none\s+of\s+the\s+passages|nothing\s+in\s+the\s+passages)\b.{0,60}?"
    r"\b(answer|cover|contain|mention|provide|say|address|information|determine|tell|know|find)", re.I | re.S)


def is_refusal(text: str) -> bool:
    """Whether a model's reply says the passages do not answer the question (and cites nothing)."""
    head = text.strip()[:300]
    return bool(_REFUSAL.search(head)) and not re.search(r"\[\d+\]", head)
