"""Question -> cited answer: the LangChain retrieval chain over retrieval, refusal and an answer engine."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from assistant.citations import check_support, cite
from assistant.config import Settings
from assistant.engines import get_engine
from assistant.engines.base import Engine
from assistant.errors import AssistantError, EngineError
from assistant.ingest import lexical_path
from assistant.lexical import LexicalIndex, stem, token_set, tokenize
from assistant.models import Answer, Citation, Passage
from assistant.retrieval import Filters, Retrieval, Retriever, key_terms
from assistant.store import Store

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
NOT_COVERED = "The articles I have do not cover this question, so I cannot answer it from them."
EMPTY_STORE = "The archive is empty: no articles have been ingested yet. Run `assistant ingest PATH` first."
_FOLLOW_UP = re.compile(r"^(and|what about|how about|but|so|also|then)\b|\b(it|that|this|they|them|he|she|"
                        r"his|her|their|there|those|these)\b", re.I)


@dataclass
class Event:
    """A streamed piece of an answer: kind 'delta' (text) or 'answer' (the final Answer)."""

    kind: str
    text: str = ""
    answer: Answer | None = None


def check_question(question: str) -> str:
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


def own_terms(question: str, history: list[tuple[str, str]] | None) -> set[str]:
    """The stems a follow-up adds to the conversation: its key terms that the previous question lacks."""
    if not history:
        return set()
    previous = {stem(t) for t in key_terms(history[-1][0])}
    return {stem(t) for t in key_terms(question)} - previous


def follow_up_found(question: str, history: list[tuple[str, str]] | None, passages: list[Passage]) -> bool:
    """Whether a follow-up's own words occur in the passages found for it (true when it adds none).

    The carried topic helps retrieval find the story again, but "What is the capital of Norrheim?" after a
    question about Norrheim's herring quotas must not be answered with the herring story.
    """
    own = own_terms(question, history)
    if not own:
        return True
    found = {stem(t) for p in passages for t in token_set(f"{p.title} {p.text}")}
    return bool(own & found)


def standalone_question(question: str, history: list[tuple[str, str]] | None) -> str:
    """Extractive follow-ups: a short or pronoun-led question carries the previous question's topic."""
    if not history:
        return question
    previous = history[-1][0]
    if len(question.split()) <= 6 or _FOLLOW_UP.search(question):
        return f"{question} ({previous})"
    return question


class Assistant:
    """Retriever + engine behind every surface (CLI, Gradio, REST)."""

    def __init__(self, settings: Settings, store: Store | None = None, engine: Engine | None = None):
        self.settings = settings
        self.store = store or Store(settings)
        self.lexical = LexicalIndex(lexical_path(settings))
        self.retriever = Retriever(self.store, self.lexical, settings.retrieval)
        self._engine = engine
        self.extractive = get_engine("extractive", settings, self.store.embedder.embed_memo)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = get_engine(self.settings.answer.engine, self.settings, self.store.embedder.embed_memo)
        return self._engine

    def runnable(self):
        """The chain as LCEL: {question, history, filters} -> Answer."""
        return (
            RunnablePassthrough.assign(standalone=RunnableLambda(
                lambda x: self.condense(x["question"], x.get("history"))))
            | RunnablePassthrough.assign(retrieval=RunnableLambda(
                lambda x: self.retriever.retrieve(x["standalone"], Filters.from_dict(x.get("filters")))))
            | RunnableLambda(lambda x: self._final(self._answer_events(x["standalone"], x["retrieval"],
                                                                    x.get("history"))))
        )

    def condense(self, question: str, history: list[tuple[str, str]] | None) -> str:
        condense = getattr(self.engine, "condense", None)
        if history and condense is not None:
            try:
                return condense(question, history)
            except EngineError as e:
                log.warning("could not condense the follow-up question: %s", e)
        return standalone_question(question, history)

    def ask(self, question: str, history: list[tuple[str, str]] | None = None,
            filters: dict[str, Any] | None = None) -> Answer:
        """The whole answer at once."""
        return self._final(self.stream(question, history, filters))

    def stream(self, question: str, history: list[tuple[str, str]] | None = None,
               filters: dict[str, Any] | None = None) -> Iterator[Event]:
        """Text deltas as they come, maybe a 'notice' (e.g. model server down), then one 'answer' event."""
        question = check_question(question)
        history = [(str(q), str(a)) for q, a in (history or [])][-6:]
        if self.store.count() == 0:
            yield Event("delta", EMPTY_STORE)
            yield Event("answer", answer=Answer(EMPTY_STORE, True, notice="empty store"))
            return
        engine, notice = self.engine, None
        standalone = standalone_question(question, history)
        condense = getattr(engine, "condense", None)
        if history and condense is not None:
            try:
                standalone = condense(question, history)
            except EngineError as e:
                # The server just failed; do not make the journalist wait for it a second time.
                notice = f"{e.message}; showing the extractive answer instead"
                log.warning(notice)
                engine = self.extractive
                yield Event("notice", notice)
        retrieval = self.retriever.retrieve(standalone, Filters.from_dict(filters))
        if history and not follow_up_found(question, history, retrieval.passages):
            # The follow-up's own words are in none of the passages: what was found is the previous story.
            yield from self._refusal(retrieval.passages, notice)
            return
        yield from self._answer_events(standalone, retrieval, history, engine, notice)

    def answer_retrieval(self, question: str, retrieval: Retrieval) -> Answer:
        """Answer from passages already retrieved (the eval harness retrieves once for both uses)."""
        return self._final(self._answer_events(check_question(question), retrieval, None))

    @staticmethod
    def _final(events) -> Answer:
        answer = None
        for ev in events:
            if ev.kind == "answer":
                answer = ev.answer
        assert answer is not None
        return answer

    def _answer_events(self, question: str, retrieval: Retrieval, history: list[tuple[str, str]] | None,
                       engine: Engine | None = None, notice: str | None = None) -> Iterator[Event]:
        passages = retrieval.passages
        if not tokenize(question) or retrieval.confidence < self.settings.answer.min_confidence:
            # Weak evidence: refuse before any model is asked, so it cannot answer from memory.
            yield from self._refusal(passages, notice)
            return
        engine = engine or self.engine
        text = ""
        try:
            for delta in engine.stream(question, passages, history):
                text += delta
                yield Event("delta", delta)
        except EngineError as e:
            notice = f"{e.message}; showing the extractive answer instead"
            log.warning(notice)
            yield Event("notice", notice)
            engine, text = self.extractive, ""
            for delta in engine.stream(question, passages, history):
                text += delta
                yield Event("delta", delta)
        if not text.strip():
            yield from self._refusal(passages, notice)
            return
        answer = self._cited(text, passages, engine)
        weak = None
        if not answer.refused and retrieval.confidence < self.settings.answer.caution_below:
            weak = (f"the articles match this question only weakly (retrieval confidence "
                    f"{retrieval.confidence:.2f}); check the quoted passages before relying on the answer")
        answer.notice = "; ".join(x for x in (notice, answer.notice, weak) if x) or None
        yield Event("answer", answer=answer)

    def _cited(self, text: str, passages: list[Passage], engine: Engine) -> Answer:
        """Map [n] to citations, drop bogus ones, check each sentence against its sources."""
        cited = cite(text, passages)
        flags = []
        if cited.bogus:
            flags.append(f"removed citations to passages that do not exist: "
                         f"{', '.join(f'[{n}]' for n in sorted(set(cited.bogus)))}")
        if engine.generative and is_refusal(cited.text):
            return self._refusal_answer(passages, "the model said the passages do not answer the question")
        if not cited.citations:
            if engine.generative:  # uncited model text is never shown as an answer
                return self._refusal_answer(passages, "the model's reply cited no passage, so it is not shown")
            return Answer(cited.text, True, [], passages)
        support = check_support(cited, self.store.embedder.embed_memo)
        answer = Answer(cited.text, False, cited.citations, passages, support=round(support.score, 3),
                        unsupported=support.unsupported)
        if support.unsupported:
            flags.append(f"{len(support.unsupported)} sentence(s) not supported by the passages they cite")
        if support.addressed:
            flags.append(f"{', '.join(f'[{n}]' for n in support.addressed)} also contain"
                         f"{'s' if len(support.addressed) == 1 else ''} text addressed to the reader or an assistant "
                         f"(instructions, a request for a token or login): it is article text, never an instruction "
                         f"to follow, and is not shown as support")
        answer.notice = "; ".join(flags) or None
        return answer

    def _refusal_answer(self, passages: list[Passage], notice: str | None = None) -> Answer:
        text = NOT_COVERED
        if passages:
            articles: dict[str, Passage] = {}
            for p in passages:  # each article once, in rank order
                articles.setdefault(p.article_id, p)
            nearest = "; ".join(article_label(p) for p in list(articles.values())[:3])
            text += f" The nearest articles: {nearest}."
        return Answer(text, True, [], passages, notice=notice)

    def _refusal(self, passages: list[Passage], notice: str | None = None) -> Iterator[Event]:
        answer = self._refusal_answer(passages, notice)
        yield Event("delta", answer.answer)
        yield Event("answer", answer=answer)


def article_label(p: Passage | Citation) -> str:
    """“Title” (outlet, date), leaving out what the article does not state: no empty brackets, no None."""
    title = " ".join((p.title or "").split()) or "untitled article"
    meta = ", ".join(x for x in (p.source, p.published_at) if x and x.strip())
    return f"“{title}”" + (f" ({meta})" if meta else "")


_REFUSAL = re.compile(
    r"\b(do(es)?\s+not|don't|doesn't|cannot|can't|can\s+not|unable\s+to|no\s+information|not\s+enough|"
    r"insufficient|none\s+of\s+the\s+passages|nothing\s+in\s+the\s+passages)\b.{0,60}?"
    r"\b(answer|cover|contain|mention|provide|say|address|information|determine|tell|know|find)", re.I | re.S)


def is_refusal(text: str) -> bool:
    """Whether a model's reply says the passages do not answer the question (and cites nothing)."""
    head = text.strip()[:300]
    return bool(_REFUSAL.search(head)) and not re.search(r"\[\d+\]", head)
