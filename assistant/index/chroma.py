"""Chroma: the only module importing chromadb. Opens the client (embedded PersistentClient or a Chroma
server), keeps one current handle per embedded folder, and runs every call on a held handle."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from assistant.config import StoreSettings
from assistant.errors import StoreError

log = logging.getLogger(__name__)

# chromadb keeps one client "system" per path in a plain class-level dict (SharedSystemClient), filled and
# emptied without a lock: clients are made and closed under this one.
_CLIENTS_LOCK = threading.Lock()
LOG_SUFFIX = ".changes"  # the change log beside a collection: its head sequence and the tombstones of deletions


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



class Chroma:
    """The chunk collection (and its change log collection) of one store, on a held client handle.

    Args:
        settings: the store section (host, port, ssl, collection).
        folder: the embedded store's folder (used when no host is set).
        embedding_model: the embedder's name, recorded on the collection; a collection built by another
            model is refused.
    """

    def __init__(self, settings: StoreSettings, folder: Path, embedding_model: str):
        self.settings = settings
        self.folder = folder
        self.embedding_model = embedding_model
        self._server: _Handle | None = None
        self._server_lock = threading.Lock()
        self._embedded = None if settings.host else _Embedded.of(folder)

    @property
    def location(self) -> str:
        s = self.settings
        if s.host:
            return f"{'https' if s.ssl else 'http'}://{s.host}:{s.port}"
        return str(self.folder)

    # -- handles and calls ---------------------------------------------------------------------------------
    def _acquire(self, stale: _Handle | None = None) -> _Handle:
        s = self.settings
        try:
            if self._embedded is not None:
                return self._embedded.acquire(stale)
            with self._server_lock:
                if self._server is None:
                    assert s.host is not None  # no embedded store: a server host is set (__init__)
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
        name = self.settings.collection + (LOG_SUFFIX if log_collection else "")
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
                        metadata={"embedding_model": self.embedding_model}, embedding_function=None)
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
            if built_with and built_with != self.embedding_model:
                raise StoreError(
                    f"collection {self.settings.collection!r} was built with embedding model {built_with!r}, "
                    f"but the configured model is {self.embedding_model!r}",
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

    def call(self, what: str, method: str, *, log_collection: bool = False, create: bool = True, **kwargs):
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

    def identity(self) -> str:
        """The collection's id: a collection dropped and made anew is another store to the keyword index."""
        h = self._acquire()
        try:
            return str(self._collection_of(h).id)
        finally:
            self._release(h)
