"""Who said what across the archive: the quotes kept in the store's chunk metadata, found by speaker, words, date
and outlet.

The store of truth holds the quotes: at ingest (and `assistant reindex`, after a new extractor) each quote of an
article (`assistant.text.quotes`) is kept in the metadata of the chunk that holds its start, as `quotes` (a JSON
list of `[start, end, kind, speaker, cue]`, absolute body offsets) and `quotes_v` (the extractor's version).
`QuoteBook` is derived from it the way the keyword index is (assistant/index/lexical.py): built from the whole
store on first use, then kept in step by applying the chunks written and the tombstones left after the change
sequence it last saw, so every process on one Chroma server sees the same quotes and an article ingested by
another process is found at the next query. It lives in memory (one per process, `Archive.quotes`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from assistant.errors import AssistantError
from assistant.text.timeparse import date_int
from assistant.text.words import fold_accents, stem, tokenize

if TYPE_CHECKING:
    from assistant.index.store import Store, Written

log = logging.getLogger(__name__)

QUOTE_FIELDS = ("speaker", "quote", "kind", "article_id", "title", "source", "published_at", "url", "start", "end")


# -- what ingest and reindex store -------------------------------------------------------------------------------

def extractor_version() -> int:
    from assistant.text import quotes

    return quotes.EXTRACTOR_VERSION


def read_quotes(articles: Sequence[tuple[str, str]]) -> list[list[Any]] | None:
    """The quotes of each (title, body), in one batched pass of the extractor (assistant.text.quotes.quotes_of_many).

    The extractor reads the title as the first paragraph (a name it gives helps attribute the body's quotes), and
    offsets are then made the body's; a quote of the title itself has no place in the body and is left out.
    None when the extractor itself fails (its model cannot load): the articles are stored without quotes and
    without a `quotes_v`, so `assistant reindex` reads them later."""
    if not articles:
        return []
    heads = [(title or "").replace("\n", " ").strip() for title, _ in articles]
    try:
        from assistant.text import quotes

        found = quotes.quotes_of_many([head + "\n\n" + body if head else body
                                       for head, (_, body) in zip(heads, articles)])
    except Exception:  # never let the reading layer stop an ingest
        log.exception("quotes: the extractor failed on a batch of %d articles; stored without quotes", len(articles))
        return None
    out = []
    for head, qs in zip(heads, found):
        shift = len(head) + 2 if head else 0
        out.append([replace(q, start=q.start - shift, end=q.end - shift) for q in qs if q.start >= shift])
    return out


def chunk_quotes(spans: Sequence[tuple[int, int]], found: Iterable[Any]) -> list[str]:
    """Each chunk's `quotes` metadata: the JSON list of the quotes whose start it holds (the first such chunk,
    chunks overlapping), `[start, end, kind, speaker, cue]`. A quote starting in no chunk (page furniture) is
    left out."""
    per: list[list[list[Any]]] = [[] for _ in spans]
    for q in found:
        for i, (s, e) in enumerate(spans):
            if s <= q.start < e:
                per[i].append([q.start, q.end, q.kind, q.speaker, q.cue])
                break
    return [json.dumps(rows, ensure_ascii=False) for rows in per]


# -- the derived index --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuoteRecord:
    """One stored quote with its article's fields; `quote` is the article body between `start` and `end`."""

    speaker: str | None
    quote: str
    kind: str
    article_id: str
    title: str
    source: str | None
    published_at: str | None
    url: str | None
    start: int
    end: int
    cue: str
    chunk_id: str
    seq: int
    terms: frozenset[str]  # stems of the quote, its sentences and its paragraph's lead-in sentence (`about`)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in QUOTE_FIELDS}


_NAME_WORD = re.compile(r"[\w’'.-]+")
_CONNECTORS = {"of", "for", "the", "and", "&", "on"}


def _words(name: str) -> tuple[str, ...]:
    return tuple(w.lower().replace("’", "'").strip(".") for w in _NAME_WORD.findall(fold_accents(name)))


def _suffix(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    """`shorter` ends `longer` ("peskov" in "dmitry peskov"), not after a connector ("northvale" is not the
    "bank of northvale"): the last-name rule of assistant.text.names."""
    if not shorter or len(shorter) > len(longer) or longer[len(longer) - len(shorter):] != shorter:
        return False
    return not any(w in _CONNECTORS for w in longer[:len(longer) - len(shorter)])


def speaker_matches(speaker: str | None, name: str) -> bool:
    """Whether a stored speaker is the named one: the same name, its last name or a longer form of it ("Peskov",
    "Dmitry Peskov", "Kremlin spokesman Dmitry Peskov"), ignoring case and accents ("Erdogan" is "Erdoğan");
    each of a joint speaker "A and B" is a speaker of its own. An unnamed speaker (None) is nobody."""
    if not speaker:
        return False
    asked = _words(name)
    if not asked:
        return False
    parts = [speaker, *speaker.split(" and ")] if " and " in speaker else [speaker]
    for part in parts:
        said = _words(part)
        if said and (_suffix(said, asked) or _suffix(asked, said)):
            return True
    return False


def _day(published_at: str | None) -> int | None:
    try:
        return date_int(published_at) if published_at else None
    except AssistantError:  # a stored date the day parser does not take: undated
        return None


def _terms(text: str) -> frozenset[str]:
    return frozenset(stem(t) for t in tokenize(text))


class QuoteBook:
    """The archive's quotes in memory, following the store's change log (see the module docstring).

    `find` brings it in step first: one read of the change head by id, and only when it moved the chunks written
    since; a write this process just made is applied as written (`apply`)."""

    def __init__(self, store: Store):
        self.store = store
        self._by_chunk: dict[str, list[QuoteRecord]] = {}
        self._chunk_seq: dict[str, int] = {}
        self._unread: set[str] = set()  # chunks no extractor of this version read (before an upgrade's reindex)
        self._seen: int | None = None
        self._ident: str | None = None
        self._built = False
        self._lock = threading.Lock()

    # -- keeping in step ---------------------------------------------------------------------------------------
    def sync(self, full: bool = False) -> int:
        """Apply the store's changes since the last sync (the whole store on first use, `full`, or a collection
        made anew); returns the change head it is at."""
        with self._lock:
            head = self.store.change_head()
            ident = self.store.identity()
            if full or not self._built or ident != self._ident or (head or 0) < (self._seen or 0):
                self._rebuild(head, ident)
            elif head is not None and head > (self._seen or 0):
                self._apply(list(self.store.changes_since(self._seen or 0)),
                            self.store.deletions_since(self._seen or 0))
                self._seen = head
            return self._seen or 0

    def apply(self, written: Written) -> None:
        """A write this process just made: applied without reading it back when it is the only change since the
        last sync (else the next `find` reads what changed)."""
        with self._lock:
            if self._built and self._seen is not None and written.seq == self._seen + 1:
                self._apply(written.rows, [(cid, written.seq) for cid in written.deleted])
                self._seen = written.seq

    def _rebuild(self, head: int | None, ident: str) -> None:
        self._by_chunk, self._chunk_seq, self._unread = {}, {}, set()
        self._apply(list(self.store.iter_chunks()), [])
        self._seen, self._ident, self._built = head or 0, ident, True
        log.info("quote index: %d quotes of %d chunks", sum(map(len, self._by_chunk.values())), len(self._chunk_seq))

    def _apply(self, rows: list[tuple[str, str, dict[str, Any]]], deletions: list[tuple[str, int]]) -> None:
        changed = {cid: (text, meta) for cid, text, meta in rows}
        for cid, dseq in deletions:  # a chunk deleted after it was last written
            if cid in changed:
                if int(changed[cid][1].get("seq") or 0) < dseq:
                    del changed[cid]
                    self._drop(cid)
            elif self._chunk_seq.get(cid, -1) < dseq:
                self._drop(cid)
        version = extractor_version()
        for cid, (text, meta) in changed.items():
            self._drop(cid)
            self._chunk_seq[cid] = int(meta.get("seq") or 0)
            if meta.get("quotes_v") != version:
                self._unread.add(cid)
            records = self._records(cid, text, meta, changed)
            if records:
                self._by_chunk[cid] = records

    def _drop(self, cid: str) -> None:
        self._by_chunk.pop(cid, None)
        self._chunk_seq.pop(cid, None)
        self._unread.discard(cid)

    def unread(self) -> int:
        """How many stored chunks the current extractor has not read (an older one did, or none): until
        `assistant reindex` reads them, a speaker without quotes here may still be quoted there."""
        self.sync()
        return len(self._unread)

    def _records(self, cid: str, text: str, meta: dict[str, Any],
                 rows: dict[str, tuple[str, dict[str, Any]]]) -> list[QuoteRecord]:
        from assistant.index.store import stored_quotes

        found = stored_quotes(meta)
        if not found:
            return []
        c_start, c_end = int(meta.get("start") or 0), int(meta.get("end") or 0)
        sentences = [tuple(s) for s in json.loads(meta.get("sentences") or "[]")]
        out = []
        for start, end, kind, speaker, cue in found:
            quote = (text[start - c_start:end - c_start] if end <= c_end
                     else self._span(cid, text, meta, start, end, rows))
            if quote is None:
                continue
            inside = [i for i, (s, e) in enumerate(sentences) if s < end and e > start]
            if inside and inside[0] > 0:  # the lead-in sentence of the quote's paragraph ("X defended the plan.")
                ps, pe = sentences[inside[0] - 1]
                if ps >= c_start and "\n" not in text[pe - c_start:sentences[inside[0]][0] - c_start]:
                    inside.insert(0, inside[0] - 1)
            around = " ".join(text[max(s, c_start) - c_start:min(e, c_end) - c_start]
                              for s, e in (sentences[i] for i in inside))
            out.append(QuoteRecord(speaker, quote, kind, str(meta.get("article_id")), str(meta.get("title") or ""),
                                   meta.get("source"), meta.get("published_at"), meta.get("url"), start, end, cue,
                                   cid, int(meta.get("seq") or 0), _terms(quote + " " + around)))
        return out

    def _span(self, cid: str, text: str, meta: dict[str, Any], start: int, end: int,
              rows: dict[str, tuple[str, dict[str, Any]]]) -> str | None:
        """A quote running past its chunk's end: its text from the article's next chunks (in this batch of rows,
        else read by id)."""
        from assistant.index.store import visible_body

        aid, index = cid.rsplit(":", 1)
        pieces = [(int(meta["start"]), int(meta["end"]), text)]
        n = int(index) + 1
        while pieces[-1][1] < end:
            nid = f"{aid}:{n}"
            got = rows.get(nid)
            if got is None:
                fetched = self.store.get_passages([nid]).get(nid)
                got = (fetched.text, {"start": fetched.start, "end": fetched.end}) if fetched else None
            if got is None:
                return None  # the article's next chunk is gone: no verbatim text for this quote
            pieces.append((int(got[1]["start"]), int(got[1]["end"]), got[0]))
            n += 1
        body = visible_body(pieces)
        return body[start:end] if len(body) >= end else None

    # -- reading -------------------------------------------------------------------------------------------------
    def _records_now(self) -> list[QuoteRecord]:
        self.sync()
        return [r for rows in list(self._by_chunk.values()) for r in rows]

    def find(self, speaker: str | None = None, about: str | None = None, since: str | None = None,
             until: str | None = None, source: str | Sequence[str] | None = None, limit: int = 50,
             ) -> list[QuoteRecord]:
        """The stored quotes that match every filter given, newest first (published_at, then article, then
        offset). `speaker`: that person or organisation under any of their names (`speaker_matches`); `about`:
        every word of it (tokenized and stemmed as the keyword index does) in the quote, its sentences or the
        lead-in sentence before them in its paragraph;
        `since`/`until`: published on/after, on/before (the one day parser; undated articles left out);
        `source`: outlets whose name contains it, ignoring case (several: any of them)."""
        lo, hi = date_int(since), date_int(until)  # AssistantError for a bad day, before the store is read
        wanted = [source] if isinstance(source, str) else list(source or [])
        wanted = [w.lower() for w in wanted if w and w.strip()]
        need = _terms(about) if about else frozenset()
        out = []
        for r in self._records_now():
            if speaker is not None and not speaker_matches(r.speaker, speaker):
                continue
            if need and not need <= r.terms:
                continue
            if lo is not None or hi is not None:
                day = _day(r.published_at)
                if day is None or (lo is not None and day < lo) or (hi is not None and day > hi):
                    continue
            if wanted and not (r.source and any(w in r.source.lower() for w in wanted)):
                continue
            out.append(r)
        out.sort(key=lambda r: (r.article_id, r.start))
        out.sort(key=lambda r: r.published_at or "", reverse=True)  # stable: newest first, then article, offset
        return out[:max(0, limit)]

    def of_article(self, article_id: str) -> list[QuoteRecord]:
        """One article's quotes in text order."""
        return sorted((r for r in self._records_now() if r.article_id == article_id), key=lambda r: r.start)

    def of_chunks(self, chunk_ids: Sequence[str]) -> dict[str, list[QuoteRecord]]:
        """The quotes that start in each of these chunks, in text order (one sync for all of them)."""
        self.sync()
        return {cid: sorted(self._by_chunk.get(cid, []), key=lambda r: r.start) for cid in chunk_ids}

    def __len__(self) -> int:
        return len(self._records_now())
