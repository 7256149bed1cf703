"""The offline engine: answers with the passages' best sentences, verbatim, each cited."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from assistant.engines.base import Engine
from assistant.lexical import tokenize
from assistant.models import Passage

Embed = Callable[[list[str]], np.ndarray]

_QUOTE_OPEN = re.compile(r"^[\"“‘']")
_YES_NO = re.compile(r"^(did|does|do|is|are|was|were|will|would|has|have|had|can|could|should)\b", re.I)
_STANCE = re.compile(r"\b(not|no|never|refused|refuses|declined|declines|rejected|rejects|turned down|denied|"
                     r"denies|won't|will not|did not|didn't|agreed|agrees|confirmed|confirms|approved|"
                     r"only|instead)\b", re.I)
_ATTRIBUTION = re.compile(r"\b(said|says|told|according to|stated|added|wrote|announced)\b", re.I)


@dataclass
class Pick:
    """A chosen sentence: passage index, absolute span in the article body, its score."""

    passage: int
    start: int
    end: int
    text: str
    score: float


def passage_sentences(p: Passage) -> list[tuple[int, int]]:
    """Sentence spans of a passage, clipped to it (absolute article offsets)."""
    spans = [(max(s, p.start), min(e, p.end)) for s, e in p.sentences if e > p.start and s < p.end]
    return [(s, e) for s, e in spans if e - s >= 20] or [(p.start, p.end)]


def sentence_text(p: Passage, start: int, end: int) -> str:
    return p.text[start - p.start:end - p.start]


def term_overlap(question_terms: set[str], text: str) -> float:
    if not question_terms:
        return 0.0
    return len(question_terms & set(tokenize(text))) / len(question_terms)


class ExtractiveEngine(Engine):
    """Scores every sentence of the top passages against the question and quotes the best ones.

    Args:
        embed: text -> unit vectors (the store's embedder), for sentence-to-question similarity.
        max_sentences: most sentences in an answer.
    """

    name = "extractive"
    generative = False

    def __init__(self, embed: Embed, max_sentences: int = 4, min_sentence_score: float = 0.3):
        self.embed = embed
        self.max_sentences = max_sentences
        self.min_sentence_score = min_sentence_score

    def select(self, question: str, passages: list[Passage]) -> list[Pick]:
        """The sentences that best answer the question, best first, without near-duplicates."""
        cands: list[Pick] = []
        for i, p in enumerate(passages):
            for s, e in passage_sentences(p):
                cands.append(Pick(i, s, e, sentence_text(p, s, e), 0.0))
        if not cands:
            return []
        vectors = self.embed([question] + [c.text for c in cands])
        sims = vectors[1:] @ vectors[0]
        qterms = set(tokenize(question))
        yes_no = bool(_YES_NO.match(question.strip()))
        for c, sim in zip(cands, sims):
            rank_prior = 1.0 / (1 + 0.15 * c.passage)
            stance = 0.08 if yes_no and _STANCE.search(c.text) else 0.0  # yes/no questions want a verdict
            c.score = float(0.7 * sim + 0.3 * term_overlap(qterms, c.text) + stance) * (0.85 + 0.15 * rank_prior)
        cands.sort(key=lambda c: c.score, reverse=True)
        best = cands[0].score
        picks: list[Pick] = []
        used_tokens: list[set[str]] = []
        per_passage: dict[int, int] = {}
        for c in cands:
            if len(picks) >= self.max_sentences or c.score < max(self.min_sentence_score, 0.72 * best):
                break
            toks = set(tokenize(c.text))
            if any(len(toks & u) / max(1, len(toks | u)) > 0.6 for u in used_tokens):
                continue  # near-duplicate of a picked sentence (syndicated copy, overlap)
            if per_passage.get(c.passage, 0) >= 2:
                continue
            picks.append(self._with_attribution(c, passages[c.passage]))
            used_tokens.append(toks)
            per_passage[c.passage] = per_passage.get(c.passage, 0) + 1
        return picks

    @staticmethod
    def _with_attribution(c: Pick, p: Passage) -> Pick:
        """A quote without its speaker gets the neighbouring sentence that names who said it."""
        if not _QUOTE_OPEN.match(c.text) or _ATTRIBUTION.search(c.text):
            return c
        spans = passage_sentences(p)
        idx = next((i for i, (s, _) in enumerate(spans) if s == c.start), None)
        if idx is not None and idx + 1 < len(spans):
            s, e = spans[idx + 1]
            nxt = sentence_text(p, s, e)
            if _ATTRIBUTION.search(nxt) and len(nxt) < 200:
                return Pick(c.passage, c.start, e, sentence_text(p, c.start, e), c.score)
        return c

    def stream(self, question: str, passages: list[Passage],
               history: list[tuple[str, str]] | None = None) -> Iterator[str]:
        picks = self.select(question, passages)
        for i, pick in enumerate(picks):
            yield ("" if i == 0 else " ") + f"{pick.text} [{pick.passage + 1}]"
