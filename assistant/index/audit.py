"""The audit trail: who changed the archive (ingest, delete, restore, sources, users) and when; and, only when
`server.log_questions` is set, who asked what.

The trail is kept in the store of truth, in the change log's small collection beside the chunks
(`<collection>.changes`, assistant.index.changelog), one record per entry under the id
`audit:<time in ns, 20 digits>:<random>`: every process and machine on one Chroma server writes and reads one
trail, and the ids of two writers never collide. An entry carries no `seq`, like the write lease: the change
log's reads (`head` by id, tombstones by `seq`) and so the keyword index's sync never see it.

Append-only: entries are never changed. The one deletion is of recorded questions older than
`server.question_retention_days`, when the trail is next written (at most once a minute per process) or read
(`assistant audit`); expired questions are not shown even before that. Entry fields are stored as given (an
article's title is untrusted data: `assistant audit` prints it as text, assistant.terminal.print_audit).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from assistant.index.chroma import Chroma

log = logging.getLogger(__name__)

PREFIX = "audit:"
KIND = "audit"  # every entry's `kind`: what a read of the trail asks for (the change log has none)
ASK = "ask"  # the action of a recorded question
LIMITS = {"actor": 200, "action": 64, "target": 1000, "detail": 4000}  # characters kept per field
PRUNE_SECONDS = 60.0  # how often one process prunes expired questions on write
DAY = 86400.0


@dataclass(frozen=True)
class AuditEntry:
    """One entry: when (ISO 8601, UTC), who, what and on what, and what it did."""

    at: str
    actor: str
    action: str
    target: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(value: Any, limit: int) -> str:
    text = str(value if value is not None else "").replace("\x00", "\ufffd")  # NUL: not storable text
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _entry(meta: dict[str, Any]) -> AuditEntry:
    return AuditEntry(_iso(float(meta.get("ts") or 0)), *(str(meta.get(k) or "") for k in
                                                            ("actor", "action", "target", "detail")))


class AuditLog:
    """The store's audit trail.

    Args:
        chroma: the store's Chroma (its change log collection holds the trail).
        log_questions: whether `question` records questions (`server.log_questions`).
        question_retention_days: recorded questions older than this are pruned and not shown.
        clock: seconds since the epoch (time.time; tests pass their own).
    """

    def __init__(self, chroma: Chroma, log_questions: bool = False, question_retention_days: int = 30,
                 clock: Callable[[], float] = time.time):
        self.chroma = chroma
        self.log_questions = log_questions
        self.question_retention_days = question_retention_days
        self.clock = clock
        self._pruned_at: float | None = None

    # -- writing -------------------------------------------------------------------------------------------
    def record(self, actor: str, action: str, target: str, detail: str = "") -> AuditEntry:
        """Append an entry, e.g. record("cli:alice", "ingest", "corpus/", "added 3, ...") or
        record("admin token", "user.add", "bob", "role editor"); returns it. Raises StoreError when the store
        cannot be written."""
        now = self.clock()
        meta = {"kind": KIND, "ts": float(now), **{k: _clip(v, LIMITS[k]) for k, v in
                                                   (("actor", actor), ("action", action), ("target", target),
                                                    ("detail", detail))}}
        eid = f"{PREFIX}{int(now * 1e9):020d}:{secrets.token_hex(4)}"
        self._put([eid], [meta])
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_SECONDS or now < self._pruned_at:
            self.prune()
        return _entry(meta)

    def question(self, actor: str, surface: str, question: str) -> AuditEntry | None:
        """Record a question asked on `surface` (a route, or "chat") when `server.log_questions` is set; else
        nothing (what a journalist asks can reveal a source)."""
        if not self.log_questions:
            return None
        return self.record(actor, ASK, surface, question)

    def prune(self) -> int:
        """Delete recorded questions older than the retention; how many."""
        now = self.clock()
        self._pruned_at = now
        cutoff = now - self.question_retention_days * DAY
        got = self.chroma.call("read", "get", log_collection=True, create=False, include=[],
                               where={"$and": [{"kind": KIND}, {"action": ASK}, {"ts": {"$lt": cutoff}}]})
        ids = list(got["ids"]) if got else []
        for i in range(0, len(ids), 5000):
            self.chroma.call("delete", "delete", log_collection=True, ids=ids[i:i + 5000])
        if ids:
            log.info("pruned %d recorded questions older than %d days from the audit trail", len(ids),
                     self.question_retention_days)
        return len(ids)

    def _put(self, ids: list[str], metas: list[dict[str, Any]]) -> None:
        for i in range(0, len(ids), 5000):
            part = ids[i:i + 5000]
            self.chroma.call("write", "upsert", log_collection=True, ids=part, metadatas=metas[i:i + 5000],
                             embeddings=np.ones((len(part), 1), dtype=np.float32))

    # -- reading -------------------------------------------------------------------------------------------
    def entries(self, limit: int | None = None) -> list[AuditEntry]:
        """The most recent entries, newest first (all when `limit` is None); expired questions left out.

        The last day is read first, then the last month, then everything, until `limit` entries are found:
        showing the latest entries does not read a long trail whole."""
        now = self.clock()
        expired = now - self.question_retention_days * DAY
        rows: list[tuple[str, dict[str, Any]]] = []
        for window in ((DAY, 31 * DAY, None) if limit is not None else (None,)):
            rows = self._rows(None if window is None else now - window)
            rows = [(i, m) for i, m in rows if m.get("action") != ASK or float(m.get("ts") or 0) >= expired]
            if limit is not None and len(rows) >= limit:
                break
        rows.sort(key=lambda r: (float(r[1].get("ts") or 0), r[0]), reverse=True)
        return [_entry(m) for _, m in rows[:limit]]

    def export(self) -> list[tuple[str, dict[str, Any]]]:
        """Every entry as (id, stored metadata), oldest first: what a backup carries."""
        return sorted(self._rows(None), key=lambda r: r[0])

    def restore(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Put entries `export` gave back under their own ids (restoring twice duplicates nothing); how many."""
        kept = [(i, {**m, "kind": KIND}) for i, m in rows if isinstance(i, str) and i.startswith(PREFIX)
                and isinstance(m, dict)]
        if kept:
            self._put([i for i, _ in kept], [m for _, m in kept])
        return len(kept)

    def _rows(self, since: float | None) -> list[tuple[str, dict[str, Any]]]:
        where: dict[str, Any] = {"kind": KIND} if since is None else {"$and": [{"kind": KIND},
                                                                               {"ts": {"$gte": since}}]}
        got = self.chroma.call("read", "get", log_collection=True, create=False, where=where,
                               include=["metadatas"])
        if not got:
            return []
        return [(i, dict(m or {})) for i, m in zip(got["ids"], got["metadatas"])]
