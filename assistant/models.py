"""The shapes that flow through the pipeline: article, chunk, passage, citation, answer."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


def article_id_for(source_key: str) -> str:
    """Deterministic article id from a stable key (URL, or path, or title+date)."""
    return hashlib.sha1(source_key.encode("utf-8")).hexdigest()[:16]


def content_hash(*parts: str | None) -> str:
    """Hash of an article's content and metadata: changes when the article changes."""
    h = hashlib.sha1()
    for p in parts:
        h.update((p or "").encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:16]


@dataclass
class Article:
    """One news article, as read from a file or an API call."""

    title: str
    body: str
    source: str | None = None
    author: str | None = None
    published_at: str | None = None  # ISO date YYYY-MM-DD when known
    url: str | None = None
    origin: str | None = None  # file path (and line/index) it came from
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            key = self.url or f"{self.title}\x1f{self.published_at or ''}\x1f{self.source or ''}"
            self.id = article_id_for(key)

    @property
    def hash(self) -> str:
        return content_hash(self.title, self.body, self.source, self.author, self.published_at, self.url)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Chunk:
    """A span of an article's body, sized for the embedder, with exact character offsets."""

    article_id: str
    index: int
    text: str  # == article.body[start:end]
    start: int
    end: int
    sentences: list[tuple[int, int]] = field(default_factory=list)  # absolute offsets in body

    @property
    def id(self) -> str:
        return f"{self.article_id}:{self.index}"


@dataclass
class Passage:
    """A retrieved chunk with its article metadata and retrieval score."""

    chunk_id: str
    article_id: str
    text: str
    start: int
    end: int
    title: str
    source: str | None
    published_at: str | None
    url: str | None
    sentences: list[tuple[int, int]] = field(default_factory=list)
    score: float = 0.0
    also_in: list[dict[str, Any]] = field(default_factory=list)  # duplicate copies' sources
    # the quotes that start in this chunk: (start, end, kind, speaker, cue), absolute body offsets
    quotes: list[tuple[int, int, str, str | None, str]] = field(default_factory=list)

    def sentence_spans(self, min_chars: int = 1) -> list[tuple[int, int]]:
        """The chunk's sentences clipped to this passage (absolute body offsets), those of min_chars or more."""
        spans = [(max(s, self.start), min(e, self.end)) for s, e in self.sentences if e > self.start and s < self.end]
        return [(s, e) for s, e in spans if e - s >= min_chars]

    def span_text(self, start: int, end: int) -> str:
        """The passage text between two absolute body offsets."""
        return self.text[start - self.start:end - self.start]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# A citation's fields in `ask --json` and every surface, in this order; the API adds CHECK_FIELDS after them.
CITATION_FIELDS = ("n", "article_id", "title", "source", "published_at", "url", "quote", "start", "end", "speaker")
CHECK_FIELDS = ("supported", "passage")


@dataclass
class Citation:
    """One numbered source of an answer: an exact quote from an article with its span."""

    n: int
    article_id: str
    title: str
    source: str | None
    published_at: str | None
    url: str | None
    quote: str
    start: int  # character offsets of quote in the article body
    end: int
    speaker: str | None = None  # who said it, when the quote lies (mostly) inside one named speaker's quote
    passage: str = ""  # the whole retrieved passage, for display
    supported: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """The assistant's reply: text with [n] markers and the citations they refer to."""

    answer: str
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    support: float | None = None
    unsupported: list[str] = field(default_factory=list)
    notice: str | None = None  # e.g. "model server down, extractive fallback"

    def to_json(self, full: bool = False) -> dict[str, Any]:
        """The one serialisation of an answer. Plain: the stable machine interface of `ask --json` (the
        citations' CITATION_FIELDS). `full`: the API's (AskOut): each citation's check fields too, then
        `flags()`."""
        fields = CITATION_FIELDS + CHECK_FIELDS if full else CITATION_FIELDS
        out = {"answer": self.answer, "refused": self.refused,
               "citations": [{k: getattr(c, k) for k in fields} for c in self.citations]}
        return {**out, **self.flags()} if full else out

    def flags(self) -> dict[str, Any]:
        """The citation check's verdict and the notice, as the API and the chain's last chunk carry them."""
        return {"support": self.support, "unsupported": list(self.unsupported), "notice": self.notice}
