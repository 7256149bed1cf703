"""The SQLite FTS5 keyword index measured against tantivy for issue 15 (bench/lexical.py), kept so the
comparison in bench/RESULTS.md can be run again; the product uses tantivy (assistant/index/lexical.py).

Same interface and change-source sync as `assistant.index.lexical.LexicalIndex`; our tokens, joined by spaces, in
an FTS5 table (unicode61 with our token characters, so nothing is split again), bm25() ranking, WAL readers.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from assistant.index.lexical import (  # noqa: F401
    STOPWORDS,
    TOKENIZER_VERSION,
    ChangeSource,
    KeywordFilter,
    SyncReport,
    _cache_fields,
    tokenize,
)

log = logging.getLogger(__name__)

SCHEMA = "fts5-1"
# Our tokens, joined by spaces, are FTS5's input: unicode61 must split on spaces only and change nothing, so the
# characters a token may hold besides letters and digits are token characters and diacritics are kept.
_FTS_TOKENIZER = "unicode61 remove_diacritics 0 tokenchars '-_.'''"
_DDL = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS chunks (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text_hash TEXT,
    date_int INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL DEFAULT '', source_lc TEXT NOT NULL DEFAULT '',
    seq INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS chunks_date ON chunks (date_int);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5 (tokens, tokenize = "{_FTS_TOKENIZER}");
CREATE VIRTUAL TABLE IF NOT EXISTS fts_vocab USING fts5vocab (fts, 'row');
"""


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Statements one by one (`executescript` would commit the transaction they belong to)."""
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


class Fts5Index:
    """BM25 over chunk texts (title included) in an SQLite FTS5 table at `path`/fts.sqlite3 (WAL mode).

    Readers never block: each query is one SQL statement on a thread's own connection, so it sees one
    consistent snapshot of the index even while another thread or process writes. With a `source` (the
    store), the index keeps itself in step: at most every SYNC_SECONDS a query first applies the store's
    changes since the sequence the index last saw (one thread at a time; the others go on reading).
    An ingest costs what it changes: its rows are upserted in one transaction, nothing else is rewritten.
    """

    SYNC_SECONDS = 1.0

    def __init__(self, path: Path, source: ChangeSource | None = None):
        self.path = Path(path)
        self.db = self.path / "fts.sqlite3"
        self.source = source
        self._local = threading.local()
        self._sync_lock = threading.Lock()
        self._checked = float("-inf")

    # -- connections -----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db, timeout=30, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def _reader(self) -> sqlite3.Connection | None:
        """This thread's read connection (None while no index file exists)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if not self.db.exists():
                return None
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        conn = self._reader()
        if conn is None:
            return []
        try:
            return conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):  # an index file created but not yet filled
                return []
            raise

    def _meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    # -- keeping in step with the store -----------------------------------------------------------
    def _maybe_sync(self) -> None:
        if self.source is None or time.monotonic() - self._checked < self.SYNC_SECONDS:
            return
        if not self._sync_lock.acquire(blocking=False):
            return  # another thread is syncing: read what is there
        try:
            self._checked = time.monotonic()
            self._sync_locked(full=False)
        except Exception as e:  # noqa: BLE001 - a store outage must not break keyword search
            log.warning("keyword index not brought in step with the store (%s); using it as it is", e)
        finally:
            self._sync_lock.release()

    def sync(self, full: bool = False) -> SyncReport:
        """Apply the store's changes since the last sync (or rebuild from the whole store: `full`, a first
        sync, a tokenizer change, a collection made anew). Safe from any thread and any process."""
        if self.source is None:
            raise ValueError("this keyword index has no store to sync from")
        with self._sync_lock:
            self._checked = time.monotonic()
            return self._sync_locked(full)

    def _sync_locked(self, full: bool) -> SyncReport:
        source = self.source
        self.path.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            _script(conn, _DDL)
            conn.execute("BEGIN IMMEDIATE")  # one writer across processes; readers keep their snapshot
            try:
                state = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                head = source.change_head()  # read inside the write lock: no other sync can move past it
                ident = source.identity()
                seen = int(state["seq"]) if state.get("seq") not in (None, "") else None
                if (full or seen is None or state.get("schema") != SCHEMA
                        or state.get("tokenizer") != TOKENIZER_VERSION or state.get("store") != ident
                        or (head or 0) < seen):
                    report = self._rebuild(conn, source, head)
                elif head is not None and head > seen:
                    report = self._apply(conn, source, seen, head)
                else:
                    conn.execute("ROLLBACK")
                    return SyncReport(seq=seen)
                conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
                    ("schema", SCHEMA), ("tokenizer", TOKENIZER_VERSION), ("store", ident),
                    ("seq", str(report.seq or 0)),
                    ("chunks", str(conn.execute("SELECT count(*) FROM chunks").fetchone()[0]))])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
        if report.rebuilt or report.upserted or report.deleted:
            log.info("keyword index: %s", report)
        return report

    @staticmethod
    def _rebuild(conn: sqlite3.Connection, source: ChangeSource, head: int | None) -> SyncReport:
        _script(conn, "DROP TABLE IF EXISTS fts_vocab; DROP TABLE IF EXISTS fts; DROP TABLE IF EXISTS chunks;"
                      "DELETE FROM meta;" + _DDL)
        n = 0
        batch: list[tuple] = []
        for cid, text, meta in source.iter_chunks():
            batch.append(_cache_fields(cid, text, meta))
            if len(batch) >= 2000:
                n += Fts5Index._insert(conn, batch)
                batch = []
        n += Fts5Index._insert(conn, batch)
        return SyncReport(rebuilt=True, upserted=n, seq=head or 0)

    @staticmethod
    def _insert(conn: sqlite3.Connection, rows: list[tuple]) -> int:
        for cid, text_hash, tokens, date_int, source, source_lc, seq in rows:
            cur = conn.execute("INSERT INTO chunks (id, text_hash, date_int, source, source_lc, seq) "
                               "VALUES (?, ?, ?, ?, ?, ?)", (cid, text_hash, date_int, source, source_lc, seq))
            conn.execute("INSERT INTO fts (rowid, tokens) VALUES (?, ?)", (cur.lastrowid, tokens))
        return len(rows)

    @staticmethod
    def _apply(conn: sqlite3.Connection, source: ChangeSource, seen: int, head: int) -> SyncReport:
        """Upsert the chunks changed after `seen`, then drop the chunks deleted after it (unless a later write
        brought them back). Changes past `head` (a write still under way) are applied too, harmlessly: the
        next sync starts again from `head`."""
        upserted = deleted = 0
        for cid, text, meta in source.changes_since(seen):
            row = _cache_fields(cid, text, meta)
            old = conn.execute("SELECT rowid FROM chunks WHERE id = ?", (cid,)).fetchone()
            if old is not None:
                conn.execute("DELETE FROM fts WHERE rowid = ?", old)
                conn.execute("DELETE FROM chunks WHERE rowid = ?", old)
            Fts5Index._insert(conn, [row])
            upserted += 1
        for cid, dseq in source.deletions_since(seen):
            old = conn.execute("SELECT rowid FROM chunks WHERE id = ? AND seq < ?", (cid, dseq)).fetchone()
            if old is not None:
                conn.execute("DELETE FROM fts WHERE rowid = ?", old)
                conn.execute("DELETE FROM chunks WHERE rowid = ?", old)
                deleted += 1
        return SyncReport(upserted=upserted, deleted=deleted, seq=head)

    def status(self) -> dict[str, Any]:
        """Whether this index is in step with its store: same change sequence and the same chunk count."""
        seq = self._meta("seq")
        out: dict[str, Any] = {"chunks": len(self), "seq": int(seq) if seq else None, "path": str(self.db)}
        if self.source is not None:
            head, count = self.source.change_head(), self.source.count()
            out.update(store_chunks=count, store_seq=head,
                       in_step=seq is not None and int(seq) == (head or 0) and out["chunks"] == count
                       and self._meta("tokenizer") == TOKENIZER_VERSION)
        return out

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        self._maybe_sync()
        n = self._meta("chunks")
        return int(n) if n else 0

    @property
    def ids(self) -> list[str]:
        """Every indexed chunk id, sorted."""
        self._maybe_sync()
        return [r[0] for r in self._read("SELECT id FROM chunks ORDER BY id")]

    @property
    def sources(self) -> list[str]:
        """The distinct outlets of the indexed chunks ('' for chunks without one)."""
        self._maybe_sync()
        return [r[0] for r in self._read("SELECT DISTINCT source FROM chunks ORDER BY source")]

    def load_cache(self) -> dict[str, list[Any]]:
        """chunk id -> [text hash, tokens, date_int, source], as stored."""
        rows = self._read("SELECT c.id, c.text_hash, f.tokens, c.date_int, c.source FROM chunks c "
                          "JOIN fts f ON f.rowid = c.rowid")
        return {cid: [h, tokens.split(), d or None, s or None] for cid, h, tokens, d, s in rows}

    def search(self, query: str, k: int, mask: KeywordFilter | None = None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) best first; `mask` (from `mask()`) restricts the candidates."""
        self._maybe_sync()
        tokens = tokenize(query)
        if not tokens or k <= 0:
            return []
        sql = ("SELECT c.id, -bm25(fts) AS score FROM fts JOIN chunks c ON c.rowid = fts.rowid "
               "WHERE fts MATCH ?")
        args: list[Any] = [" OR ".join(f'"{t}"' for t in tokens)]  # a repeated word counts again, as in bm25s
        if mask is not None:
            if mask.date_from is not None:
                sql += " AND c.date_int >= ?"
                args.append(mask.date_from)
            if mask.date_to is not None:
                sql += " AND c.date_int <= ? AND c.date_int > 0"
                args.append(mask.date_to)
            if mask.sources:
                sql += " AND (" + " OR ".join("instr(c.source_lc, ?) > 0" for _ in mask.sources) + ")"
                args += [s.lower() for s in mask.sources]
        sql += " ORDER BY bm25(fts), c.id LIMIT ?"
        args.append(k)
        return [(cid, float(score)) for cid, score in self._read(sql, args) if score > 0]

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each (already tokenized) term; unseen terms get the maximum."""
        n = len(self)
        if not n:
            return {t: 1.0 for t in terms}
        out = {}
        for t in terms:
            rows = self._read("SELECT doc FROM fts_vocab WHERE term = ?", (t,))
            df = int(rows[0][0]) if rows else 0
            out[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return out

    def mask(self, date_from: int | None = None, date_to: int | None = None,
             sources: list[str] | None = None) -> KeywordFilter | None:
        """The filter `search` applies in its query (None: no filter)."""
        if date_from is None and date_to is None and not sources:
            return None
        return KeywordFilter(date_from, date_to, tuple(sources or ()))
