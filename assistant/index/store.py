"""The vector store: chunks, their embeddings and metadata, read and written through `assistant.index.chroma`.

The change log and write lease are in `assistant.index.changelog`, crash recovery in
`assistant.index.recovery`, the embedder in `assistant.index.embedder`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.index.changelog import ChangeLog, WriteLease
from assistant.index.chroma import Chroma
from assistant.index.embedder import Embedder
from assistant.models import Article, Chunk, Passage
from assistant.text.timeparse import date_int

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArticleWrite:
    """One article as `Store.write` stores it: its chunks, their text hashes and embeddings, and the chunk
    ids it had before (those the new version no longer has are deleted)."""

    article: Article
    chunks: list[Chunk]
    text_hashes: list[str]
    vectors: np.ndarray
    old_ids: list[str]
    quotes: list[str] | None = None  # per chunk: its `quotes` metadata (JSON), from `quotebook.chunk_quotes`
    quotes_v: int | None = None  # the quote extractor's EXTRACTOR_VERSION that read them


@dataclass(frozen=True)
class Written:
    """What one `Store.write` changed: its change sequence, the (id, text, metadata) rows it stored and the
    chunk ids it deleted (what the keyword index applies without reading the write back)."""

    seq: int
    rows: list[tuple[str, str, dict[str, Any]]]
    deleted: list[str]


def chunk_metadata(article: Article, chunk: Chunk, text_hash: str, quotes: str | None = None,
                   quotes_v: int | None = None) -> dict[str, Any]:
    """A chunk's metadata. `quotes`: the JSON list of `[start, end, kind, speaker, cue]` of the quotes that start
    in this chunk (absolute body offsets, like `start`/`end` and `sentences`), read by extractor `quotes_v`."""
    meta: dict[str, Any] = {
        "article_id": article.id, "chunk_index": chunk.index, "start": chunk.start, "end": chunk.end,
        "title": article.title, "hash": article.hash, "text_hash": text_hash,
        "sentences": json.dumps(chunk.sentences),
    }
    if quotes is not None and quotes_v is not None:
        meta["quotes"], meta["quotes_v"] = quotes, quotes_v
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
        quotes=stored_quotes(meta),
    )


def stored_quotes(meta: dict[str, Any]) -> list[tuple[int, int, str, str | None, str]]:
    """The quotes kept in a chunk's metadata, (start, end, kind, speaker, cue); [] when none or unreadable."""
    try:
        rows = json.loads(meta.get("quotes") or "[]")
        return [(int(r[0]), int(r[1]), str(r[2]), r[3] if isinstance(r[3], str) and r[3] else None, str(r[4]))
                for r in rows if isinstance(r, list) and len(r) == 5]
    except (TypeError, ValueError):
        return []


def visible_body(pieces: Iterable[tuple[int, int, str]]) -> str:
    """An article body as its chunks hold it: each (start, end, text) at its offsets, what no chunk holds (page
    furniture the cleaner left out) as newlines, so every offset is the body's own."""
    out: list[str] = []
    pos = 0
    for start, end, text in sorted(pieces):
        if start > pos:
            out.append("\n" * (start - pos))
            pos = start
        if end > pos:
            out.append(text[pos - start:])
            pos = end
    return "".join(out)


class Store:
    """Chunks and their embeddings in a Chroma collection, embedded or on a Chroma server.

    Every write is recorded in the change log (`log`, assistant.index.changelog) that the keyword index of
    any process follows; `lease` is the write lease of several ingest hosts on one server. One writer at a
    time (the ingest lock) allocates sequences.
    """

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.embedder = embedder or Embedder.shared(settings.embedding)
        self.chroma = Chroma(settings.store, settings.data_dir / "chroma", self.embedder.name)
        self.log = ChangeLog(self.chroma)
        self.lease = WriteLease(self.chroma)
        self._written = False  # a change log was seen: the store has been written to (`is_empty`)

    @property
    def location(self) -> str:
        return self.chroma.location

    @property
    def client(self):
        """The current Chroma client (for callers that hold it briefly; store calls hold their handle)."""
        return self.chroma.client

    def collection(self, create: bool = True):
        """The chunk collection; refuses a collection built by another embedding model."""
        return self.chroma.collection(create)

    def identity(self) -> str:
        """The collection's id: a collection dropped and made anew is another store to the keyword index."""
        return self.chroma.identity()

    # -- what the keyword index follows (its ChangeSource) ----------------------------------------
    def change_head(self) -> int | None:
        """The sequence of the latest write (None: nothing written since change logging began)."""
        return self.log.head()

    def changes_since(self, seq: int, page: int = 5000) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(id, text, metadata) of the chunks written after `seq`."""
        for got in self.pages(["documents", "metadatas"], page, where={"seq": {"$gt": seq}}):
            yield from zip(got["ids"], got["documents"], got["metadatas"])

    def deletions_since(self, seq: int) -> list[tuple[str, int]]:
        """(chunk id, sequence) of the chunks deleted after `seq`."""
        return self.log.deletions_since(seq)

    # -- reading and writing chunks ---------------------------------------------------------------
    def manifest(self, article_ids: Iterable[str] | None = None, page: int = 5000) -> dict[str, dict[str, Any]]:
        """Stored articles' first-chunk metadata, keyed by article id: only these articles' (read by id, what
        an ingest costs) or every article's (a read of the whole archive)."""
        pages = (self.pages(["metadatas"], page, where={"chunk_index": 0}) if article_ids is None else
                 self.pages(["metadatas"], page, ids=[f"{aid}:0" for aid in dict.fromkeys(article_ids)]))
        return {meta["article_id"]: meta for got in pages for meta in got["metadatas"]}

    def chunk_ids(self, article_id: str) -> list[str]:
        got = self.chroma.call("read", "get", where={"article_id": article_id}, include=[])
        return list(got["ids"])

    def chunk_ids_by_article(self, article_ids: list[str]) -> dict[str, list[str]]:
        """The stored chunk ids of each of these articles, in one query."""
        out: dict[str, list[str]] = {aid: [] for aid in article_ids}
        if not article_ids:
            return out
        got = self.chroma.call("read", "get", where={"article_id": {"$in": list(article_ids)}}, include=[])
        for cid in got["ids"]:
            aid = cid.rsplit(":", 1)[0]
            if aid in out:
                out[aid].append(cid)
        return out

    def write(self, items: list[ArticleWrite], article_meta: dict[str, dict[str, Any]] | None = None) -> Written:
        """Upsert whole articles.

        An article's chunks go in one upsert, then its stale chunks (an edit made it shorter) are deleted,
        then the change log records the write. `article_meta` adds per-article fields to the first chunk's
        metadata (the manifest row).
        """
        seq = self.log.next_seq()
        ids, embs, docs, metas, stale = [], [], [], [], []
        for item in items:
            article, chunks = item.article, item.chunks
            new_ids = [c.id for c in chunks]
            ids += new_ids
            embs.append(item.vectors)
            docs += [c.text for c in chunks]
            quotes: list[str | None] = list(item.quotes) if item.quotes else [None] * len(chunks)
            metas += [{**chunk_metadata(article, c, h, q, item.quotes_v), "seq": seq}
                      for c, h, q in zip(chunks, item.text_hashes, quotes)]
            if chunks and article_meta and article.id in article_meta:
                metas[-len(chunks)].update(article_meta[article.id])
            stale += sorted(set(item.old_ids) - set(new_ids))
        if ids:
            self.chroma.call("write", "upsert", ids=ids, embeddings=np.vstack(embs), documents=docs, metadatas=metas)
        if stale:
            self.chroma.call("delete", "delete", ids=stale)
        self.log.record(seq, stale)
        return Written(seq, list(zip(ids, docs, metas)), stale)

    def update_metadata(self, rows: list[tuple[str, str, dict[str, Any]]]) -> Written:
        """Replace the metadata of stored chunks (id, text, metadata), their text and embeddings kept: one change
        of the log like a write, so every process's derived indexes follow it."""
        seq = self.log.next_seq()
        rows = [(cid, text, {**meta, "seq": seq}) for cid, text, meta in rows]
        if rows:
            self.chroma.call("write", "update", ids=[r[0] for r in rows], metadatas=[r[2] for r in rows])
        self.log.record(seq, [])
        return Written(seq, rows, [])

    def article_chunks(self, article_ids: list[str]) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
        """Every stored chunk (id, text, metadata) of these articles, in chunk order, in one query."""
        out: dict[str, list[tuple[str, str, dict[str, Any]]]] = {aid: [] for aid in article_ids}
        if not article_ids:
            return out
        got = self.chroma.call("read", "get", where={"article_id": {"$in": list(article_ids)}},
                               include=["documents", "metadatas"])
        for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"]):
            if meta.get("article_id") in out:
                out[meta["article_id"]].append((cid, text, meta))
        for rows in out.values():
            rows.sort(key=lambda r: int(r[2].get("chunk_index") or 0))
        return out

    def delete_chunks(self, ids: list[str], page: int = 5000) -> None:
        """Delete chunks and record their tombstones."""
        if not ids:
            return
        seq = self.log.next_seq()
        for i in range(0, len(ids), page):
            self.chroma.call("delete", "delete", ids=ids[i:i + page])
        self.log.record(seq, ids)

    def chunk_counts(self, article_ids: list[str]) -> dict[str, int]:
        """How many chunks each of these articles has (one query, ids only)."""
        counts = dict.fromkeys(article_ids, 0)
        if not article_ids:
            return counts
        got = self.chroma.call("read", "get", where={"article_id": {"$in": list(article_ids)}}, include=[])
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
        got = self.chroma.call("query", "query", query_embeddings=[query_vector.tolist()], n_results=k,
                         where=where or None, include=["documents", "metadatas", "distances"])
        return [passage_from(i, d, m, 1.0 - dist) for i, d, m, dist in
                zip(got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0])]

    def get_passages(self, ids: list[str]) -> dict[str, Passage]:
        if not ids:
            return {}
        got = self.chroma.call("read", "get", ids=ids, include=["documents", "metadatas"])
        return {i: passage_from(i, d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        """Stored embeddings of the given chunks."""
        if not ids:
            return {}
        got = self.chroma.call("read", "get", ids=ids, include=["embeddings"])
        return {i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"])}

    def pages(self, include: list[str], page: int, ids: list[str] | None = None,
               where: dict | None = None) -> Iterator[dict[str, Any]]:
        """Chroma `get` results page by page: of these ids (in slices, a read by id), or of every chunk
        (matching `where`) by limit and offset."""
        if ids is not None:
            for i in range(0, len(ids), page):
                yield self.chroma.call("read", "get", ids=ids[i:i + page], include=include)
            return
        offset = 0
        extra: dict[str, Any] = {"where": where} if where else {}
        while True:
            got = self.chroma.call("read", "get", include=include, limit=page, offset=offset, **extra)
            yield got
            if len(got["ids"]) < page:
                return
            offset += page

    def iter_chunks(self, page: int = 5000) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(id, text, metadata) of every chunk, page by page."""
        for got in self.pages(["documents", "metadatas"], page):
            yield from zip(got["ids"], got["documents"], got["metadatas"])

    def iter_records(self, ids: list[str] | None = None, page: int = 2000
                     ) -> Iterator[tuple[str, str, dict[str, Any], np.ndarray]]:
        """(id, text, metadata, embedding) of every chunk, or of `ids`, page by page: what a backup holds."""
        for got in self.pages(["documents", "metadatas", "embeddings"], page, ids=ids):
            yield from zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"])

    def all_ids(self, page: int = 5000) -> list[str]:
        return [cid for got in self.pages([], page) for cid in got["ids"]]

    def put_records(self, records: list[tuple[str, str, dict[str, Any], Any]]) -> None:
        """Upsert chunks as `iter_records` gave them (a restore); `record_change` then makes them one change."""
        if records:
            ids, docs, metas, embs = zip(*records)
            self.chroma.call("write", "upsert", ids=list(ids), documents=list(docs), metadatas=list(metas),
                       embeddings=np.asarray(embs, dtype=np.float32))

    def record_change(self, at_least: int = 0) -> int:
        """Move the change head past every chunk written so far (and to at least `at_least`); the new head."""
        seq = max(at_least, self.log.next_seq())
        self.log.record(seq, [])
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
        got = self.chroma.call("read", "get", create=False, limit=1, include=[])
        return not (got and got["ids"])

    def count(self) -> int:
        n = self.chroma.call("count", "count", create=False)
        return 0 if n is None else n

    def stats(self) -> dict[str, Any]:
        return {
            "articles": len(self.manifest()) if self.count() else 0,
            "chunks": self.count(),
            "embedding_model": self.embedder.name,
            "store": self.location,
        }
