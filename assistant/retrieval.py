"""Question -> ranked passages: dense + BM25, fused, de-duplicated, reranked, diversified."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from assistant.config import RetrievalSettings
from assistant.errors import AssistantError
from assistant.lexical import LexicalIndex, tokenize
from assistant.models import Passage
from assistant.store import Store
from assistant.timeparse import TimeWindow, parse_sources, parse_time_window

log = logging.getLogger(__name__)


@dataclass
class Filters:
    """Restrictions a user (or the question itself) puts on retrieval."""

    date_from: str | None = None  # YYYY-MM-DD
    date_to: str | None = None
    sources: list[str] = field(default_factory=list)
    today: str | None = None  # the day the question is asked, for "this week"

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to", "today"):
            value = getattr(self, name)
            if value is None:
                continue
            try:  # a real calendar day: "2025-13-01" would otherwise crash retrieval
                date.fromisoformat(str(value)[:10])
            except ValueError as e:
                raise AssistantError(f"invalid {name.replace('_', ' ')} {value!r}: {e}",
                                     "give dates as YYYY-MM-DD") from e

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Filters:
        d = d or {}
        return cls(date_from=d.get("date_from"), date_to=d.get("date_to"),
                   sources=list(d.get("sources") or []), today=d.get("today"))


@dataclass
class Retrieval:
    """Ranked passages and how sure retrieval is that they answer the question (0..1)."""

    passages: list[Passage]
    confidence: float
    window: TimeWindow | None = None
    query_vector: np.ndarray | None = None


def _date_int(s: str | None) -> int | None:
    return int(s[:10].replace("-", "")) if s else None


def rrf(rankings: list[list[str]], weights: list[float], k: int = 60) -> dict[str, float]:
    """Weighted reciprocal-rank fusion of ranked id lists."""
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, weights):
        for rank, cid in enumerate(ranking):
            fused[cid] = fused.get(cid, 0.0) + w / (k + rank + 1)
    return fused


def key_terms(question: str) -> list[str]:
    """Content words of a question (names, numbers, rare words), as the keyword index tokenizes them."""
    return [t for t in dict.fromkeys(tokenize(question)) if len(t) > 2 or t.isdigit()]


_NORM = re.compile(r"\W+")


def normalized(text: str) -> str:
    return _NORM.sub(" ", text.lower()).strip()


class Retriever:
    """The retrieval pipeline over one store and its keyword index."""

    def __init__(self, store: Store, lexical: LexicalIndex, settings: RetrievalSettings):
        self.store = store
        self.lexical = lexical
        self.settings = settings
        self._known_sources: list[str] | None = None

    def known_sources(self) -> list[str]:
        if self._known_sources is None:
            self._known_sources = sorted({s for s in self.lexical.sources if s}) if len(self.lexical) else []
        return self._known_sources

    def retrieve(self, question: str, filters: Filters | None = None, k: int | None = None) -> Retrieval:
        s = self.settings
        filters = filters or Filters()
        k = k or s.k
        today = date.fromisoformat(filters.today) if filters.today else date.today()
        window = parse_time_window(question, today) if s.time_aware else None
        sources = list(filters.sources) or parse_sources(question, self.known_sources())
        d_from, d_to = _date_int(filters.date_from), _date_int(filters.date_to)

        where = _where(d_from, d_to, sources)
        qvec = self.store.embedder.embed([question])[0]
        dense = self.store.dense_search(qvec, s.dense_k, where)
        by_id = {p.chunk_id: p for p in dense}
        rankings, weights = [[p.chunk_id for p in dense]], [s.dense_weight]
        if s.hybrid:
            mask = self.lexical.mask(d_from, d_to, sources)
            lex = self.lexical.search(question, s.lexical_k, mask)
            rankings.append([cid for cid, _ in lex])
            weights.append(s.lexical_weight)
        fused = rrf(rankings, weights, s.rrf_k)
        order = sorted(fused, key=fused.get, reverse=True)
        missing = [cid for cid in order[: s.rerank_top * 2] if cid not in by_id]
        by_id.update(self.store.get_passages(missing))
        candidates = [by_id[c] for c in order if c in by_id]
        for p in candidates:
            p.score = fused[p.chunk_id]
        if s.dedupe:
            candidates = collapse_duplicates(candidates)
        if s.rerank:
            candidates = self.rerank(question, qvec, candidates[: s.rerank_top], window) + candidates[s.rerank_top:]
        passages = diversify(candidates, k, s.per_article)
        return Retrieval(passages, self.confidence(question, qvec, passages), window, qvec)

    def rerank(self, question: str, qvec: np.ndarray, passages: list[Passage],
               window: TimeWindow | None) -> list[Passage]:
        """Built-in reranker: dense similarity, coverage of the question's key terms, date window."""
        if not passages:
            return passages
        vectors = self.store.vectors([p.chunk_id for p in passages])
        sims = [float(vectors[p.chunk_id] @ qvec) if p.chunk_id in vectors else 0.0 for p in passages]
        terms = key_terms(question)
        w_from, w_to = window.as_ints() if window else (None, None)
        max_fused = max(p.score for p in passages) or 1.0
        for p, sim in zip(passages, sims):
            coverage = term_coverage(terms, p.title + " " + p.text)
            in_window = 0.0
            if window and p.published_at:
                d = _date_int(p.published_at)
                in_window = 1.0 if w_from <= d <= w_to else -0.5
            p.score = float(0.5 * sim + 0.35 * coverage + 0.15 * p.score / max_fused + 0.1 * in_window)
        return sorted(passages, key=lambda p: p.score, reverse=True)

    def confidence(self, question: str, qvec: np.ndarray, passages: list[Passage]) -> float:
        """How well the best passages match: dense similarity and key-term coverage (0..1)."""
        if not passages:
            return 0.0
        terms = key_terms(question)
        vectors = self.store.vectors([p.chunk_id for p in passages[:3]])
        sim = max((float(v @ qvec) for v in vectors.values()), default=0.0)
        coverage = max(term_coverage(terms, p.title + " " + p.text) for p in passages[:3])
        return max(0.0, min(1.0, 0.6 * sim + 0.4 * coverage))


def term_coverage(terms: list[str], text: str) -> float:
    """Share of key terms present in the text (longer, rarer-looking terms weigh more)."""
    if not terms:
        return 0.0
    have = set(tokenize(text))
    weights = [math.log(2 + len(t)) * (1.5 if t.isdigit() else 1.0) for t in terms]
    return sum(w for t, w in zip(terms, weights) if t in have) / sum(weights)


def collapse_duplicates(passages: list[Passage], containment: float = 0.8) -> list[Passage]:
    """Keep one copy of near-identical passages and of the articles they come from; record the copies' sources.

    Passages are compared by their word 4-grams: one whose 4-grams lie mostly (`containment`) inside a kept
    passage's is a copy, so a wire story run by two outlets with another dateline or byline collapses. An
    article holding a copy of a substantial (20+ words) passage of a better-ranked article is that story
    again: all its passages go, so one story is never cited as two sources.
    """
    kept: list[tuple[Passage, set[str]]] = []
    alias: dict[str, Passage] = {}  # copy's article id -> first passage of the article it copies
    for p in passages:
        words = normalized(p.text).split()
        grams = {" ".join(words[i:i + 4]) for i in range(max(1, len(words) - 3))}
        first = next((q for q, q_grams in kept
                      if len(grams & q_grams) >= containment * min(len(grams), len(q_grams))), None)
        if first is None:
            kept.append((p, grams))
        elif (first.article_id != p.article_id and len(words) >= 20 and p.article_id not in alias
              and first.article_id not in alias
              and all(q.article_id != p.article_id for q in alias.values())):  # no chains, no cycles
            alias[p.article_id] = first
    out = [p for p, _ in kept if p.article_id not in alias]
    for copy_id, original in alias.items():
        p = next(q for q in passages if q.article_id == copy_id)
        original.also_in.append({"article_id": p.article_id, "title": p.title, "source": p.source,
                                 "published_at": p.published_at, "url": p.url})
    return out


def diversify(passages: list[Passage], k: int, per_article: int) -> list[Passage]:
    """Top k passages with at most `per_article` from one article; fills up when too few articles."""
    counts: dict[str, int] = {}
    picked, rest = [], []
    for p in passages:
        if counts.get(p.article_id, 0) < per_article:
            counts[p.article_id] = counts.get(p.article_id, 0) + 1
            picked.append(p)
        else:
            rest.append(p)
        if len(picked) == k:
            return picked
    return picked + rest[: k - len(picked)]


def _where(d_from: int | None, d_to: int | None, sources: list[str]) -> dict | None:
    clauses: list[dict] = []
    if d_from is not None:
        clauses.append({"date_int": {"$gte": d_from}})
    if d_to is not None:
        clauses.append({"date_int": {"$lte": d_to}})
    if sources:
        clauses.append({"source": {"$in": sources}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class NewsRetriever(BaseRetriever):
    """LangChain face of the pipeline: passages as Documents (metadata carries the Passage)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    retriever: Any
    filters: Any = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        result = self.retriever.retrieve(query, self.filters)
        return [Document(page_content=p.text, metadata={"passage": p, "confidence": result.confidence})
                for p in result.passages]
