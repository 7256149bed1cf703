"""The eval's scoring: relevance, hits, MRR, answer accuracy, refusals, citation precision, per system.

Relevance (open-domain QA): a retrieved chunk is a hit when it comes from one of the question's evidence
articles (same url; a collapsed syndicated copy counts with each url it stands for) and contains one of the
accepted answers, case-insensitive with whitespace and curly quotes normalized. `null_query` questions (no
answer in the corpus) are left out of retrieval metrics and used for the refusal metrics.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from assistant.answering.citations import names
from assistant.eval.dataset import Query
from assistant.models import Answer, Passage
from assistant.text.words import tokenize

SUMMARY_KEYS = ("hits@1", "hits@4", "hits@10", "mrr@10", "article_hit@10", "answer_accuracy", "refusal_rate",
                "false_refusal_rate", "citation_precision", "queries", "seconds")
TOP = 10  # passages retrieved per question for the retrieval metrics


_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"',
                         "\u00a0": " "})


def normalize(text: str) -> str:
    """Lowercase, curly quotes straightened, runs of whitespace collapsed to one space."""
    return " ".join((text or "").translate(_QUOTES).lower().split())


def contains_answer(text: str, answers: list[str]) -> bool:
    """Whether the text holds one of the accepted answers (normalized)."""
    t = normalize(text)
    return any(normalize(a) and normalize(a) in t for a in answers)


def is_hit(urls: list[str], text: str, query: Query) -> bool:
    """The dataset's relevance rule: from an evidence article and containing an accepted answer."""
    return bool(set(urls) & set(query.evidence_urls)) and contains_answer(text, query.answers)


def first_hit_rank(hits: list[bool]) -> int | None:
    """1-based rank of the first relevant item, None when there is none."""
    return next((i + 1 for i, h in enumerate(hits) if h), None)


def hits_at(rank: int | None, k: int) -> float:
    """1.0 when the first hit ranks within the top k."""
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int = TOP) -> float:
    """1/rank of the first hit within the top k, else 0 (MRR@k once averaged)."""
    return 1.0 / rank if rank is not None and rank <= k else 0.0


_NUMBER = re.compile(r"\b\d[\d,.:%]*\b")


def key_tokens(sentence: str) -> set[str]:
    """Names (capitalized words not opening the sentence) and numbers, lowercased."""
    s = sentence.strip()
    return {n.lower() for n in names(s)} | {m.group().rstrip(".,:").replace(",", "") for m in _NUMBER.finditer(s)
                                            if m.start() > 0}


def sentence_supported(sentence: str, quotes: list[str], passages: list[str]) -> bool:
    """Whether cited text supports an answer sentence (see `citation_precision`)."""
    s = normalize(re.sub(r"\s*\[\d+(?:\s*,\s*\d+)*\]", "", sentence)).strip(" \"'")
    if not s:
        return False
    if any(s in normalize(p) for p in passages + quotes):
        return True
    cited = " ".join(quotes)
    keys = key_tokens(re.sub(r"\[\d+\]", "", sentence))
    if keys:
        have = {k.lower() for k in re.findall(r"[\w'’-]+|\d[\d,.:%]*", cited)} | {
            m.group().lower().rstrip(".,:").replace(",", "") for m in re.finditer(r"\d[\d,.:%]*", cited)}
        return sum(k in have for k in keys) / len(keys) >= 0.8
    terms = set(tokenize(s))
    return bool(terms) and len(terms & set(tokenize(cited))) / len(terms) >= 0.5


def citation_precision(answer: Answer) -> tuple[int, int]:
    """(supported, total) answer sentences of one answer.

    A sentence is one segment of the answer ending in [n] markers (an uncited tail counts, unsupported).
    It is supported when its text (markers stripped, normalized) appears verbatim in a cited passage, as
    extractive sentences must; otherwise (generated text) when at least 80% of its names (capitalized words
    after the first) and numbers occur in its cited quotes, or, if it has none, when at least half of its
    content words do. Refusals have no sentences.
    """
    from assistant.answering.citations import split_segments

    if answer.refused:
        return 0, 0
    by_n = {c.n: c for c in answer.citations}
    supported = total = 0
    for seg, nums in split_segments(answer.answer):
        if not seg.strip():
            continue
        total += 1
        cits = [by_n[n] for n in nums if n in by_n]
        if cits and sentence_supported(seg, [c.quote for c in cits], [c.passage for c in cits]):
            supported += 1
    return supported, total


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


@dataclass
class QueryResult:
    """What one system did with one question."""

    query: Query
    retrieved: list[dict[str, Any]]  # {"url", "title", "text", "score", "urls"}
    answer: Answer | None
    latency: float  # retrieval seconds
    confidence: float | None = None

    def rank(self) -> int | None:
        return first_hit_rank([is_hit(r["urls"], r["text"], self.query) for r in self.retrieved[:TOP]])

    def article_hit(self) -> bool:
        return any(set(r["urls"]) & set(self.query.evidence_urls) for r in self.retrieved[:TOP])

    def to_json(self) -> dict[str, Any]:
        a = self.answer
        return {"query": self.query.query, "question_type": self.query.question_type,
                "retrieved": [{k: r[k] for k in ("url", "title", "text", "score")} for r in self.retrieved[:TOP]],
                "answer": a.answer if a else None, "refused": a.refused if a else None,
                "citations": a.to_json()["citations"] if a else []}


def retrieved_from(passages: list[Passage]) -> list[dict[str, Any]]:
    return [{"url": p.url, "title": p.title, "text": p.text, "score": round(float(p.score), 6),
             "urls": [u for u in [p.url] + [c.get("url") for c in p.also_in] if u]} for p in passages]


def summarize(results: list[QueryResult], seconds: float) -> dict[str, Any]:
    """The summary keys (see SUMMARY_KEYS) over results, plus `by_type` with the same per question type."""
    out = _metrics(results, seconds)
    types = sorted({r.query.question_type for r in results})
    out["by_type"] = {t: _metrics([r for r in results if r.query.question_type == t], None) for t in types}
    return out


def _metrics(results: list[QueryResult], seconds: float | None) -> dict[str, Any]:
    answerable = [r for r in results if not r.query.is_null]
    nulls = [r for r in results if r.query.is_null]
    ranks = [r.rank() for r in answerable]
    answered = [(r.query, r.answer) for r in answerable if r.answer is not None]
    with_answer = [r.answer for r in results if r.answer is not None]
    sup = tot = 0
    for a in with_answer:
        s, t = citation_precision(a)
        sup, tot = sup + s, tot + t
    return {
        "hits@1": _mean([hits_at(x, 1) for x in ranks]),
        "hits@4": _mean([hits_at(x, 4) for x in ranks]),
        "hits@10": _mean([hits_at(x, 10) for x in ranks]),
        "mrr@10": _mean([reciprocal_rank(x, TOP) for x in ranks]),
        "article_hit@10": _mean([float(r.article_hit()) for r in answerable]),
        "answer_accuracy": _mean([float(not a.refused and contains_answer(a.answer, q.answers))
                                  for q, a in answered]),
        "refusal_rate": _mean([float(r.answer.refused) for r in nulls if r.answer is not None]),
        "false_refusal_rate": _mean([float(a.refused) for _, a in answered]),
        "citation_precision": round(sup / tot, 4) if tot else None,
        "queries": len(results),
        "seconds": round(seconds, 2) if seconds is not None else None,
    }


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100, nearest rank)."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q / 100 * len(v)) - 1))]


def distribution(values: list[float]) -> dict[str, float] | None:
    """min / p25 / median / p75 / max of a list of scores."""
    if not values:
        return None
    p25, p75 = percentile(values, 25), percentile(values, 75)
    assert p25 is not None and p75 is not None  # None only for no values
    return {"n": len(values), "min": round(min(values), 3), "p25": round(p25, 3),
            "median": round(statistics.median(values), 3), "p75": round(p75, 3),
            "max": round(max(values), 3)}


@dataclass
class SystemRun:
    """One system's results over the dataset and its wall time."""

    name: str
    results: list[QueryResult]
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.summary = summarize(self.results, self.seconds)

    @property
    def latency_p95_ms(self) -> float | None:
        p = percentile([r.latency for r in self.results], 95)
        return None if p is None else round(1000 * p, 1)

    @property
    def queries_per_second(self) -> float:
        return len(self.results) / self.seconds if self.seconds else 0.0

    def confidence_distributions(self) -> dict[str, Any]:
        """Retrieval confidence of answerable vs null questions (what refusal thresholds)."""
        ans = [r.confidence for r in self.results if not r.query.is_null and r.confidence is not None]
        nul = [r.confidence for r in self.results if r.query.is_null and r.confidence is not None]
        return {"answerable": distribution(ans), "null_query": distribution(nul)}
