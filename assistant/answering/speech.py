"""Who said what: questions about what someone said, and who said something, answered from the stored quotes.

"What did X say about Y?" (`Question.said_by`, `about`) is answered from X's quotes only (the archive's quote
index, `assistant.index.quotebook`), those about Y, newest first: each shown verbatim, as the article's own
sentence(s) around the quote, so the cue ("..., Peskov told reporters") stays visible, with its speaker, date and
outlet and its [n]. A sentence *about* X is never shown as X's words. When the archive holds no quote of X, or none
about Y, the reply says which and refuses. "Who said / condemned ...?" (`asks_speaker`, opening with "who") names the speakers
of the retrieved passages' quotes that match the question's words, each cited; when none does, and for "Which
company announced ...?", the ordinary engine answers.

Both engines answer these questions here: the quotes are the article's own words, so there is nothing for a
model to add, and a model could only get a speaker wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.answering.question import Question, fold, mentions
from assistant.answering.retrieval import Filters
from assistant.index.quotebook import QuoteBook, QuoteRecord
from assistant.index.store import Store
from assistant.models import Citation, Passage
from assistant.text.words import information, stem, tokenize

# Share of the topic's (or question's) word information a quote and its sentence must hold to be "about" it.
ABOUT_SHARE = 0.5
_WHO = re.compile(r"\s*who\b", re.I)
_QUESTION_WORDS = frozenset("who whom whose what which said say says tell told".split())


@dataclass
class Spoken:
    """A reply made of quotes: its text with [n] markers and citations, or a refusal naming what is missing."""

    text: str
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)


def _weights(text: str, drop: frozenset[str] = frozenset()) -> dict[str, float]:
    return {stem(t): information(t) for t in tokenize(text) if t.lower() not in drop}


def _share(weights: dict[str, float], terms: frozenset[str]) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in terms) / total if total else 0.0


def _shown_span(r: QuoteRecord, p: Passage) -> tuple[int, int]:
    """The article's sentences around a quote within its chunk (the cue and speaker are in them), else the quote."""
    end = min(r.end, p.end)
    spans = [(s, e) for s, e in p.sentence_spans() if e > r.start and s < end]
    if not spans or r.end > p.end:
        return r.start, r.end
    return min(r.start, spans[0][0]), max(end, spans[-1][1])


def _label(r: QuoteRecord) -> str:
    about = ", ".join(x for x in (r.published_at, r.source) if x)
    return f"{r.speaker} ({about})" if about else f"{r.speaker}"


def _spoken(records: list[QuoteRecord], passages: dict[str, Passage]) -> Spoken:
    lines: list[str] = []
    citations: list[Citation] = []
    used: list[Passage] = []
    for r in records:
        p = passages.get(r.chunk_id)
        if p is None:
            continue
        start, end = _shown_span(r, p)
        shown = p.span_text(start, end) if end <= p.end else r.quote
        n = len(citations) + 1
        citations.append(Citation(n=n, article_id=r.article_id, title=r.title, source=r.source,
                                  published_at=r.published_at, url=r.url, quote=shown, start=start, end=end,
                                  passage=p.text, supported=True, speaker=r.speaker))
        used.append(p)
        lines.append(f"{_label(r)}: {' '.join(shown.split())} [{n}]")
    return Spoken(" ".join(lines), not citations, citations, used)


def said_by(question: Question, quotes: QuoteBook, store: Store, most: int, passages: list[Passage],
            filters: Filters | None = None) -> Spoken | None:
    """The reply to "What did X say (about Y)?" from X's quotes (within the surface's date and outlet filters),
    or None when the question is not one."""
    if not question.said_by:
        return None
    f = filters or Filters()
    mine = [r for r in quotes.find(speaker=question.said_by, since=f.date_from, until=f.date_to,
                                   source=f.sources or None, limit=10 ** 9) if r.speaker]
    if not mine:
        named = [e for e in question.named if fold(e.text) == fold(question.said_by) and e.label == "PERSON"]
        if not named or quotes.unread():  # "the Pope", a port authority, a country; or an archive whose
            return None  # older articles await `assistant reindex`: the ordinary checks and engine decide
        if not any(mentions(named[0], f"{p.title}\n{p.text}") for p in passages):
            return Spoken(f"The articles do not mention {question.said_by}.", True, passages=passages)
        return Spoken(f"The articles do not quote {question.said_by}.", True, passages=passages)
    if question.about:
        topic = _weights(question.about)
        scored = [(_share(topic, r.terms), r) for r in mine]
        about = [(s, r) for s, r in scored if s >= ABOUT_SHARE]
        if not about:
            nearest = _passages(store, [r for r in mine[:3]])
            return Spoken(f"The articles quote {question.said_by}, but not about {question.about}.", True,
                          passages=list(nearest.values()))
        about.sort(key=lambda sr: -sr[0])  # the closest to the topic; shown newest first
        chosen = sorted((r for _, r in about[:most]), key=mine.index)
    else:
        chosen = mine[:most]
    return _spoken(chosen, _passages(store, chosen))


def who_said(question: Question, passages: list[Passage], quotes: QuoteBook, most: int) -> Spoken | None:
    """The reply to "Who said / condemned ...?" from the retrieved passages' quotes, or None."""
    if not question.asks_speaker or not _WHO.match(question.text):
        return None  # "Which company announced ...?" asks for a company, answered by the ordinary engine
    words = _weights(question.text, _QUESTION_WORDS)
    by_chunk = {p.chunk_id: p for p in passages}
    found: list[tuple[float, int, QuoteRecord]] = []
    of = quotes.of_chunks([p.chunk_id for p in passages])
    for rank, p in enumerate(passages):
        for r in of[p.chunk_id]:
            if r.speaker and _share(words, r.terms) >= ABOUT_SHARE:
                found.append((_share(words, r.terms), rank, r))
    if not found:
        return None
    found.sort(key=lambda x: (-x[0], x[1]))
    chosen: list[QuoteRecord] = []
    seen: set[str] = set()
    for _, _, r in found:  # one quote a speaker, the best matching
        key = fold(r.speaker or "")
        if key not in seen:
            seen.add(key)
            chosen.append(r)
        if len(chosen) == most:
            break
    return _spoken(chosen, by_chunk)


def _passages(store: Store, records: list[QuoteRecord]) -> dict[str, Passage]:
    return store.get_passages(list(dict.fromkeys(r.chunk_id for r in records)))
