"""The store's change log and write lease, kept in a small collection beside the chunks (`<collection>.changes`).

The log holds the sequence of the latest write (`head`) and a tombstone per deleted chunk; each chunk's
metadata carries the sequence of the write that stored it (`seq`). The keyword index of any process follows
the store through them (`assistant.index.lexical.LexicalIndex.sync`). The lease is how several ingest hosts
on one Chroma server take turns.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from assistant.index.chroma import Chroma

HEAD_ID = "head"
LEASE_ID = "lease"  # the write lease of hosts ingesting into one Chroma server (no `seq`: never a change)


def _upsert(chroma: Chroma, ids: list[str], metadatas: list[dict[str, Any]]) -> None:
    chroma.call("write", "upsert", log_collection=True, ids=ids, metadatas=metadatas,
                embeddings=np.ones((len(ids), 1), dtype=np.float32))


class ChangeLog:
    """The head sequence and the tombstones of deleted chunks. One writer at a time allocates sequences."""

    def __init__(self, chroma: Chroma):
        self.chroma = chroma

    def head(self) -> int | None:
        """The sequence of the latest write (None: nothing written since change logging began)."""
        got = self.chroma.call("read", "get", log_collection=True, create=False, ids=[HEAD_ID],
                               include=["metadatas"])
        return int(got["metadatas"][0]["seq"]) if got and got["ids"] else None

    def next_seq(self) -> int:
        return (self.head() or 0) + 1

    def deletions_since(self, seq: int) -> list[tuple[str, int]]:
        """(chunk id, sequence) of the chunks deleted after `seq`."""
        got = self.chroma.call("read", "get", log_collection=True, create=False, where={"seq": {"$gt": seq}},
                               include=["metadatas"])
        if not got:
            return []
        return [(m["chunk_id"], int(m["seq"])) for i, m in zip(got["ids"], got["metadatas"]) if i != HEAD_ID]

    def record(self, seq: int, deleted: list[str]) -> None:
        """Record a write: tombstones of its deleted chunks, then the new head (last, so a reader that sees
        the head sees the whole write)."""
        ids = [f"del:{cid}" for cid in deleted] + [HEAD_ID]
        metas = [{"seq": seq, "chunk_id": cid} for cid in deleted] + [{"seq": seq, "chunk_id": ""}]
        for i in range(0, len(ids), 5000):
            _upsert(self.chroma, ids[i:i + 5000], metas[i:i + 5000])


class WriteLease:
    """The write lease of several ingest hosts on one Chroma server ({holder, expires})."""

    def __init__(self, chroma: Chroma):
        self.chroma = chroma

    def get(self) -> dict[str, Any] | None:
        """The lease record, or None."""
        got = self.chroma.call("read", "get", log_collection=True, create=False, ids=[LEASE_ID],
                               include=["metadatas"])
        return dict(got["metadatas"][0]) if got and got["ids"] else None

    def take(self, holder: str, ttl: float, settle: float = 0.1) -> dict[str, Any] | None:
        """Take or renew the lease; returns None when taken, else the other holder's unexpired lease.

        Chroma has no compare-and-set, so this is a guard that a second writer sees, not a mutex: two hosts
        taking a free lease within `settle` seconds of each other can both succeed (docs/architecture.md).
        After writing, the record is read back once `settle` has passed, so the later of two writes wins."""
        current = self.get()
        if current and current.get("holder") != holder and float(current.get("expires", 0)) > time.time():
            return current
        _upsert(self.chroma, [LEASE_ID], [{"holder": holder, "expires": time.time() + ttl}])
        if settle:
            time.sleep(settle)  # another host's write in this window overwrites ours: read it back
        current = self.get()
        return None if current and current.get("holder") == holder else current

    def release(self, holder: str) -> None:
        current = self.get()
        if current and current.get("holder") == holder:
            _upsert(self.chroma, [LEASE_ID], [{"holder": "", "expires": 0.0}])
