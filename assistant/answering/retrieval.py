"""Question -> ranked passages: dense + BM25, fused, de-duplicated, reranked, diversified."""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from assistant.config import RetrievalSettings, TimeMode
from assistant.errors import AssistantError
from assistant.index.lexical import LexicalIndex
from assistant.index.store import Store
from assistant.models import Passage
from assistant.text.duplicates import COPY, is_copy, shingles
from assistant.text.timeparse import TimeWindow, date_int, parse_day, parse_sources, parse_time_window
from assistant.text.words import information, stem, token_set, tokenize

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
            try:  # a real day, kept as YYYY-MM-DD: "2025-13-01" refused, the ISO week date "2025-W23-2" read
                setattr(self, name, parse_day(value).isoformat())
            except AssistantError as e:
                raise AssistantError(f"invalid {name.replace('_', ' ')} {value!r}: {e.message}", e.hint) from e

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


class Retriever:
    """The retrieval pipeline over one store and its keyword index.

    Stages, each switchable in RetrievalSettings: dense + BM25 candidates fused by weighted RRF
    (`hybrid`), a date-window / named-outlet prior (`time_aware`, `source_weight`), near-duplicate
    collapse (`dedupe`), second-stage reranking (`rerank`), per-article caps (`diversify`).
    """

    def __init__(self, store: Store, lexical: LexicalIndex, settings: RetrievalSettings):
        self.store = store
        self.lexical = lexical
        self.settings = settings
        self._cross_encoder: Any = None  # a sentence-transformers CrossEncoder, loaded on first use

    def known_sources(self) -> list[str]:
        """The outlets the archive holds now (read from the keyword index's snapshot, which follows the store):
        an outlet ingested while a server runs is known from the next question on."""
        return [s for s in self.lexical.sources if s]

    def matching_sources(self, wanted: list[str]) -> list[str]:
        """The outlets a `--source` / `filters.sources` value means: every known outlet whose name contains one
        of the values, ignoring case ("gazette" is "Avrel Harbour Gazette"). The dense leg filters on exactly
        these names and the keyword leg's substring mask selects the same ones; values matching no outlet are
        kept as given, so they match nothing rather than lifting the filter."""
        if not wanted:
            return []
        terms = [w.lower() for w in wanted if w and w.strip()]
        return [s for s in self.known_sources() if any(t in s.lower() for t in terms)] or list(wanted)

    def retrieve(self, question: str, filters: Filters | None = None, k: int | None = None) -> Retrieval:
        s = self.settings
        filters = filters or Filters()
        k = k or s.k
        today = date.fromisoformat(filters.today) if filters.today else date.today()
        window = parse_time_window(question, today) if s.time_aware else None
        sources = self.matching_sources(filters.sources)  # a user's choice is a hard filter, in both legs
        named = [] if sources else parse_sources(question, self.known_sources())  # the question's: a boost
        d_from, d_to = date_int(filters.date_from), date_int(filters.date_to)
        if window and s.time_mode == TimeMode.FILTER:
            w_from, w_to = window.as_ints()
            d_from, d_to = max(d_from or 0, w_from), min(d_to or 99991231, w_to)

        qvec = self.store.embedder.embed_memo([question])[0]
        candidates = self.candidates(question, qvec, d_from, d_to, sources)
        prior = {p.chunk_id: self.prior(p, window, named, today) for p in candidates}
        for p in candidates:
            p.score += prior[p.chunk_id]
        candidates.sort(key=lambda p: p.score, reverse=True)
        if s.dedupe:
            candidates = collapse_duplicates(candidates, s.dedupe_similarity)
        vectors: dict[str, np.ndarray] = {}  # fetched once, shared by reranker and confidence
        if s.rerank:
            top = candidates[: s.rerank_top]
            vectors = self.store.vectors([p.chunk_id for p in top])
            candidates = self.rerank(question, qvec, top, prior, vectors) + candidates[s.rerank_top:]
        passages = diversify(candidates, k, s.per_article if s.diversify else k)
        return Retrieval(passages, self.confidence(question, qvec, passages, vectors), window, qvec)

    def candidates(self, question: str, qvec: np.ndarray, d_from: int | None, d_to: int | None,
                   sources: list[str]) -> list[Passage]:
        """First stage: dense and (when hybrid) BM25 candidates, fused; score normalized to 0..1."""
        s = self.settings
        dense = self.store.dense_search(qvec, s.dense_k, _where(d_from, d_to, sources))
        by_id = {p.chunk_id: p for p in dense}
        rankings, weights = [[p.chunk_id for p in dense]], [s.dense_weight]
        if s.hybrid:
            lex = self.lexical.search(question, s.lexical_k, self.lexical.mask(d_from, d_to, sources))
            rankings.append([cid for cid, _ in lex])
            weights.append(s.lexical_weight)
        fused = rrf(rankings, weights, s.rrf_k)
        best = sum(w for w in weights) / (s.rrf_k + 1) or 1.0  # ranked first everywhere
        order = sorted(fused, key=fused.__getitem__, reverse=True)[: max(s.rerank_top * 2, 20)]
        by_id.update(self.store.get_passages([cid for cid in order if cid not in by_id]))
        out = [by_id[c] for c in order if c in by_id]
        for p in out:
            p.score = fused[p.chunk_id] / best
        return out

    def prior(self, p: Passage, window: TimeWindow | None, named_sources: list[str],
              today: date | None = None) -> float:
        """Score for matching the question's date window and named outlets (0 when it names neither);
        without a window, an optional recency boost for articles of the last `recency_days` days."""
        s = self.settings
        score = 0.0
        if window and s.time_mode == TimeMode.BOOST and p.published_at:
            w_from, w_to = window.as_ints()
            day = date_int(p.published_at)
            assert day is not None  # published_at is a non-empty day here
            score += s.time_weight if w_from <= day <= w_to else -s.time_weight / 2
        elif not window and s.time_aware and s.recency_days > 0 and today and p.published_at:
            try:
                age = (today - date.fromisoformat(p.published_at[:10])).days
            except ValueError:
                age = -1
            if 0 <= age <= s.recency_days:
                score += s.recency_weight
        if named_sources and p.source and any(n.lower() in p.source.lower() for n in named_sources):
            score += s.source_weight
        return score

    def rerank(self, question: str, qvec: np.ndarray, passages: list[Passage],
               prior: dict[str, float] | None = None,
               vectors: dict[str, np.ndarray] | None = None) -> list[Passage]:
        """Second stage: a CrossEncoder by local path, or the built-in scorer (see `builtin_scores`)."""
        if not passages:
            return passages
        s = self.settings
        prior = prior or {}
        if s.reranker != "builtin":
            if self._cross_encoder is None:
                from assistant.index.embedder import load_cross_encoder

                self._cross_encoder = load_cross_encoder(s.reranker)
            raw = self._cross_encoder.predict([(question, f"{p.title}\n{p.text}") for p in passages])
            relevance = [1.0 / (1.0 + math.exp(-float(x))) for x in raw]
        else:
            relevance = self.builtin_scores(question, qvec, passages, vectors)
        for p, r in zip(passages, relevance):
            first_stage = p.score - prior.get(p.chunk_id, 0.0)
            p.score = float(r + s.rerank_fused * first_stage + prior.get(p.chunk_id, 0.0))
        return sorted(passages, key=lambda p: p.score, reverse=True)

    def builtin_scores(self, question: str, qvec: np.ndarray, passages: list[Passage],
                       vectors: dict[str, np.ndarray] | None = None) -> list[float]:
        """Offline relevance: chunk-vector similarity plus IDF-weighted coverage of the question's key terms."""
        s = self.settings
        if vectors is None or any(p.chunk_id not in vectors for p in passages):
            vectors = self.store.vectors([p.chunk_id for p in passages])
        foreign = [p for p in passages if p.chunk_id not in vectors]  # e.g. documents of another retriever
        if foreign:
            embedded = self.store.embedder.embed([f"{p.title}\n{p.text}" for p in foreign])
            vectors = {**vectors, **{p.chunk_id: v for p, v in zip(foreign, embedded)}}
        terms = key_terms(question)
        idf = self.lexical.idf(terms) if terms else {}
        out = []
        for p in passages:
            sim = float(vectors[p.chunk_id] @ qvec) if p.chunk_id in vectors else 0.0
            score = s.rerank_dense * sim + s.rerank_terms * term_coverage(terms, p.title + " " + p.text, idf)
            if s.rerank_window:
                score += s.rerank_window * window_coverage(terms, p, idf, s.rerank_window_sentences)
            out.append(score)
        return out

    def confidence(self, question: str, qvec: np.ndarray, passages: list[Passage],
                   vectors: dict[str, np.ndarray] | None = None) -> float:
        """How well the best passages match (0..1): dense similarity and coverage of the question's words.

        Coverage weighs each word by how much it says in general text (`words.information`), not by the
        archive's IDF: IDF from a one-article archive makes every word of the story worthless and one absent
        word decisive, so the same question scored 0.44 there and 0.68 among 2,000 articles. Word forms meet
        ('offer'/'offered', 'wrote'/'written'). bench/confidence.py measures the rule at 1, ~100 and 1,941
        articles.
        """
        if not passages:
            return 0.0
        ids = [p.chunk_id for p in passages[:3]]
        if vectors is None or any(i not in vectors for i in ids):
            vectors = self.store.vectors(ids)
        vectors = {i: vectors[i] for i in ids if i in vectors}
        sim = max((float(v @ qvec) for v in vectors.values()), default=0.0)
        coverage = max(word_coverage(key_terms(question), p.title + " " + p.text) for p in passages[:3])
        return max(0.0, min(1.0, 0.6 * sim + 0.4 * coverage))


@functools.lru_cache(maxsize=100_000)
def word_form(term: str) -> str:
    """The form a question's word and a passage's word meet in: the dictionary form (simplemma: 'wrote' and
    'written' -> 'write', 'said' -> 'say'), then the crude stem ('offered' -> 'offer', 'Chinese' -> 'China')."""
    if term[:1].isdigit():
        return term
    import simplemma

    return stem(simplemma.lemmatize(term, lang="en").lower())


def word_coverage(terms: list[str], text: str) -> float:
    """Share of the question's words (as `word_form`s) in the text, each weighted by the square root of its
    general information (a rare name counts about twice a common word, not three times: "What is the capital
    of X?" is not answered by any mention of X); numbers weigh half as much again. The same on any archive: no
    statistics of the archive enter it."""
    weights: dict[str, float] = {}
    for t in terms:
        w = math.sqrt(information(t)) * (1.5 if t.isdigit() else 1.0)
        weights[word_form(t)] = max(weights.get(word_form(t), 0.0), w)
    total = sum(weights.values())
    if not total:
        return 0.0
    have = {word_form(t) for t in token_set(text)}
    return sum(w for t, w in weights.items() if t in have) / total


def term_coverage(terms: list[str], text: str, idf: dict[str, float] | None = None) -> float:
    """Weighted share of key terms present in the text: rare terms (high IDF) and numbers weigh more.

    Without IDF (no index), longer terms weigh more, as a proxy for rarity.
    """
    if not terms:
        return 0.0
    have = token_set(text)
    weights = [(idf.get(t, 1.0) if idf else math.log(2 + len(t))) * (1.5 if t.isdigit() else 1.0) for t in terms]
    total = sum(weights)
    return sum(w for t, w in zip(terms, weights) if t in have) / total if total else 0.0


def sentence_texts(p: Passage) -> list[str]:
    """The passage's sentences (from the chunk's sentence offsets), or the whole text when it has none."""
    return [p.span_text(s, e) for s, e in p.sentence_spans()] or [p.text]


def window_coverage(terms: list[str], p: Passage, idf: dict[str, float] | None = None, width: int = 2) -> float:
    """Best term coverage of any `width` consecutive sentences of the passage (title excluded).

    Whole-chunk coverage cannot tell apart the chunks of one article (they share its title and topic); the
    chunk holding the answer usually has one spot where the question's names and numbers meet.
    """
    if not terms:
        return 0.0
    sents = sentence_texts(p)
    width = max(1, min(width, len(sents)))
    return max(term_coverage(terms, " ".join(sents[i:i + width]), idf) for i in range(len(sents) - width + 1))


def collapse_duplicates(passages: list[Passage], threshold: float = COPY) -> list[Passage]:
    """Keep one copy of near-identical passages and of the articles they come from; record the copies' sources.

    Of two passages where one lies mostly inside the other (`duplicates.is_copy`, either way), the lower-ranked
    goes, so a wire story run by two outlets with another dateline or byline collapses. An article holding
    a copy of a substantial (20+ words) passage of a better-ranked article is that story again: all its
    passages go, so one story is never cited as two sources.
    """
    kept: list[tuple[Passage, frozenset[int]]] = []
    alias: dict[str, Passage] = {}  # copy's article id -> first passage of the article it copies
    for p in passages:
        grams = shingles(p.text)
        first = next((q for q, q_grams in kept
                      if is_copy(grams, q_grams, threshold) or is_copy(q_grams, grams, threshold)), None)
        if first is None:
            kept.append((p, grams))
        elif (first.article_id != p.article_id and len(p.text.split()) >= 20 and p.article_id not in alias
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
    k: int | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        result = self.retriever.retrieve(query, self.filters, self.k)
        # Flat fields for any LangChain caller (start/end: the chunk's exact offsets in the article body); the
        # Passage itself for our chain (sentence offsets, duplicate copies).
        return [Document(page_content=p.text, metadata={
            "chunk_id": p.chunk_id, "article_id": p.article_id, "title": p.title, "source": p.source,
            "published_at": p.published_at, "url": p.url, "start": p.start, "end": p.end, "score": p.score,
            "confidence": result.confidence, "passage": p}) for p in result.passages]


def passage_of(doc: Document, i: int = 0) -> Passage:
    """The Passage behind a Document: ours carry it; another retriever's documents get one built."""
    if isinstance(doc.metadata.get("passage"), Passage):
        return doc.metadata["passage"]
    m = doc.metadata
    url = m.get("url") or m.get("source")
    return Passage(chunk_id=str(m.get("id") or f"doc:{i}:{hash(doc.page_content)}"),
                   article_id=str(m.get("article_id") or url or f"doc:{i}"), text=doc.page_content, start=0,
                   end=len(doc.page_content), title=m.get("title", ""), source=m.get("source"),
                   published_at=m.get("published_at"), url=url)


def retrieval_of(documents: list[Document]) -> Retrieval:
    """The retriever's Documents back as a Retrieval (passages in rank order and the confidence)."""
    passages = [passage_of(d, i) for i, d in enumerate(documents)]
    confidence = float(documents[0].metadata.get("confidence") or 0.0) if documents else 0.0
    return Retrieval(passages, confidence)
