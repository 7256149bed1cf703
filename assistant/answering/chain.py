"""Question -> cited answer: the one LangChain chain behind every surface (CLI, chat, REST, widget, /v1).

The chain is a Runnable over `{"question", "history"?, "filters"?}`, composed as
`prepare | condense | retrieve | answer | cite`; `invoke`, `stream`, `astream` and `astream_events` all run
the same steps, and a `RunnableConfig` (callbacks, tags, run_name) reaches each of them, the retriever (a
`langchain_core` `BaseRetriever`) and the chat model included. Streamed chunks are dicts (`AddableDict`):

- `{"notices": [text]}`: the model server failed and the extractive engine answers instead (before its text);
- `{"delta": text}`: answer text as it is written (a notice means the text starts again);
- one last chunk with the `ask --json` fields `answer`, `refused`, `citations`, plus `support`,
  `unsupported`, `notice` and `result`, the `assistant.models.Answer` (whose `answer` replaces the streamed
  text: citations may be renumbered, or the checks may turn a reply into a refusal).

`invoke` returns those chunks added up: the last chunk's fields, `delta` (the text as streamed) and `notices`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig, RunnableGenerator, RunnableLambda
from langchain_core.runnables.config import run_in_executor
from langchain_core.runnables.utils import AddableDict

from assistant.answering.citations import Support, article_label, check_support, cite
from assistant.answering.conversation import follow_up_found, history_pairs, standalone_question
from assistant.answering.engines import get_engine
from assistant.answering.engines.base import Engine
from assistant.answering.engines.chat import is_refusal
from assistant.answering.question import NAMED_LABELS, Coverage, Question, analyse, coverage, mentions
from assistant.answering.retrieval import Filters, NewsRetriever, Retrieval, Retriever, retrieval_of
from assistant.answering.speech import Spoken, said_by, who_said
from assistant.config import Settings
from assistant.errors import AssistantError, EngineError
from assistant.index.archive import Archive
from assistant.models import Answer, Citation, Passage
from assistant.text.words import tokenize

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
RUN_NAME = "newsroom-assistant"
NOT_COVERED = "The articles I have do not cover this question, so I cannot answer it from them."
EMPTY_STORE = "The archive is empty: no articles have been ingested yet. Run `assistant ingest PATH` first."
PEOPLE = frozenset({"PERSON"})


@dataclass
class Event:
    """A streamed piece of an answer: kind 'delta' (text), 'notice' or 'answer' (the final Answer)."""

    kind: str
    text: str = ""
    answer: Answer | None = None


def events_of(chunk: dict[str, Any]) -> Iterator[Event]:
    """A chunk of the chain's stream as Events (notices first, then text, then the answer)."""
    for notice in chunk.get("notices") or []:
        yield Event("notice", notice)
    if chunk.get("delta"):
        yield Event("delta", chunk["delta"])
    if chunk.get("result") is not None:
        yield Event("answer", answer=chunk["result"])


def answer_fields(answer: Answer) -> dict[str, Any]:
    """The chain's last chunk: the `ask --json` fields, the checks' verdict and the Answer itself."""
    return {**answer.to_json(), **answer.flags(), "result": answer}


def check_question(question: str | None) -> str:
    """The question, stripped of control characters; a clear error for empty or oversized input."""
    text = "" if question is None else str(question)
    # Control characters (NUL, escapes, bidi overrides) are no question; format characters such as the
    # zero-width non-joiner are part of Persian words and stay.
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    if not "".join(ch for ch in text if not unicodedata.category(ch).startswith(("C", "Z"))).strip():
        raise AssistantError("the question is empty", "type a question about the news")
    q = " ".join(text.split())
    if len(q) > MAX_QUESTION_CHARS:
        raise AssistantError(f"the question is {len(q):,} characters long; the limit is {MAX_QUESTION_CHARS:,}",
                             "ask a shorter question")
    return q


@dataclass
class _Draft:
    """What the answer step hands to the cite step: reply text to check, or an answer already final."""

    text: str = ""
    passages: list[Passage] = field(default_factory=list)
    confidence: float = 0.0
    generative: bool = False
    notice: str | None = None
    final: Answer | None = None
    question: str = ""  # the standalone question the reply answers


async def iterate_in_thread(make: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """A blocking iterator driven from a worker thread, as an async iterator.

    The thread runs in a copy of the caller's context, so a chat model called inside sees the run's callbacks.
    When the consumer stops (a client disconnected, the task was cancelled), the iterator is closed in its own
    thread as soon as its current step returns: a streaming model call is closed at its next chunk.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone: nobody is listening any more
            stop.set()

    def work() -> None:
        iterator = make()
        try:
            for value in iterator:
                if stop.is_set():
                    break
                put(("value", value))
            put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, who raises it
            put(("error", e))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True,
                     name="assistant-answer").start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


async def call_in_thread(fn: Callable[[], Any]) -> Any:
    """`fn()` in a worker thread of its own, in a copy of the caller's context: a blocking model call (up to
    llm.timeout) must not hold one of the few threads of asyncio's shared default executor."""
    return [value async for value in iterate_in_thread(lambda: iter((fn(),)))][0]


class Assistant:
    """The archive, retriever, engines and the chain built over them; every surface asks through `chain`.

    Args:
        settings: all settings (answer engine, retrieval, llm...).
        archive: the process's archive to share (default: open the settings' store and keyword index).
        engine: an answer engine to use instead of `answer.engine`.
    """

    def __init__(self, settings: Settings, archive: Archive | None = None, engine: Engine | None = None):
        self.settings = settings
        self.archive = archive or Archive(settings)
        self.store, self.lexical = self.archive.store, self.archive.lexical
        self.retriever = Retriever(self.store, self.lexical, settings.retrieval)
        self._engine = engine
        self.on_answer: Callable[[Answer], None] | None = None  # called with every finished answer (serve counts)
        self.extractive = get_engine("extractive", settings, self.store.embedder.embed_memo)
        self.answer_chain: Runnable = (
            RunnableLambda(self._answer, afunc=self._aanswer, name="answer")
            | RunnableGenerator(self._cite, self._acite, name="cite")
        )
        self.chain: Runnable = (
            RunnableLambda(self._prepare, name="prepare")
            | RunnableLambda(self._condense, afunc=self._acondense, name="condense")
            | RunnableLambda(self._retrieve, name="retrieve")
            | self.answer_chain
        ).with_config(run_name=RUN_NAME)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = get_engine(self.settings.answer.engine, self.settings, self.store.embedder.embed_memo)
        return self._engine

    def news_retriever(self, filters: dict[str, Any] | Filters | None = None, k: int | None = None) -> NewsRetriever:
        """The archive as a LangChain retriever (Documents with our metadata and exact offsets)."""
        if not isinstance(filters, Filters):
            filters = Filters.from_dict(filters)
        return NewsRetriever(retriever=self.retriever, filters=filters, k=k)

    # ---- the surfaces' calls: all through self.chain ----

    def ask(self, question: str, history: list[tuple[str, str]] | None = None,
            filters: dict[str, Any] | None = None, config: RunnableConfig | None = None) -> Answer:
        """The whole answer at once (`chain.invoke`)."""
        return self.chain.invoke(_inputs(question, history, filters), config)["result"]

    def stream(self, question: str, history: list[tuple[str, str]] | None = None,
               filters: dict[str, Any] | None = None, config: RunnableConfig | None = None) -> Iterator[Event]:
        """`chain.stream` as Events: text deltas as they come, maybe a 'notice', then one 'answer'."""
        for chunk in self.chain.stream(_inputs(question, history, filters), config):
            yield from events_of(chunk)

    def answer_retrieval(self, question: str, retrieval: Retrieval) -> Answer:
        """Answer from passages already retrieved (the eval harness retrieves once for both uses)."""
        q = check_question(question)
        return self.answer_chain.invoke({"question": q, "standalone": q, "history": [],
                                         "retrieval": retrieval})["result"]

    # ---- the chain's steps ----

    def _prepare(self, x: dict[str, Any] | str) -> dict[str, Any]:
        """Check the question, keep the last turns, check the filters, see whether there is anything to ask."""
        if not isinstance(x, dict):
            x = {"question": x}
        filters = x.get("filters") or None
        Filters.from_dict(filters)  # bad dates fail here, before anything is streamed
        return {"question": check_question(x.get("question")), "history": history_pairs(x.get("history")),
                "filters": filters, "empty": self.store.is_empty()}

    def _condense(self, x: dict[str, Any]) -> dict[str, Any]:
        """A follow-up rewritten as a standalone question: by the chat model when there is one, else by rule."""
        standalone, notices = standalone_question(x["question"], x["history"]), []
        if not x["empty"] and x["history"]:
            try:
                standalone = self.engine.condense(x["question"], x["history"]) or standalone
            except EngineError as e:
                # The server just failed; do not make the journalist wait for it a second time.
                notices.append(f"{e.message}; showing the extractive answer instead")
                log.warning(notices[-1])
        return {**x, "standalone": standalone, "notices": notices, "fallback": bool(notices)}

    async def _acondense(self, x: dict[str, Any]) -> dict[str, Any]:
        return await call_in_thread(lambda: self._condense(x))

    def _retrieve(self, x: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        """The archive's passages for the standalone question, through the LangChain retriever."""
        documents = [] if x["empty"] else self.news_retriever(x["filters"]).invoke(x["standalone"], config)
        return {**x, "documents": documents}

    def _answer(self, x: dict[str, Any]) -> Iterator[AddableDict]:
        """Refuse, or stream the engine's text; the last chunk is a draft for the cite step."""
        notices = list(x.get("notices") or [])
        if notices:
            yield AddableDict(notices=notices)
        if x.get("empty"):
            yield AddableDict(delta=EMPTY_STORE)
            yield AddableDict(draft=_Draft(final=Answer(EMPTY_STORE, True, notice="empty store")))
            return
        retrieval = x.get("retrieval") or retrieval_of(x["documents"])
        passages, question, history = retrieval.passages, x["standalone"], x.get("history") or None
        notice = "; ".join(notices) or None
        if history and not follow_up_found(x["question"], history, passages):
            # The follow-up's own words are in none of the passages: what was found is the previous story.
            yield from self._refusal(passages, notice)
            return
        asked, most = analyse(question), self.settings.answer.max_sentences
        covered = coverage(asked, [f"{p.title}\n{p.text}" for p in passages])
        if not covered.refuse:  # "What did X say about Y?": X's own quotes, whatever the retrieval (speech.py)
            spoken = said_by(asked, self.archive.quotes, self.store, most, passages,
                             Filters.from_dict(x.get("filters")))
            if spoken is not None:
                yield from self._spoken(spoken, passages, notice, covered)
                return
        if not tokenize(question) or retrieval.confidence < self.settings.answer.min_confidence:
            # Weak evidence: refuse before any model is asked, so it cannot answer from memory (saying which
            # name of the question no passage mentions, when one is missing).
            yield from self._refusal(passages, notice, covered.sentence() if covered.refuse else "")
            return
        if covered.refuse:
            # A person, organisation or place the question names is in none of the passages: whatever they
            # say, it is not about what was asked (see `question.Coverage` for when a part is still answered).
            yield from self._refusal(passages, notice, covered.sentence())
            return
        spoken = who_said(asked, passages, self.archive.quotes, most)  # "Who said / condemned ...?"
        if spoken is not None:
            yield from self._spoken(spoken, passages, notice, covered)
            return
        engine = self.extractive if x.get("fallback") else self.engine
        text = ""
        try:
            for delta in engine.stream(question, passages, history):
                text += delta
                yield AddableDict(delta=delta)
        except EngineError as e:
            notice = f"{e.message}; showing the extractive answer instead"
            log.warning(notice)
            yield AddableDict(notices=[notice])
            engine, text = self.extractive, ""
            for delta in engine.stream(question, passages, history):
                text += delta
                yield AddableDict(delta=delta)
        if not text.strip():
            yield from self._refusal(passages, notice)
            return
        yield AddableDict(draft=_Draft(text, passages, retrieval.confidence, engine.generative, notice, None,
                                       question))

    async def _aanswer(self, x: dict[str, Any]) -> AsyncIterator[AddableDict]:
        # The engines are blocking; a worker thread runs them, and stops them when the consumer goes away.
        async for chunk in iterate_in_thread(lambda: self._answer(x)):
            yield chunk

    def _cited_chunk(self, chunk: dict[str, Any]) -> list[AddableDict]:
        """What the cite step makes of one chunk: its text and notices as they are, a draft as the checked,
        cited answer."""
        rest = AddableDict({k: v for k, v in chunk.items() if k != "draft"})
        out = [rest] if rest else []
        if chunk.get("draft") is not None:
            out.append(AddableDict(answer_fields(self._finish(chunk["draft"]))))
        return out

    def _cite(self, chunks: Iterator[dict[str, Any]]) -> Iterator[AddableDict]:
        for chunk in chunks:
            yield from self._cited_chunk(chunk)

    async def _acite(self, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[AddableDict]:
        async for chunk in chunks:
            if chunk.get("draft") is not None:  # the support check embeds sentences: off the event loop
                cited = await run_in_executor(None, self._cited_chunk, chunk)
            else:
                cited = self._cited_chunk(chunk)
            for out in cited:
                yield out

    def _finish(self, draft: _Draft) -> Answer:
        """The answer a draft becomes, whichever surface asked: the one place every answer passes (`on_answer`)."""
        answer = draft.final if draft.final is not None else self._checked(draft)
        if self.on_answer is not None:
            self.on_answer(answer)
        return answer

    def _checked(self, draft: _Draft) -> Answer:
        """The citation check and the weak-match caution on a draft reply."""
        answer = self._cited(draft.text, draft.passages, draft.generative, draft.question)
        weak = None
        if not answer.refused and draft.confidence < self.settings.answer.caution_below:
            weak = (f"the articles match this question only weakly (retrieval confidence "
                    f"{draft.confidence:.2f}); check the quoted passages before relying on the answer")
        answer.notice = "; ".join(x for x in (draft.notice, answer.notice, weak) if x) or None
        return answer

    def _cited(self, text: str, passages: list[Passage], generative: bool, question: str = "") -> Answer:
        """Map [n] to citations, drop bogus ones, check each sentence against its sources and the question's
        named entities against the cited passages (`_covered`)."""
        cited = cite(text, passages)
        flags = []
        if cited.bogus:
            flags.append(f"removed citations to passages that do not exist: "
                         f"{', '.join(f'[{n}]' for n in sorted(set(cited.bogus)))}")
        if generative and is_refusal(cited.text):
            return self._refusal_answer(passages, "the model said the passages do not answer the question")
        if not cited.citations:
            if generative:  # uncited model text is never shown as an answer
                return self._refusal_answer(passages, "the model's reply cited no passage, so it is not shown")
            return Answer(cited.text, True, [], passages)
        support = check_support(cited, self.store.embedder.embed_memo)
        asked = analyse(question) if question else None
        if asked is not None and asked.named:
            # The cited passages must name the question's people (a quote from one person is never an answer
            # about another); a model's reply, which may cite any passage for anything, also its
            # organisations and places. The extractive engine's sentences come from passages that were
            # checked as a whole in `_answer`: a country or body named in the article's other passages is the
            # story's setting ("in the US"), and an answer sentence need not repeat it.
            labels = NAMED_LABELS if generative else PEOPLE
            covered = coverage(asked, [f"{c.title}\n{c.passage or c.quote}" for c in cited.citations], labels)
            absent = coverage(asked, [f"{p.title}\n{p.text}" for p in passages], labels)
            if covered.refuse:
                return self._refusal_answer(passages, "the cited passages do not mention what the question names",
                                            covered.sentence(absent))
            _entity_support(asked, cited.citations, support)
        else:
            covered = absent = Coverage()
        answer = Answer(cited.text, False, cited.citations, passages, support=round(support.score, 3),
                        unsupported=support.unsupported)
        if support.unsupported:
            flags.append(f"{len(support.unsupported)} sentence(s) not supported by the passages they cite")
        if support.addressed:
            flags.append(f"{', '.join(f'[{n}]' for n in support.addressed)} also contain"
                         f"{'s' if len(support.addressed) == 1 else ''} text addressed to the reader or an assistant "
                         f"(instructions, a request for a token or login): it is article text, never an instruction "
                         f"to follow, and is not shown as support")
        if covered.missing:  # a part of the question is answered: say which part is not
            missing = covered.sentence(absent)
            answer.answer = f"{answer.answer} {missing}"
            flags.append(f"the answer covers only part of the question: {missing}")
        answer.notice = "; ".join(flags) or None
        return answer

    def _refusal_answer(self, passages: list[Passage], notice: str | None = None, missing: str = "") -> Answer:
        """The refusal: what the articles do not mention when that is the reason, then the nearest articles."""
        text = f"{missing} {NOT_COVERED}" if missing else NOT_COVERED
        if passages:
            articles: dict[str, Passage] = {}
            for p in passages:  # each article once, in rank order
                articles.setdefault(p.article_id, p)
            nearest = "; ".join(article_label(p) for p in list(articles.values())[:3])
            text += f" The nearest articles: {nearest}."
        return Answer(text, True, [], passages, notice=notice)

    def _spoken(self, spoken: Spoken, passages: list[Passage], notice: str | None,
                covered: Coverage) -> Iterator[AddableDict]:
        """A reply made of quotes (speech.py); the part of the question no passage covers named after it."""
        if spoken.refused:
            yield from self._refusal(spoken.passages or passages, notice, spoken.text)
            return
        text, flags = spoken.text, [notice] if notice else []
        if covered.missing:
            text = f"{text} {covered.sentence()}"
            flags.append(f"the answer covers only part of the question: {covered.sentence()}")
        yield AddableDict(delta=text)
        yield AddableDict(draft=_Draft(final=Answer(text, False, spoken.citations, spoken.passages, support=1.0,
                                                    notice="; ".join(flags) or None)))

    def _refusal(self, passages: list[Passage], notice: str | None = None,
                 missing: str = "") -> Iterator[AddableDict]:
        answer = self._refusal_answer(passages, notice, missing)
        yield AddableDict(delta=answer.answer)
        yield AddableDict(draft=_Draft(final=answer))


def _entity_support(asked: Question, citations: list[Citation], support: Support) -> None:
    """A reply sentence naming one of the question's people, organisations or places is not supported by
    cited passages that never mention it (both engines; it matters for the generative one, which paraphrases)."""
    by_n = {c.n: c for c in citations}
    for sentence, nums, _ in support.sentences:
        for e in asked.named:
            cited_texts = [f"{by_n[n].title}\n{by_n[n].passage or by_n[n].quote}" for n in nums if n in by_n]
            if mentions(e, sentence) and not any(mentions(e, t) for t in cited_texts):
                if sentence not in support.unsupported:
                    support.unsupported.append(sentence)


def _inputs(question: str, history: Any, filters: dict[str, Any] | None) -> dict[str, Any]:
    return {"question": question, "history": history or [], "filters": filters}
