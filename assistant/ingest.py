"""Articles into the store: diff against what is stored, clean, chunk, embed, write, sync keyword index."""

from __future__ import annotations

import fcntl
import json
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.chunking import Chunker
from assistant.cleaning import content_regions
from assistant.config import Settings
from assistant.errors import StoreError
from assistant.lexical import LexicalIndex, tokenize
from assistant.loaders import LoadFailure, load_paths
from assistant.models import Article, content_hash
from assistant.retrieval import normalized
from assistant.store import Store

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class IngestReport:
    """What an ingest run did; `failed` and `skipped` list each file with its reason."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks: int = 0
    failed: list[LoadFailure] = field(default_factory=list)
    skipped: list[LoadFailure] = field(default_factory=list)
    resumed: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["failed"] = [asdict(f) for f in self.failed]
        d["skipped"] = [asdict(f) for f in self.skipped]
        return d


def lexical_path(settings: Settings) -> Path:
    """Where the keyword index of the configured store lives (one per store location and collection)."""
    s = settings.store
    where = f"{s.host}_{s.port}" if s.host else "local"
    return settings.data_dir / "lexical" / f"{where}_{s.collection}"


class Ingestor:
    """Writes articles into the store and keeps the keyword index in step with it."""

    def __init__(self, settings: Settings, store: Store | None = None):
        self.settings = settings
        self.store = store or Store(settings)
        self.lexical = LexicalIndex(lexical_path(settings))
        self._chunker: Chunker | None = None

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            e = self.store.embedder
            c = self.settings.chunking
            self._chunker = Chunker(e.tokenizer, e.max_seq_length, c.chunk_tokens, c.overlap_tokens)
        return self._chunker

    @contextmanager
    def lock(self):
        """One writer at a time per data dir: a second ingest waits for the first."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.settings.data_dir / "ingest.lock"
        try:
            fh = open(path, "a+")
        except OSError as e:
            raise StoreError(f"cannot write to the data dir {self.settings.data_dir}: {e}",
                             "choose a writable --data-dir") from e
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("another ingest is running on %s; waiting for it to finish", self.settings.data_dir)
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def ingest_paths(self, paths: Iterable[str | Path], progress: Progress | None = None) -> IngestReport:
        """Read files and folders, then ingest their articles."""
        paths = list(paths)
        max_bytes = int(self.settings.ingest.max_file_mb * 1024 * 1024)
        loaded = load_paths(paths, max_bytes=max_bytes,
                            progress=(lambda p: progress("read", 0, 0)) if progress else None)
        report = self.ingest_articles(loaded.articles, progress)
        report.failed[:0] = loaded.failures
        report.skipped[:0] = loaded.skipped
        return report

    def ingest_articles(self, articles: list[Article], progress: Progress | None = None) -> IngestReport:
        """Add new articles, replace changed ones, skip unchanged ones."""
        t0 = time.perf_counter()
        report = IngestReport()
        with self.lock():
            journal = self.settings.data_dir / "ingest.journal"
            cache = self._synced_cache(report, journal)
            stored = self.store.manifest()
            todo: list[Article] = []
            seen: set[str] = set()
            for a in articles:
                if a.id in seen:
                    report.skipped.append(LoadFailure(a.origin or a.title, "duplicate article in this run"))
                    continue
                seen.add(a.id)
                old = stored.get(a.id)
                if old is not None and old.get("hash") == a.hash:
                    report.unchanged += 1
                else:
                    todo.append(a)
            journal.write_text(json.dumps({"articles": len(todo), "started": time.time()}))
            total = len(todo)
            done = 0
            batch: list[Article] = []
            for a in todo:
                batch.append(a)
                if len(batch) >= self.settings.ingest.batch_articles:
                    self._write_batch(batch, stored, cache, report)
                    done += len(batch)
                    batch = []
                    if progress:
                        progress("embed", done, total)
            if batch:
                self._write_batch(batch, stored, cache, report)
                done += len(batch)
                if progress:
                    progress("embed", done, total)
            if todo or report.resumed:
                self.lexical.rebuild(cache)
            journal.unlink(missing_ok=True)
        report.seconds = time.perf_counter() - t0
        return report

    def delete(self, article_id: str) -> int:
        """Remove an article's chunks from the store and the keyword index; returns chunks removed."""
        with self.lock():
            report = IngestReport()
            cache = self._synced_cache(report, None)
            n = self.store.delete_article(article_id)
            for cid in [c for c in cache if c.startswith(article_id + ":")]:
                del cache[cid]
            if n:
                self.lexical.rebuild(cache)
            return n

    def _synced_cache(self, report: IngestReport, journal: Path | None) -> dict[str, list[Any]]:
        """The keyword index's token cache, resynced from the store when they disagree (e.g. after a crash)."""
        cache = self.lexical.load_cache()
        if journal is not None and journal.exists():
            try:
                info = json.loads(journal.read_text())
                report.resumed = (f"resumed an interrupted ingest (it had {info.get('articles')} articles "
                                  "to write); articles already stored are kept")
            except ValueError:
                report.resumed = "resumed an interrupted ingest"
        store_ids = {cid for cid, _, _ in self._iter_ids()}
        if store_ids != set(cache):
            log.info("keyword index disagrees with the store (%d vs %d chunks); resyncing",
                     len(cache), len(store_ids))
            cache = {cid: self._cache_entry(text, meta) for cid, text, meta in self.store.iter_chunks()}
            if report.resumed is None and (cache or store_ids):
                report.resumed = "keyword index resynced with the store"
            self.lexical.rebuild(cache)
        return cache

    def _iter_ids(self):
        col = self.store.collection()
        offset, page = 0, 20000
        while True:
            got = self.store._call("read", col.get, include=[], limit=page, offset=offset)
            for cid in got["ids"]:
                yield cid, None, None
            if len(got["ids"]) < page:
                return
            offset += page

    @staticmethod
    def _cache_entry(text: str, meta: dict[str, Any]) -> list[Any]:
        return [meta.get("text_hash"), tokenize(meta.get("title", "") + "\n" + text),
                meta.get("date_int"), meta.get("source")]

    def _write_batch(self, batch: list[Article], stored: dict, cache: dict, report: IngestReport) -> None:
        chunker = self.chunker
        plans = []
        texts: list[str] = []
        for a in batch:
            regions = content_regions(a.body) if self.settings.ingest.clean else None
            chunks = chunker.split(a, regions)
            title = chunker.embed_title(a.title)
            plans.append((a, chunks, len(texts)))
            texts += [chunker.embedding_text(title, c.text) for c in chunks]
        vectors = self.store.embedder.embed(texts)
        # One store query for the batch's replaced articles (none on a first ingest), not one per article.
        old_chunks = self.store.chunk_ids_by_article([a.id for a in batch if a.id in stored])
        items = []
        for a, chunks, offset in plans:
            old_ids = old_chunks.get(a.id, [])
            hashes = [content_hash(normalized(c.text)) for c in chunks]
            items.append((a, chunks, hashes, vectors[offset:offset + len(chunks)], old_ids))
        self.store.write(items)
        for a, chunks, hashes, _, old_ids in items:
            for cid in old_ids:
                cache.pop(cid, None)
            date_int = int(a.published_at[:10].replace("-", "")) if a.published_at else None
            for c, h in zip(chunks, hashes):
                cache[c.id] = [h, tokenize(a.title + "\n" + c.text), date_int, a.source]
            report.chunks += len(chunks)
            if a.id in stored:
                report.updated += 1
            else:
                report.added += 1
