"""The vector store (Chroma): the only module importing chromadb. The embedder is in `assistant.index.embedder`."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.errors import StoreError
from assistant.index.embedder import Embedder
from assistant.models import Article, Chunk, Passage
from assistant.text.timeparse import date_int

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Written:
    """What one `Store.write` changed: its change sequence, the (id, text, metadata) rows it stored and the
    chunk ids it deleted (what the keyword index applies without reading the write back)."""

    seq: int
    rows: list[tuple[str, str, dict[str, Any]]]
    deleted: list[str]


def chunk_metadata(article: Article, chunk: Chunk, text_hash: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "article_id": article.id, "chunk_index": chunk.index, "start": chunk.start, "end": chunk.end,
        "title": article.title, "hash": article.hash, "text_hash": text_hash,
        "sentences": json.dumps(chunk.sentences),
    }
    for key in ("source", "author", "published_at", "url", "origin"):
        value = getattr(article, key)
        if value:
            meta[key] = value
    if article.published_at:
        meta["date_int"] = date_int(article.published_at)
    return meta


def passage_from(chunk_id: str, text: str, meta: dict[str, Any], score: float = 0.0) -> Passage:
    return Passage(
        chunk_id=chunk_id, article_id=meta["article_id"], text=text, start=int(meta["start"]),
        end=int(meta["end"]), title=meta.get("title", ""), source=meta.get("source"),
        published_at=meta.get("published_at"), url=meta.get("url"),
        sentences=[tuple(s) for s in json.loads(meta.get("sentences", "[]"))], score=score,
    )


# chromadb keeps one client "system" per path in a plain class-level dict (SharedSystemClient), filled and
# emptied without a lock: clients are made and closed under this one.
_CLIENTS_LOCK = threading.Lock()
LOG_SUFFIX = ".changes"  # the change log beside a collection: its head sequence and the tombstones of deletions
HEAD_ID = "head"
LEASE_ID = "lease"  # the write lease of hosts ingesting into one Chroma server (no `seq`: never a change)


def _chroma_settings():
    import chromadb

    return chromadb.Settings(anonymized_telemetry=False)


class _Handle:
    """A Chroma client and the collections opened through it.

    Every store call holds a handle for its duration. A reopen puts a fresh handle in place and retires the
    old one, which the last call still using it closes: a client is never closed under another thread.
    """

    def __init__(self, client, stamp: int | None, closes: bool):
        self.client = client
        self.stamp = stamp  # the embedded store files' mtime when this handle last read or wrote them
        self.closes = closes
        self.collections: dict[str, Any] = {}
        self.users = 0
        self.retired = False


class _Embedded:
    """The one current handle of an embedded store folder, shared by every Store of this process."""

    _folders: dict[str, _Embedded] = {}
    _folders_lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.current: _Handle | None = None
        self.reopens = 0

    @classmethod
    def of(cls, path: Path) -> _Embedded:
        key = str(path.resolve())
        with cls._folders_lock:
            if key not in cls._folders:
                cls._folders[key] = cls(path)
            return cls._folders[key]

    def files_stamp(self) -> int:
        db = self.path / "chroma.sqlite3"
        stamp = 0
        for f in (db, db.with_name(db.name + "-wal")):
            try:
                stamp = max(stamp, f.stat().st_mtime_ns)
            except OSError:
                pass
        return stamp

    def acquire(self, stale: _Handle | None = None) -> _Handle:
        """The current handle, first replaced by a fresh client when the files changed since it last saw
        them (another process wrote) or when `stale` (a handle whose call just failed) is still current."""
        with self.lock:
            h = self.current
            stamp = self.files_stamp()
            if h is None or h is stale or h.stamp != stamp:
                if h is not None:
                    log.info("the embedded store changed on disk; reopening it")
                self.current = self._open(fresh=h is not None)
                if h is not None:
                    self._retire(h)
                h = self.current
            h.users += 1
            return h

    def release(self, h: _Handle) -> None:
        with self.lock:
            h.users -= 1
            close = h.retired and h.users == 0
        if close:
            self._close(h)

    def wrote(self, h: _Handle) -> None:
        """This process's own write: no reason for its readers to reopen."""
        with self.lock:
            if self.current is h:
                h.stamp = self.files_stamp()

    def _retire(self, h: _Handle) -> None:  # under self.lock
        h.retired = True
        if h.users == 0:
            threading.Thread(target=self._close, args=(h,), daemon=True).start()

    def _open(self, fresh: bool) -> _Handle:
        """A client reading the folder anew. chromadb shares one system per path spelling, and a live system
        keeps its old in-memory index, so a reopen takes the first spelling of the folder no live system has
        (`chroma`, `chroma/.`, `chroma/./.`, ...): with retired clients closed, that stays at one or two."""
        import chromadb
        from chromadb.api.shared_system_client import SharedSystemClient

        self.path.mkdir(parents=True, exist_ok=True)
        with _CLIENTS_LOCK:
            spelling = str(self.path)
            while fresh and spelling in SharedSystemClient._identifier_to_system:
                spelling += "/."
            client = chromadb.PersistentClient(path=spelling, settings=_chroma_settings())
            self.reopens += fresh
        # opening touches the files itself: the stamp is taken after, or every call would reopen again
        return _Handle(client, self.files_stamp(), closes=True)

    @staticmethod
    def _close(h: _Handle) -> None:
        if h.closes:
            with _CLIENTS_LOCK:
                try:
                    h.client.close()
                except Exception as e:  # noqa: BLE001 - closing is best effort
                    log.debug("closing a retired Chroma client failed: %s", e)


class Store:
    """Chunks and their embeddings in a Chroma collection, embedded or on a Chroma server.

    Beside the collection, a small change log collection (`<collection>.changes`) holds the sequence of the
    latest write (`head`) and a tombstone per deleted chunk; each chunk's metadata carries the sequence of the
    write that stored it (`seq`). The keyword index of any process follows the store through them
    (`assistant.index.lexical.LexicalIndex.sync`). One writer at a time (the ingest lock) allocates sequences.
    """

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.embedder = embedder or Embedder.shared(settings.embedding)
        self._server: _Handle | None = None
        self._server_lock = threading.Lock()
        self._embedded = None if settings.store.host else _Embedded.of(settings.data_dir / "chroma")
        self._written = False  # a change log was seen: the store has been written to (`is_empty`)

    @property
    def location(self) -> str:
        s = self.settings.store
        if s.host:
            return f"{'https' if s.ssl else 'http'}://{s.host}:{s.port}"
        return str(self.settings.data_dir / "chroma")

    # -- handles ---------------------------------------------------------------------------------
    def _acquire(self, stale: _Handle | None = None) -> _Handle:
        s = self.settings.store
        try:
            if self._embedded is not None:
                return self._embedded.acquire(stale)
            with self._server_lock:
                if self._server is None:
                    import chromadb

                    with _CLIENTS_LOCK:
                        client = chromadb.HttpClient(host=s.host, port=s.port, ssl=s.ssl, settings=_chroma_settings())
                    client.heartbeat()
                    self._server = _Handle(client, None, closes=False)
                return self._server
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001 - chroma raises many kinds
            hint = ("start it with `chroma run --port PORT` or unset store.host" if s.host
                    else "check that the data dir is writable (--data-dir)")
            raise StoreError(f"cannot open the Chroma store at {self.location}: {e}", hint) from e

    def _release(self, h: _Handle) -> None:
        if self._embedded is not None:
            self._embedded.release(h)

    @property
    def client(self):
        """The current Chroma client (for callers that hold it briefly; store calls hold their handle)."""
        h = self._acquire()
        self._release(h)
        return h.client

    def _collection_of(self, h: _Handle, create: bool = True, log_collection: bool = False):
        name = self.settings.store.collection + (LOG_SUFFIX if log_collection else "")
        col = h.collections.get(name)
        if col is None:
            try:
                if log_collection and create:
                    col = h.client.get_or_create_collection(name, embedding_function=None)
                elif log_collection or not create:
                    col = h.client.get_collection(name, embedding_function=None)
                else:
                    col = h.client.get_or_create_collection(
                        name, configuration={"hnsw": {"space": "cosine"}},
                        metadata={"embedding_model": self.embedder.name}, embedding_function=None)
            except StoreError:
                raise
            except Exception as e:  # noqa: BLE001
                if not create:
                    return None
                raise StoreError(f"cannot open collection {name!r} at {self.location}: {e}") from e
            h.collections[name] = col
            if self._embedded is not None:
                self._embedded.wrote(h)  # opening a collection may touch the files too: not another process
        if not log_collection:
            built_with = (col.metadata or {}).get("embedding_model")
            if built_with and built_with != self.embedder.name:
                raise StoreError(
                    f"collection {self.settings.store.collection!r} was built with embedding model {built_with!r}, "
                    f"but the configured model is {self.embedder.name!r}",
                    "set embedding.model and embedding.backend back, or use another --data-dir / store.collection and re-ingest",
                )
        return col

    def collection(self, create: bool = True):
        """The chunk collection; refuses a collection built by another embedding model."""
        h = self._acquire()
        try:
            return self._collection_of(h, create)
        finally:
            self._release(h)

    def _call(self, what: str, method: str, *, log_collection: bool = False, create: bool = True, **kwargs):
        """One Chroma call on the current handle, held for the call's duration.

        An embedded store written by another process (an ingest beside a server) can fail a read while this
        process's in-memory index lags the files ("Error finding id"): reopen and retry once.
        """
        h = self._acquire()
        try:
            return self._run(h, what, method, log_collection, create, kwargs)
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001
            if what not in ("read", "query", "count") or self._embedded is None:
                raise StoreError(f"Chroma {what} failed at {self.location}: {e}") from e
            log.info("Chroma %s failed (%s); reopening the embedded store and retrying", what, e)
        finally:
            self._release(h)
        fresh = self._acquire(stale=h)
        try:
            return self._run(fresh, what, method, log_collection, create, kwargs)
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001
            raise StoreError(f"Chroma {what} failed at {self.location}: {e}") from e
        finally:
            self._release(fresh)

    def _run(self, h: _Handle, what: str, method: str, log_collection: bool, create: bool, kwargs: dict):
        col = self._collection_of(h, create, log_collection)
        if col is None:
            return None
        out = getattr(col, method)(**kwargs)
        if what in ("write", "delete") and self._embedded is not None:
            self._embedded.wrote(h)
        return out

    # -- the change log -------------------------------------------------------------------------
    def identity(self) -> str:
        """The collection's id: a collection dropped and made anew is another store to the keyword index."""
        h = self._acquire()
        try:
            return str(self._collection_of(h).id)
        finally:
            self._release(h)

    def change_head(self) -> int | None:
        """The sequence of the latest write (None: nothing written since change logging began)."""
        got = self._call("read", "get", log_collection=True, create=False, ids=[HEAD_ID], include=["metadatas"])
        return int(got["metadatas"][0]["seq"]) if got and got["ids"] else None

    def changes_since(self, seq: int, page: int = 5000) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(id, text, metadata) of the chunks written after `seq`."""
        for got in self._pages(["documents", "metadatas"], page, where={"seq": {"$gt": seq}}):
            yield from zip(got["ids"], got["documents"], got["metadatas"])

    def deletions_since(self, seq: int) -> list[tuple[str, int]]:
        """(chunk id, sequence) of the chunks deleted after `seq`."""
        got = self._call("read", "get", log_collection=True, create=False, where={"seq": {"$gt": seq}},
                         include=["metadatas"])
        if not got:
            return []
        return [(m["chunk_id"], int(m["seq"])) for i, m in zip(got["ids"], got["metadatas"]) if i != HEAD_ID]

    def _next_seq(self) -> int:
        return (self.change_head() or 0) + 1

    def _log(self, seq: int, deleted: list[str]) -> None:
        """Record a write: tombstones of its deleted chunks, then the new head (last, so a reader that sees
        the head sees the whole write)."""
        ids = [f"del:{cid}" for cid in deleted] + [HEAD_ID]
        metas = [{"seq": seq, "chunk_id": cid} for cid in deleted] + [{"seq": seq, "chunk_id": ""}]
        for i in range(0, len(ids), 5000):
            part = slice(i, i + 5000)
            self._call("write", "upsert", log_collection=True, ids=ids[part], metadatas=metas[part],
                       embeddings=np.ones((len(ids[part]), 1), dtype=np.float32))

    # -- the write lease (several ingest hosts on one Chroma server) ---------------------------------
    def lease(self) -> dict[str, Any] | None:
        """The write lease record ({holder, expires}) or None."""
        got = self._call("read", "get", log_collection=True, create=False, ids=[LEASE_ID], include=["metadatas"])
        return dict(got["metadatas"][0]) if got and got["ids"] else None

    def take_lease(self, holder: str, ttl: float, settle: float = 0.1) -> dict[str, Any] | None:
        """Take or renew the write lease; returns None when taken, else the other holder's unexpired lease.

        Chroma has no compare-and-set, so this is a guard that a second writer sees, not a mutex: two hosts
        taking a free lease within `settle` seconds of each other can both succeed (docs/architecture.md).
        After writing, the record is read back once `settle` has passed, so the later of two writes wins."""
        current = self.lease()
        if current and current.get("holder") != holder and float(current.get("expires", 0)) > time.time():
            return current
        record = {"holder": holder, "expires": time.time() + ttl}
        self._call("write", "upsert", log_collection=True, ids=[LEASE_ID], metadatas=[record],
                   embeddings=np.ones((1, 1), dtype=np.float32))
        if settle:
            time.sleep(settle)  # another host's write in this window overwrites ours: read it back
        current = self.lease()
        return None if current and current.get("holder") == holder else current

    def release_lease(self, holder: str) -> None:
        current = self.lease()
        if current and current.get("holder") == holder:
            self._call("write", "upsert", log_collection=True, ids=[LEASE_ID],
                       metadatas=[{"holder": "", "expires": 0.0}], embeddings=np.ones((1, 1), dtype=np.float32))

    # -- reading and writing chunks ---------------------------------------------------------------
    def manifest(self, article_ids: Iterable[str] | None = None, page: int = 5000) -> dict[str, dict[str, Any]]:
        """Stored articles' first-chunk metadata, keyed by article id: only these articles' (read by id, what
        an ingest costs) or every article's (a read of the whole archive)."""
        pages = (self._pages(["metadatas"], page, where={"chunk_index": 0}) if article_ids is None else
                 self._pages(["metadatas"], page, ids=[f"{aid}:0" for aid in dict.fromkeys(article_ids)]))
        return {meta["article_id"]: meta for got in pages for meta in got["metadatas"]}

    def chunk_ids(self, article_id: str) -> list[str]:
        got = self._call("read", "get", where={"article_id": article_id}, include=[])
        return list(got["ids"])

    def chunk_ids_by_article(self, article_ids: list[str]) -> dict[str, list[str]]:
        """The stored chunk ids of each of these articles, in one query."""
        out: dict[str, list[str]] = {aid: [] for aid in article_ids}
        if not article_ids:
            return out
        got = self._call("read", "get", where={"article_id": {"$in": list(article_ids)}}, include=[])
        for cid in got["ids"]:
            aid = cid.rsplit(":", 1)[0]
            if aid in out:
                out[aid].append(cid)
        return out

    def write(self, items: list[tuple[Article, list[Chunk], list[str], np.ndarray, list[str]]],
              article_meta: dict[str, dict[str, Any]] | None = None) -> Written:
        """Upsert whole articles (article, chunks, chunk texts hashes, embeddings, old chunk ids).

        An article's chunks go in one upsert, then its stale chunks (an edit made it shorter) are deleted,
        then the change log records the write. `article_meta` adds per-article fields to the first chunk's
        metadata (the manifest row).
        """
        seq = self._next_seq()
        ids, embs, docs, metas, stale = [], [], [], [], []
        for article, chunks, text_hashes, vectors, old_ids in items:
            new_ids = [c.id for c in chunks]
            ids += new_ids
            embs.append(vectors)
            docs += [c.text for c in chunks]
            metas += [{**chunk_metadata(article, c, h), "seq": seq} for c, h in zip(chunks, text_hashes)]
            if chunks and article_meta and article.id in article_meta:
                metas[-len(chunks)].update(article_meta[article.id])
            stale += sorted(set(old_ids) - set(new_ids))
        if ids:
            self._call("write", "upsert", ids=ids, embeddings=np.vstack(embs), documents=docs, metadatas=metas)
        if stale:
            self._call("delete", "delete", ids=stale)
        self._log(seq, stale)
        return Written(seq, list(zip(ids, docs, metas)), stale)

    def delete_chunks(self, ids: list[str], page: int = 5000) -> None:
        """Delete chunks and record their tombstones."""
        if not ids:
            return
        seq = self._next_seq()
        for i in range(0, len(ids), page):
            self._call("delete", "delete", ids=ids[i:i + page])
        self._log(seq, ids)

    def sweep_partial_articles(self, page: int = 5000) -> int:
        """Delete chunks that do not belong to their article's current version; returns how many.

        A chunk is kept only when its article's chunks 0..n-1 all carry the same content hash. Leftovers
        come from a run killed between upserting an edited article and deleting its surplus chunks; an
        article missing a chunk (never seen, but cheap to check) is removed whole so the next run rewrites it.
        """
        by_article: dict[str, list[tuple[str, int, str]]] = {}
        for got in self._pages(["metadatas"], page):
            for cid, meta in zip(got["ids"], got["metadatas"]):
                meta = meta or {}
                by_article.setdefault(meta.get("article_id", ""), []).append(
                    (cid, int(meta.get("chunk_index", -1)), meta.get("hash", "")))
        doomed: list[str] = []
        for chunks in by_article.values():
            head = next((h for _, i, h in chunks if i == 0), None)
            current = sorted(i for _, i, h in chunks if h == head)
            if head is None or current != list(range(len(current))):
                doomed += [cid for cid, _, _ in chunks]
            else:
                doomed += [cid for cid, _, h in chunks if h != head]
        self.delete_chunks(doomed, page)
        if doomed:
            log.warning("removed %d chunks left by an interrupted ingest", len(doomed))
        return len(doomed)

    def chunk_counts(self, article_ids: list[str]) -> dict[str, int]:
        """How many chunks each of these articles has (one query, ids only)."""
        counts = dict.fromkeys(article_ids, 0)
        if not article_ids:
            return counts
        got = self._call("read", "get", where={"article_id": {"$in": list(article_ids)}}, include=[])
        for cid in got["ids"]:
            aid = cid.rsplit(":", 1)[0]
            if aid in counts:
                counts[aid] += 1
        return counts

    def delete_article(self, article_id: str) -> int:
        ids = self.chunk_ids(article_id)
        self.delete_chunks(ids)
        return len(ids)

    def dense_search(self, query_vector: np.ndarray, k: int, where: dict | None = None) -> list[Passage]:
        # No count() first: Chroma returns what it holds when k is larger, and counting a million chunks
        # costs more than the search (bench/RESULTS.md, "a million chunks").
        got = self._call("query", "query", query_embeddings=[query_vector.tolist()], n_results=k,
                         where=where or None, include=["documents", "metadatas", "distances"])
        return [passage_from(i, d, m, 1.0 - dist) for i, d, m, dist in
                zip(got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0])]

    def get_passages(self, ids: list[str]) -> dict[str, Passage]:
        if not ids:
            return {}
        got = self._call("read", "get", ids=ids, include=["documents", "metadatas"])
        return {i: passage_from(i, d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        """Stored embeddings of the given chunks."""
        if not ids:
            return {}
        got = self._call("read", "get", ids=ids, include=["embeddings"])
        return {i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"])}

    def _pages(self, include: list[str], page: int, ids: list[str] | None = None,
               where: dict | None = None) -> Iterator[dict[str, Any]]:
        """Chroma `get` results page by page: of these ids (in slices, a read by id), or of every chunk
        (matching `where`) by limit and offset."""
        if ids is not None:
            for i in range(0, len(ids), page):
                yield self._call("read", "get", ids=ids[i:i + page], include=include)
            return
        offset = 0
        while True:
            got = self._call("read", "get", include=include, limit=page, offset=offset,
                             **({"where": where} if where else {}))
            yield got
            if len(got["ids"]) < page:
                return
            offset += page

    def iter_chunks(self, page: int = 5000) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(id, text, metadata) of every chunk, page by page."""
        for got in self._pages(["documents", "metadatas"], page):
            yield from zip(got["ids"], got["documents"], got["metadatas"])

    def iter_records(self, ids: list[str] | None = None, page: int = 2000
                     ) -> Iterator[tuple[str, str, dict[str, Any], np.ndarray]]:
        """(id, text, metadata, embedding) of every chunk, or of `ids`, page by page: what a backup holds."""
        for got in self._pages(["documents", "metadatas", "embeddings"], page, ids=ids):
            yield from zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"])

    def all_ids(self, page: int = 5000) -> list[str]:
        return [cid for got in self._pages([], page) for cid in got["ids"]]

    def put_records(self, records: list[tuple[str, str, dict[str, Any], Any]]) -> None:
        """Upsert chunks as `iter_records` gave them (a restore); `record_change` then makes them one change."""
        if records:
            ids, docs, metas, embs = zip(*records)
            self._call("write", "upsert", ids=list(ids), documents=list(docs), metadatas=list(metas),
                       embeddings=np.asarray(embs, dtype=np.float32))

    def record_change(self, at_least: int = 0) -> int:
        """Move the change head past every chunk written so far (and to at least `at_least`); the new head."""
        seq = max(at_least, self._next_seq())
        self._log(seq, [])
        return seq

    def is_empty(self) -> bool:
        """Whether nothing has been stored: asked before every question, so one read by id (the change log's
        head) rather than a count or a `get` with a limit, which Chroma answers by going through the whole
        collection (74 ms at a million chunks). A store written before the change log is looked into; one
        whose every article was deleted counts as not empty (its questions are refused as unsupported); once
        a change log is seen, this process does not ask again."""
        if self._written or self.change_head() is not None:
            self._written = True  # a change log is never taken back: no need to ask again
            return False
        got = self._call("read", "get", create=False, limit=1, include=[])
        return not (got and got["ids"])

    def count(self) -> int:
        n = self._call("count", "count", create=False)
        return 0 if n is None else n

    def stats(self) -> dict[str, Any]:
        return {
            "articles": len(self.manifest()) if self.count() else 0,
            "chunks": self.count(),
            "embedding_model": self.embedder.name,
            "store": self.location,
        }
