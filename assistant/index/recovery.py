"""Crash recovery: what an ingest killed midway leaves in the store, found and removed on the next run."""

from __future__ import annotations

import logging

from assistant.index.store import Store

log = logging.getLogger(__name__)


def sweep_partial_articles(store: Store, page: int = 5000) -> int:
    """Delete chunks that do not belong to their article's current version; returns how many.

    A chunk is kept only when its article's chunks 0..n-1 all carry the same content hash. Leftovers
    come from a run killed between upserting an edited article and deleting its surplus chunks; an
    article missing a chunk (never seen, but cheap to check) is removed whole so the next run rewrites it.
    """
    by_article: dict[str, list[tuple[str, int, str]]] = {}
    for got in store.pages(["metadatas"], page):
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
    store.delete_chunks(doomed, page)
    if doomed:
        log.warning("removed %d chunks left by an interrupted ingest", len(doomed))
    return len(doomed)
