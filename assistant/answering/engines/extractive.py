"""The offline engine: answers with the passages' best sentences, verbatim, each cited."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from assistant.answering.citations import names
from assistant.answering.engines.base import Embed, Engine
from assistant.answering.question import analyse
from assistant.config import EngineName, Settings
from assistant.models import Passage
from assistant.text.duplicates import is_copy, shingles
from assistant.text.instructions import addresses_reader
from assistant.text.timeparse import date_mentions
from assistant.text.words import stem, tokenize

_QUOTE_OPEN = re.compile(r"^[\"“‘']")
_YES_NO = re.compile(r"^(did|does|do|is|are|was|were|will|would|has|have|had|can|could|should)\b", re.I)
_STANCE = re.compile(r"\b(not|no|never|refused|refuses|declined|declines|rejected|rejects|turned down|denied|"
                     r"denies|won't|will not|did not|didn't|agreed|agrees|confirmed|confirms|approved|"
                     r"only|instead)\b", re.I)
_ATTRIBUTION = re.compile(r"\b(said|says|told|according to|stated|added|wrote|announced)\b", re.I)
_PRONOUN_LEAD = re.compile(r"^(he|she|it|they|this|that|these|those|the move|the decision)\b", re.I)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*|\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
                     r"thirty|forty|fifty|hundred|hundreds|thousand|thousands|million|millions|billion|dozen|"
                     r"dozens)\b", re.I)
_AMOUNT = re.compile(r"[$£€¥₹]\s?\d|\d+(?:[.,]\d+)*\s*(?:%|percent|per cent|million|billion|trillion|bn|mn|dollars|"
                     r"euros|pounds|yen|rupees|yuan|roubles|rubles|tons|tonnes|kilometres|kilometers|miles|kg)\b",
                     re.I)
_NAME_TYPES = ("person", "organisation", "place", "name")
TYPED = ("person", "organisation", "place", "date", "number", "amount")  # `Question.answer_type`s


@dataclass(frozen=True)
class SentenceWeights:
    """How a candidate sentence is scored (bench/answer_variants.py measures alternatives on a dev set).

    score = (meaning * cosine(question, sentence) + words * weighted coverage of the question's words
             + fits if it holds the kind of fact asked for) * (1 - rank + rank / (1 + rank_decay * passage))
            * (untyped if the question asks for a name, date, number or amount and the sentence holds none)
    and the answer keeps sentences scoring at least `floor` times the best one.
    """

    meaning: float = 0.65
    words: float = 0.25
    fits: float = 0.08
    rank: float = 0.08
    rank_decay: float = 0.15
    floor: float = 0.75
    untyped: float = 0.75  # factor for a sentence without the asked type of value (typed questions only)


@dataclass
class Pick:
    """A chosen sentence: passage index, absolute span in the article body, its score."""

    passage: int
    start: int
    end: int
    text: str
    score: float
    article_id: str = ""
    title: str = ""  # the article's title: the context a sentence is embedded in
    terms: set[str] = field(default_factory=set)
    words: float = 0.0  # word-level part of the score
    factor: float = 1.0  # passage rank, length and follow-up focus multiplier


def passage_sentences(p: Passage) -> list[tuple[int, int]]:
    """Sentence spans of a passage long enough to answer (absolute article offsets); the whole passage if none."""
    return p.sentence_spans(min_chars=20) or [(p.start, p.end)]


def has_answer_type(kind: str | None, text: str, question_stems: set[str], question: str = "") -> bool:
    """Whether a sentence holds the kind of fact asked for (`Question.answer_type`, or 'stance' for a yes/no
    question), beyond repeating the question: a name, date, number or amount that the question does not hold.

    Cheap typed detectors, not a parse (answers stay under their 300 ms): names are capitalised words
    (`citations.names`, the one name rule), dates `timeparse.date_mentions`, numbers and amounts patterns.
    """
    if kind in _NAME_TYPES:
        return any(stem(t) not in question_stems for name in names(text) for t in tokenize(name))
    asked = question.lower()
    if kind == "date":
        return any(d not in asked for d in date_mentions(text))
    if kind == "number":
        return any(m.group().lower() not in asked for m in _NUMBER.finditer(text))
    if kind == "amount":
        return any(m.group().lower() not in asked for m in _AMOUNT.finditer(text))
    if kind == "stance":
        return bool(_STANCE.search(text))
    return False


class ExtractiveEngine(Engine):
    """Scores every sentence of the retrieved passages against the question and quotes the best ones.

    A sentence scores by meaning (embedding similarity to the question), by the question's words it contains
    (rare words weigh more), by whether it holds the kind of fact asked for (a name for "who", a number for
    "how many", a verdict for yes/no questions), and by its passage's rank. The picks then favour new
    information from other articles over near-repeats.

    Args:
        embed: text -> unit vectors (the store's embedder), for sentence-to-question similarity.
        max_sentences: most sentences in an answer (1-5).
        min_sentence_score: below this the best sentence is not an answer, and the engine says nothing.
        pool: embed only this many sentences, those sharing the most of the question's words (0 = all).
    """

    name = "extractive"
    generative = False

    def __init__(self, embed: Embed, max_sentences: int = 4, min_sentence_score: float = 0.3, pool: int = 0,
                 weights: SentenceWeights = SentenceWeights(), title_context: bool = False):
        self.embed = embed
        self.title_context = title_context
        self.weights = weights
        self.pool = pool
        self.max_sentences = max(1, min(5, max_sentences))
        self.min_sentence_score = min_sentence_score

    @classmethod
    def from_settings(cls, name: EngineName, settings: Settings, embed: Embed) -> ExtractiveEngine:
        a = settings.answer
        return cls(embed, a.max_sentences, pool=a.sentence_pool, weights=SentenceWeights(floor=a.sentence_floor),
                   title_context=True)

    def candidates(self, passages: list[Passage]) -> list[Pick]:
        """Each sentence once (overlapping passages share sentences), with the context it needs."""
        seen: set[tuple[str, int]] = set()
        cands: list[Pick] = []
        for i, p in enumerate(passages):
            spans = passage_sentences(p)
            for j, (s, e) in enumerate(spans):
                if (p.article_id, s) in seen:
                    continue
                seen.add((p.article_id, s))
                s, e = self._context(spans, j, p)
                text = p.span_text(s, e)
                if addresses_reader(text):  # instructions in an article are never quoted as an answer
                    continue
                cands.append(Pick(i, s, e, text, 0.0, p.article_id, p.title))
        return cands

    @staticmethod
    def _context(spans: list[tuple[int, int]], j: int, p: Passage) -> tuple[int, int]:
        """Span of sentence j, widened to a neighbour that names the speaker or the subject.

        A quote keeps its attribution (a quoted sentence followed by 'Marrow told reporters.'), and a sentence
        opening with 'He'/'It' keeps the previous sentence that says who or what that is; the span stays verbatim.
        """
        s, e = spans[j]
        text = p.span_text(s, e)
        if _QUOTE_OPEN.match(text) and not _ATTRIBUTION.search(text):
            if j + 1 < len(spans):
                nxt = p.span_text(*spans[j + 1])
                if _ATTRIBUTION.search(nxt) and len(nxt) < 200:
                    return s, spans[j + 1][1]
            if j > 0:
                prev = p.span_text(*spans[j - 1])
                if _ATTRIBUTION.search(prev) and len(prev) < 250:
                    return spans[j - 1][0], e
        if _PRONOUN_LEAD.match(text) and j > 0:
            prev = p.span_text(*spans[j - 1])
            if len(prev) < 250:
                return spans[j - 1][0], e
        return s, e

    def lexical(self, question: str, cands: list[Pick]) -> None:
        """Set each candidate's word-level features and `score` to its word-level part (no embedding)."""
        # A follow-up arrives as "And China? (previous question)": its own words are the focus.
        m = re.match(r"^(.*?\S)\s*\((.+)\)$", question.strip())
        focus = {stem(t) for t in tokenize(m.group(1))} if m else set()
        qterms = set(tokenize(question))
        qstems = {stem(t) for t in qterms}
        for c in cands:
            c.terms = {stem(t) for t in tokenize(c.text)}
        # Words every candidate shares (the story's topic) say little about which sentence answers.
        n = len(cands)
        idf = {t: math.log(1 + n / (1 + sum(1 for c in cands if t in c.terms))) for t in qstems}
        total = sum(idf.values()) or 1.0
        asked = analyse(question)
        kind = asked.answer_type or ("stance" if asked.yes_no else None)
        w = self.weights
        for c in cands:
            coverage = sum(weight for t, weight in idf.items() if t in c.terms) / total
            fits = w.fits if has_answer_type(kind, c.text, qstems, question) else 0.0
            rank_prior = 1.0 / (1 + w.rank_decay * c.passage)
            length = 0.9 if len(c.text) < 40 else 1.0  # fragments ("He declined.") rarely answer alone
            off_focus = 0.6 if focus and not focus & c.terms else 1.0
            # A question asking for a name, date, number or amount: a sentence holding none beyond the
            # question's own only repeats the question ("Residents asked when the bridge would reopen").
            untyped = w.untyped if kind in TYPED and not fits else 1.0
            c.words = w.words * coverage + fits
            c.factor = (1 - w.rank + w.rank * rank_prior) * length * off_focus * untyped
            c.score = c.words * c.factor

    def score(self, cands: list[Pick], vectors: np.ndarray) -> None:
        """Set each candidate's score (about 0..1): meaning (vectors[0] is the question's) plus the word-level
        part `lexical` set."""
        sims = vectors[1:] @ vectors[0]
        for c, sim in zip(cands, sims):
            c.score = float((self.weights.meaning * sim + c.words) * c.factor)

    def select(self, question: str, passages: list[Passage]) -> list[Pick]:
        """The sentences that best answer the question, best first, without near-duplicates."""
        cands = self.candidates(passages)
        if not cands:
            return []
        self.lexical(question, cands)
        if self.pool and len(cands) > self.pool:
            # Embedding every sentence is most of an answer's cost; the sentences sharing the fewest of the
            # question's words (weighted as above) are rarely the answer, so they are not embedded.
            keep = {id(c) for c in sorted(cands, key=lambda c: c.score, reverse=True)[: self.pool]}
            cands = [c for c in cands if id(c) in keep]
        # Each sentence is scored as it reads under its article's title (as chunks are embedded), so one whose
        # subject the article implies ("no concrete support has been offered") meets the question in its
        # article's sense; sentences are compared with each other alone, where a shared title would make
        # every pair from one article look alike.
        alone = [c.text for c in cands]
        titled = [f"{c.title}\n{c.text}" if c.title else c.text for c in cands] if self.title_context else []
        vectors = self.embed([question] + alone + titled)
        n = len(cands)
        self.score(cands, vectors[[0, *range(1 + n, 1 + 2 * n)]] if titled else vectors[: 1 + n])
        cvec = {id(c): v for c, v in zip(cands, vectors[1:1 + n])}
        best = max(c.score for c in cands)
        if best < self.min_sentence_score:
            return []
        floor = max(self.min_sentence_score, self.weights.floor * best)
        picks: list[Pick] = []
        pool = [c for c in cands if c.score >= floor]
        while pool and len(picks) < self.max_sentences:
            def gain(c: Pick) -> float:
                if not picks:
                    return c.score
                redundancy = max(float(cvec[id(c)] @ cvec[id(p)]) for p in picks)
                new_terms = len(c.terms - set().union(*(p.terms for p in picks))) / (len(c.terms) or 1)
                other_article = 0.03 if all(p.article_id != c.article_id for p in picks) else 0.0
                return c.score - 0.15 * max(0.0, redundancy - 0.5) + 0.05 * new_terms + other_article

            c = max(pool, key=gain)
            pool.remove(c)
            if any(_near_duplicate(c, p, float(cvec[id(c)] @ cvec[id(p)])) for p in picks):
                continue
            picks.append(c)
        return picks

    def stream(self, question: str, passages: list[Passage],
               history: list[tuple[str, str]] | None = None) -> Iterator[str]:
        picks = self.select(question, passages)
        for i, pick in enumerate(picks):  # a pick spanning two paragraphs reads as one line
            yield ("" if i == 0 else " ") + f"{' '.join(pick.text.split())} [{pick.passage + 1}]"


def _near_duplicate(a: Pick, b: Pick, similarity: float) -> bool:
    """The same sentence twice (overlapping spans of one article, or one inside the other: `duplicates.is_copy`), or the same
    statement again in other order or words (most content words shared, or nearly the same meaning); a copy
    test alone lets a restatement with its clauses swapped through (measured: bench/RESULTS.md, issue 17)."""
    if a.article_id == b.article_id and a.start < b.end and b.start < a.end:
        return True
    a_grams, b_grams = shingles(a.text), shingles(b.text)
    if is_copy(a_grams, b_grams) or is_copy(b_grams, a_grams):
        return True
    return len(a.terms & b.terms) / max(1, len(a.terms | b.terms)) > 0.6 or similarity > 0.9
