"""The keyword index: BM25 over the same chunks as the vector store, in tantivy, a derived cache of the store.

It also indexes each stored article's copy-signature bands (`assistant.text.duplicates`), so an ingest finds the
few stored articles a new one may copy (`copy_candidates`) without reading the archive.

Chroma is the one store of truth. Each chunk carries a change sequence (`seq`) in its metadata and every
deletion leaves a tombstone in the store's change log (see `Store.change_head`), so any process can bring
its own copy of the index in step by applying what changed since the sequence it last saw.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import json
import logging
import math
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from assistant.text.duplicates import Signature
from assistant.text.words import _LATIN_MARKS, _WORD, STOPWORDS, fold_accents, tokenize

if TYPE_CHECKING:
    import tantivy

log = logging.getLogger(__name__)


def lexical_path(settings) -> Path:
    """Where the keyword index of the configured store lives (one per store location and collection)."""
    s = settings.store
    where = f"{s.host}_{s.port}" if s.host else "local"
    return settings.data_dir / "lexical" / f"{where}_{s.collection}"


# The token cache's version: a change to the tokenizer (its code, pattern or stopwords) rebuilds every index.
TOKENIZER_VERSION = hashlib.sha1(
    (inspect.getsource(tokenize) + inspect.getsource(fold_accents) + _WORD.pattern + _LATIN_MARKS.pattern
     + " ".join(sorted(STOPWORDS))).encode()
).hexdigest()[:12]
SCHEMA = "tantivy-2"
STATE_ID = "\x00state"  # the document that records what the index holds (committed with the changes it describes)
NO_DATE_MAX = 99_991_231


def _tantivy():
    import tantivy

    return tantivy


def _schema():
    """Our tokens joined by spaces go into `tokens` under tantivy's whitespace tokenizer, so the index
    keeps exactly `tokenize`'s words; term frequencies only (BM25 needs no positions)."""
    sb = _tantivy().SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    sb.add_text_field("tokens", stored=False, tokenizer_name="whitespace", index_option="freq")
    sb.add_integer_field("date", stored=True, indexed=True, fast=True)
    sb.add_text_field("source", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("text_hash", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_integer_field("seq", stored=True, indexed=False)
    sb.add_text_field("state", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("bands", stored=False, tokenizer_name="whitespace", index_option="basic")
    return sb.build()


class ChangeSource(Protocol):
    """What the index reads from the store of truth (implemented by `assistant.index.store.Store`)."""

    def identity(self) -> str: ...  # changes when the collection is dropped and made anew
    def change_head(self) -> int | None: ...  # the store's latest change sequence (None: no change log yet)
    def count(self) -> int: ...
    def iter_chunks(self) -> Iterator[tuple[str, str, dict[str, Any]]]: ...
    def changes_since(self, seq: int) -> Iterator[tuple[str, str, dict[str, Any]]]: ...
    def deletions_since(self, seq: int) -> list[tuple[str, int]]: ...


class OwnWrite(Protocol):
    """A write this process just made to the store (`assistant.index.store.Written`, a frozen dataclass: so
    read-only members)."""

    @property
    def seq(self) -> int: ...
    @property
    def rows(self) -> list[tuple[str, str, dict[str, Any]]]: ...
    @property
    def deleted(self) -> list[str]: ...


@dataclass(frozen=True)
class KeywordFilter:
    """A date window and outlet filter, applied inside the keyword query (what `LexicalIndex.mask` returns)."""

    date_from: int | None = None
    date_to: int | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class SyncReport:
    rebuilt: bool = False
    upserted: int = 0
    deleted: int = 0
    seq: int | None = None


@dataclass(frozen=True)
class IndexRow:
    """What the keyword index holds of one store chunk: its tokens (title included), date, outlet, the
    change sequence of the write that stored it, and the copy-signature bands of its article's first chunk."""

    id: str
    text_hash: str | None
    tokens: str
    date_int: int
    source: str
    seq: int
    bands: str

    @classmethod
    def of(cls, cid: str, text: str, meta: dict[str, Any]) -> IndexRow:
        meta = meta or {}
        sig = Signature.from_meta(meta) if meta.get("chunk_index") == 0 else None
        return cls(cid, meta.get("text_hash"), " ".join(tokenize((meta.get("title") or "") + "\n" + (text or ""))),
                   int(meta.get("date_int") or 0), meta.get("source") or "", int(meta.get("seq") or 0),
                   " ".join(sig.bands()) if sig is not None else "")


class LexicalIndex:
    """BM25 over chunk texts (title included) in a tantivy index at `path`/tantivy.

    Readers never block and never see half a change: every query runs on one tantivy searcher, an immutable
    snapshot of the committed segments, taken for that query alone (`mask` returns a plain value applied
    inside it). With a `source` (the store), the index keeps itself in step: at most every SYNC_SECONDS a
    query first applies the store's changes since the sequence the index last saw (one thread of a process
    at a time, one process at a time through a lock file; the other threads go on reading the last commit).
    An ingest costs what it changes: a commit of its documents, nothing else is rewritten. What the index
    holds (store, tokenizer version, change sequence) is a document committed with the changes themselves.
    """

    SYNC_SECONDS = 1.0

    def __init__(self, path: Path, source: ChangeSource | None = None):
        self.path = Path(path)
        self.dir = self.path / "tantivy"
        self.source = source
        self._index: tantivy.Index | None = None
        self._open_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._checked = float("-inf")

    # -- the index and its snapshots -------------------------------------------------------------
    def _opened(self, reload: bool = False):
        """This process's handle on the index (None while none exists); `reload` picks up new commits."""
        t = _tantivy()
        with self._open_lock:
            if self._index is None:
                if not (self.dir / "meta.json").exists():
                    return None
                self._index = t.Index.open(str(self.dir))
                self._index.config_reader("Manual")
            elif reload:
                self._index.reload()
            return self._index

    def _snapshot(self):
        """(index, searcher) for one query: the latest commit this process has loaded."""
        self._maybe_sync()
        index = self._opened()
        return (index, index.searcher()) if index is not None else (None, None)

    @staticmethod
    def _state(index, searcher) -> dict[str, Any]:
        t = _tantivy()
        hits = searcher.search(t.Query.term_query(index.schema, "id", STATE_ID), 1).hits
        if not hits:
            return {}
        try:
            return json.loads(searcher.doc(hits[0][1])["state"][0])
        except (ValueError, KeyError, IndexError):
            return {}

    # -- keeping in step with the store -----------------------------------------------------------
    def _maybe_sync(self) -> None:
        if time.monotonic() - self._checked < self.SYNC_SECONDS:
            return
        if not self._sync_lock.acquire(blocking=False):
            return  # another thread is syncing: read the last commit
        try:
            self._checked = time.monotonic()
            if self.source is None:
                self._opened(reload=True)  # a read-only index still sees other processes' commits
            else:
                self._sync_locked(full=False, wait=False)
        except Exception as e:  # noqa: BLE001 - a store outage must not break keyword search
            log.warning("keyword index not brought in step with the store (%s); using it as it is", e)
        finally:
            self._sync_lock.release()

    def sync(self, full: bool = False, written: OwnWrite | None = None) -> SyncReport:
        """Apply the store's changes since the last sync (or rebuild from the whole store: `full`, a first
        sync, a tokenizer change, a collection made anew). Safe from any thread and any process.

        `written`: a write this process has just made. When it is the only change since the last sync (the
        index was at the sequence before it, the store's head is its sequence), its rows are applied as they
        are, without reading them back (a metadata query that grows with the archive)."""
        if self.source is None:
            raise ValueError("this keyword index has no store to sync from")
        with self._sync_lock:
            self._checked = time.monotonic()
            return self._sync_locked(full, written=written)

    def _sync_locked(self, full: bool, wait: bool = True, written: OwnWrite | None = None) -> SyncReport:
        """The sync itself (this object's sync lock held). A query does not `wait` for another process's
        sync (a rebuild can take a while): it reads the last commit and tries again later."""
        source = self.source
        assert source is not None  # both callers (sync, _maybe_sync) return before this without a source
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "write.lock", "a+") as lock:
            try:  # one writer across processes (tantivy allows one IndexWriter per index)
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                self._opened(reload=True)
                return SyncReport()
            try:
                index = self._opened(reload=True)
                state = self._state(index, index.searcher()) if index is not None else {}
            except ValueError as e:  # tantivy's error for unreadable index files: a cache, so made anew
                log.warning("keyword index at %s is unreadable (%s); rebuilding it from the store", self.dir, e)
                index, state = None, {}
            head = source.change_head()  # read under the lock: no other sync can move past it meanwhile
            ident = source.identity()
            seen = state.get("seq")
            if index is None or state.get("schema") != SCHEMA:
                index = self._create()
                full = True
            if (full or seen is None or state.get("tokenizer") != TOKENIZER_VERSION
                    or state.get("store") != ident or (head or 0) < seen):
                report = self._rebuild(index, source, head, ident)
            elif written is not None and written.seq == head == seen + 1:
                report = self._commit(index, {cid: IndexRow.of(cid, text, meta) for cid, text, meta in written.rows},
                                      set(written.deleted), head, ident)
            elif head is not None and head > seen:
                report = self._apply(index, source, seen, head, ident)
            else:
                return SyncReport(seq=seen)
            self._opened(reload=True)
        if report.rebuilt or report.upserted or report.deleted:
            log.info("keyword index: %s", report)
        return report

    def _create(self):
        """A new, empty index (none yet, or one of an older schema: removed)."""
        t = _tantivy()
        with self._open_lock:
            self._index = None
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            index = t.Index(_schema(), path=str(self.dir), reuse=False)
            index.config_reader("Manual")
            self._index = index
        return index

    @staticmethod
    def _document(row: IndexRow):
        return _tantivy().Document(id=row.id, tokens=row.tokens, date=row.date_int, source=row.source,
                                   text_hash=row.text_hash or "", seq=row.seq, bands=row.bands)

    @staticmethod
    def _state_document(seq: int | None, ident: str):
        state = {"schema": SCHEMA, "tokenizer": TOKENIZER_VERSION, "store": ident, "seq": seq or 0}
        return _tantivy().Document(id=STATE_ID, tokens="", date=0, source="", text_hash="", seq=0, bands="",
                                   state=json.dumps(state))

    @staticmethod
    @contextlib.contextmanager
    def _committing(index):
        """A writer whose documents are committed together when the block ends, or rolled back if it fails."""
        writer = index.writer(heap_size=64_000_000, num_threads=1)
        try:
            yield writer
            writer.commit()
        except BaseException:
            writer.rollback()
            raise
        writer.wait_merging_threads()

    def _rebuild(self, index, source: ChangeSource, head: int | None, ident: str) -> SyncReport:
        n = 0
        with self._committing(index) as writer:
            writer.delete_all_documents()
            for cid, text, meta in source.iter_chunks():
                writer.add_document(self._document(IndexRow.of(cid, text, meta)))
                n += 1
            writer.add_document(self._state_document(head, ident))
        return SyncReport(rebuilt=True, upserted=n, seq=head or 0)

    def _apply(self, index, source: ChangeSource, seen: int, head: int, ident: str) -> SyncReport:
        """Upsert the chunks changed after `seen` and drop the chunks deleted after it, unless a later write
        brought them back. Changes past `head` (a write still under way) are applied too, harmlessly: the
        next sync starts again from `head`."""
        t = _tantivy()
        searcher = index.searcher()
        changed = {cid: IndexRow.of(cid, text, meta) for cid, text, meta in source.changes_since(seen)}
        doomed = set()
        for cid, dseq in source.deletions_since(seen):
            if cid in changed:
                if changed[cid].seq < dseq:
                    doomed.add(cid)
                    del changed[cid]
                continue
            hits = searcher.search(t.Query.term_query(index.schema, "id", cid), 1).hits
            if hits and int(searcher.doc(hits[0][1])["seq"][0]) < dseq:
                doomed.add(cid)
        return self._commit(index, changed, doomed, head, ident)

    def _commit(self, index, changed: dict[str, IndexRow], doomed: set[str], head: int, ident: str) -> SyncReport:
        """One commit: the doomed and changed chunks' documents removed, the changed ones added, the state."""
        with self._committing(index) as writer:
            for cid in [*doomed, *changed, STATE_ID]:  # deletions first: they apply to earlier documents only
                writer.delete_documents_by_term("id", cid)
            for row in changed.values():
                writer.add_document(self._document(row))
            writer.add_document(self._state_document(head, ident))
        return SyncReport(upserted=len(changed), deleted=len(doomed), seq=head)

    def status(self, against_store: bool = True) -> dict[str, Any]:
        """Whether this index is in step with its store: same change sequence and the same chunk count
        (looked at as it is: no sync first). `against_store=False` reports only what the index holds,
        without asking the store (the health probe while the store is down)."""
        index = self._opened(reload=True)
        searcher = index.searcher() if index is not None else None
        state = self._state(index, searcher) if index is not None else {}
        out: dict[str, Any] = {"chunks": self._count(searcher, state), "seq": state.get("seq"), "path": str(self.dir)}
        if against_store and self.source is not None:
            head, count = self.source.change_head(), self.source.count()
            empty = count == 0 and out["chunks"] == 0 and head is None  # nothing stored, nothing to index
            out.update(store_chunks=count, store_seq=head,
                       in_step=empty or (state.get("seq") == (head or 0) and out["chunks"] == count
                                         and state.get("tokenizer") == TOKENIZER_VERSION))
        return out

    # -- reading -------------------------------------------------------------------------------
    @staticmethod
    def _count(searcher, state: dict[str, Any]) -> int:
        return 0 if searcher is None else searcher.num_docs - (1 if state else 0)

    def __len__(self) -> int:
        index, searcher = self._snapshot()
        return 0 if index is None else self._count(searcher, self._state(index, searcher))

    def _all(self, searcher, index) -> list[dict[str, Any]]:
        t = _tantivy()
        if searcher is None or not searcher.num_docs:
            return []
        hits = searcher.search(t.Query.all_query(), searcher.num_docs).hits
        docs = [searcher.doc(addr) for _, addr in hits]
        return [d for d in docs if d["id"][0] != STATE_ID]

    @property
    def ids(self) -> list[str]:
        """Every indexed chunk id, sorted (reads every document: for checks, not for queries)."""
        index, searcher = self._snapshot()
        return sorted(d["id"][0] for d in self._all(searcher, index))

    @property
    def sources(self) -> list[str]:
        """The distinct outlets of the indexed chunks."""
        index, searcher = self._snapshot()
        return self._sources(searcher)

    @staticmethod
    def _sources(searcher) -> list[str]:
        if searcher is None:
            return []
        return sorted(term for term, count in searcher.terms_with_prefix("source", "") if term and count)

    def search(self, query: str, k: int, mask: KeywordFilter | None = None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) best first; `mask` (from `mask()`) restricts the candidates."""
        tokens = tokenize(query)
        index, searcher = self._snapshot()
        if index is None or not tokens or k <= 0:
            return []
        t = _tantivy()
        schema = index.schema
        # a repeated word counts again, as in bm25s
        q = t.Query.boolean_query([(t.Occur.Should, t.Query.term_query(schema, "tokens", tok)) for tok in tokens])
        if mask is not None:
            must = [(t.Occur.Must, q)]
            if mask.date_from is not None or mask.date_to is not None:
                lo = max(mask.date_from or 0, 1 if mask.date_to is not None else 0)
                must.append((t.Occur.Must, t.Query.range_query(schema, "date", t.FieldType.Integer, lo,
                                                               mask.date_to if mask.date_to is not None
                                                               else NO_DATE_MAX)))
            if mask.sources:
                wanted = [w.lower() for w in mask.sources]
                names = [s for s in self._sources(searcher) if any(w in s.lower() for w in wanted)]
                if not names:
                    return []
                must.append((t.Occur.Must, t.Query.boolean_query(
                    [(t.Occur.Should, t.Query.term_query(schema, "source", n)) for n in names])))
            q = t.Query.boolean_query(must)
        hits = searcher.search(q, k).hits
        out = [(searcher.doc(addr)["id"][0], float(score)) for score, addr in hits]
        return [(cid, score) for cid, score in out if score > 0 and cid != STATE_ID]

    def copy_candidates(self, bands: list[str], limit: int = 100) -> list[str]:
        """Ids of the indexed articles whose copy signature shares one of these band terms, most shared first
        (`Signature.lookup_bands`); the caller compares the signatures themselves."""
        index, searcher = self._snapshot()
        if index is None or not bands:
            return []
        t = _tantivy()
        q = t.Query.boolean_query([(t.Occur.Should, t.Query.term_query(index.schema, "bands", b)) for b in bands])
        return [searcher.doc(addr)["id"][0].rsplit(":", 1)[0] for _, addr in searcher.search(q, limit).hits]

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each (already tokenized) term; unseen terms get the maximum."""
        index, searcher = self._snapshot()
        n = 0 if index is None else self._count(searcher, self._state(index, searcher))
        if not n:
            return {t: 1.0 for t in terms}
        return {t: math.log(1 + (n - (df := min(n, searcher.doc_freq("tokens", t))) + 0.5) / (df + 0.5))
                for t in terms}

    def mask(self, date_from: int | None = None, date_to: int | None = None,
             sources: list[str] | None = None) -> KeywordFilter | None:
        """The filter `search` applies in its query (None: no filter)."""
        if date_from is None and date_to is None and not sources:
            return None
        return KeywordFilter(date_from, date_to, tuple(sources or ()))
