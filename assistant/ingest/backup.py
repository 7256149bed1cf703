"""Back up a live archive and restore it elsewhere (issue 15 part 5).

A backup is one gzip'd JSON-lines file: a header (embedding model, collection, the store's change head), every
chunk with its text, metadata and embedding, then the store's audit trail (assistant.index.audit), its users
(their keys' hashes, never keys) and the data dir's small state files (sources and their poll state). It is taken through the store's API while the archive
serves and ingests go on: after the full pass, what changed meanwhile (chunks written after the head it started
from, tombstones, chunks a shifting page skipped) is read again, until the head stops moving, so the file is the
store as of one change head. The keyword index is not in it: it is derived from the store, and `restore`
rebuilds it.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.index.archive import Archive

log = logging.getLogger(__name__)
FORMAT = "newsroom-assistant-backup/1"
STATE_FILES = ("sources.json", "robots.json")  # what the data dir holds besides the store and derived caches
# An audit entry's line: {"state_file": AUDIT, "entry": its id, "metadata"}. Written as a state-file record, so
# a reader older than the audit trail skips it (an unknown state file) instead of failing on a line without a chunk.
AUDIT = "audit"
USERS = "users"  # a user's line, the same way: {"state_file": USERS, "entry": its id, "metadata"} (a key's hash)


def backup(settings: Settings, target: str | Path, page: int = 2000, rounds: int = 10) -> dict[str, Any]:
    """Write the archive of `settings` to `target` (a .jsonl.gz file); returns what it holds."""
    archive = Archive(settings)
    store = archive.store
    target = Path(target)
    head = store.change_head()
    chunks: dict[str, tuple[str, dict, list[float]]] = {}
    for cid, doc, meta, emb in store.iter_records(page=page):  # the full pass
        chunks[cid] = (doc, meta, np.asarray(emb, dtype=np.float32).tolist())
    for _ in range(rounds):  # catch up with what changed during the pass
        now = store.change_head()
        changed = {cid for cid, _, _ in store.changes_since(head or 0)} if now is not None else set()
        ids = set(store.all_ids(page))
        refetch = sorted(changed | (ids - set(chunks)))  # edited meanwhile, or skipped by a shifting page
        for cid, doc, meta, emb in store.iter_records(refetch, page):
            chunks[cid] = (doc, meta, np.asarray(emb, dtype=np.float32).tolist())
        for cid in set(chunks) - ids:  # deleted meanwhile
            del chunks[cid]
        settled = store.change_head() == now
        head = now
        if settled:
            break
    else:
        log.warning("the store kept changing during the backup; it holds the store as of change %s", head)
    tmp = target.with_name(target.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"format": FORMAT, "embedding_model": store.embedder.name,
                             "collection": settings.store.collection, "head": head, "chunks": len(chunks)}) + "\n")
        for cid in sorted(chunks):
            doc, meta, vector = chunks[cid]
            fh.write(json.dumps({"id": cid, "document": doc, "metadata": meta, "embedding": vector}) + "\n")
        for eid, meta in archive.audit.export():
            fh.write(json.dumps({"state_file": AUDIT, "entry": eid, "metadata": meta}) + "\n")
        for uid, meta in archive.users.export():
            fh.write(json.dumps({"state_file": USERS, "entry": uid, "metadata": meta}) + "\n")
        for name in STATE_FILES:
            f = settings.data_dir / name
            if f.exists():
                fh.write(json.dumps({"state_file": name, "text": f.read_text(encoding="utf-8")}) + "\n")
    os.replace(tmp, target)
    articles = {m.get("article_id") for _, m, _ in chunks.values()}
    return {"chunks": len(chunks), "articles": len(articles), "head": head, "file": str(target)}


def restore(settings: Settings, source: str | Path, page: int = 1000, actor: str = "library") -> dict[str, Any]:
    """Load a backup into the store of `settings` (merged by chunk id with what it holds, its audit trail by
    entry id), then rebuild the keyword index, and record the restore in the audit trail as `actor`.
    Restoring the same file twice writes the same ids: nothing is duplicated."""
    from assistant.ingest.ingestor import Ingestor

    ing = Ingestor(settings)
    store = ing.store
    with gzip.open(source, "rt", encoding="utf-8") as fh:
        header = json.loads(fh.readline())
        if header.get("format") != FORMAT:
            raise AssistantError(f"{source} is not a newsroom-assistant backup", "give a file `assistant backup` wrote")
        if header["embedding_model"] != store.embedder.name:
            raise AssistantError(
                f"the backup was made with embedding model {header['embedding_model']!r}, this store uses "
                f"{store.embedder.name!r}", "set embedding.model and embedding.backend to the backup's")
        with ing.lock():
            batch: list[tuple[str, str, dict[str, Any], Any]] = []
            trail: list[tuple[str, dict[str, Any]]] = []
            users: list[tuple[str, dict[str, Any]]] = []
            n = 0
            for line in fh:
                rec = json.loads(line)
                if rec.get("state_file") in (AUDIT, USERS):
                    (trail if rec["state_file"] == AUDIT else users).append((rec.get("entry"), rec.get("metadata")))
                    continue
                if "state_file" in rec:
                    if rec["state_file"] in STATE_FILES:
                        (settings.data_dir / rec["state_file"]).write_text(rec["text"], encoding="utf-8")
                    continue
                batch.append((rec["id"], rec["document"], rec["metadata"], rec["embedding"]))
                if len(batch) >= page:
                    store.put_records(batch)
                    n, batch = n + len(batch), []
            store.put_records(batch)
            n += len(batch)
            store.record_change(at_least=header.get("head") or 0)
            report = ing.lexical.sync(full=True)
            entries = ing.archive.audit.restore(trail)
            ing.archive.users.restore(users)
            ing.archive.audit.record(actor, "restore", str(source), f"{n} chunks, {entries} audit entries, "
                                                                     f"change {header.get('head') or 0}")
    return {"chunks": n, "keyword_index": report.upserted, "head": store.change_head(), "audit_entries": entries}

