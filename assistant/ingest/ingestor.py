"""Articles into the store: diff against what is stored, clean, chunk, embed, write, sync keyword index."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.errors import AssistantError, StoreError
from assistant.index.archive import Archive
from assistant.index.quotebook import chunk_quotes, extractor_version, read_quotes
from assistant.index.recovery import sweep_partial_articles
from assistant.index.store import ArticleWrite, visible_body
from assistant.ingest.chunking import Chunker
from assistant.ingest.decoding import canonical
from assistant.ingest.loaders import LoadFailure, load_paths
from assistant.models import Article, content_hash
from assistant.text.cleaning import content_regions
from assistant.text.duplicates import CopyIndex, Signature, normalized

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

    def merge(self, other: IngestReport) -> None:
        """Add another run's counts and lists to this one (URL ingest beside file ingest, a watch round)."""
        for name in ("added", "updated", "unchanged", "deleted", "chunks", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed += other.failed
        self.skipped += other.skipped
        self.resumed = self.resumed or other.resumed

    def summary(self) -> str:
        """The counts in one line (an audit entry's detail)."""
        return (f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
                + (f"deleted {self.deleted}, " if self.deleted else "")
                + f"failed {len(self.failed)}, skipped {len(self.skipped)}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["failed"] = [asdict(f) for f in self.failed]
        d["skipped"] = [asdict(f) for f in self.skipped]
        return d


class Ingestor:
    """Writes articles into the archive's store and keeps its keyword index in step with it."""

    def __init__(self, settings: Settings, archive: Archive | None = None):
        self.settings = settings
        self.archive = archive or Archive(settings)
        self.store, self.lexical = self.archive.store, self.archive.lexical
        self._chunker: Chunker | None = None

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            e = self.store.embedder
            c = self.settings.chunking
            self._chunker = Chunker(e.word_pieces, e.max_seq_length, c.chunk_tokens, c.overlap_tokens)
        return self._chunker

    @contextmanager
    def lock(self):
        """One writer at a time per data dir: a second ingest waits for the first."""
        path = self.settings.data_dir / "ingest.lock"
        try:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
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
                if self.settings.store.host:
                    with self._store_lease():
                        yield
                else:
                    yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def _store_lease(self):
        """On a Chroma server, ingest hosts take turns through a write lease kept in the store: a second host
        waits while another holds it (renewed every third of store.lease_seconds; a crashed holder's lease expires)."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        ttl = self.settings.store.lease_seconds
        warned = False
        while (other := self.store.lease.take(holder, ttl)) is not None:
            if not warned:
                log.warning("another ingest host holds the store's write lease (%s, for %.0f s more); waiting",
                            other.get("holder"), float(other.get("expires", 0)) - time.time())
                warned = True
            time.sleep(1.0)
        stop = threading.Event()

        def renew():
            while not stop.wait(ttl / 3):
                try:
                    if self.store.lease.take(holder, ttl, settle=0) is not None:
                        log.error("the store's write lease was taken by another ingest host")
                except Exception as e:  # noqa: BLE001 - a failed renewal is retried at the next beat
                    log.warning("renewing the store's write lease failed: %s", e)

        beat = threading.Thread(target=renew, name="ingest-lease", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join(10)
            try:
                self.store.lease.release(holder)
            except Exception as e:  # noqa: BLE001 - it expires by itself
                log.warning("releasing the store's write lease failed (%s); it expires in %.0f s", e,
                            ttl)

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
        articles = [canonical(a) for a in articles]
        with self.lock():
            journal = self.settings.data_dir / "ingest.journal"
            interrupted = self._read_journal(journal)
            # A killed run can only leave whole articles (one upsert each), except an update killed between
            # its upsert and the delete of its now-surplus chunks: sweep those before diffing.
            swept = sweep_partial_articles(self.store) if interrupted is not None else 0
            # Only the rows of the articles at hand are read (by id): an ingest costs what it brings.
            planned = (interrupted or {}).get("articles")
            stored = self.store.manifest([a.id for a in articles] + list(planned if isinstance(planned, dict) else {}))
            if interrupted is not None:
                report.resumed = self._resumed_note(interrupted, stored, swept)
            todo: list[Article] = []
            requote: list[str] = []  # unchanged articles an older quote extractor read (or none: a failed one)
            version = extractor_version()
            seen: set[str] = set()
            for a in articles:
                if a.id in seen:
                    report.skipped.append(LoadFailure(a.origin or a.title, "duplicate article in this run"))
                    continue
                seen.add(a.id)
                old = stored.get(a.id)
                if old is not None and old.get("hash") == a.hash:
                    report.unchanged += 1
                    if old.get("quotes_v") != version:
                        requote.append(a.id)
                else:
                    todo.append(a)
            signatures: dict[str, Signature] = {}
            if self.settings.ingest.near_duplicate > 0 and todo:
                todo = self._drop_near_duplicates(todo, signatures, report)
            if todo:
                self._write_journal(journal, todo)
            total = len(todo)
            done = 0
            batch: list[Article] = []
            for a in todo:
                batch.append(a)
                if len(batch) >= self.settings.ingest.batch_articles or a is todo[-1]:
                    self._write_batch(batch, stored, report, signatures)
                    done += len(batch)
                    batch = []
                    log.info("stored %d/%d articles", done, total)
                    if progress:
                        progress("embed", done, total)
            if requote:  # an upgraded archive: its unchanged articles get the current extractor's quotes
                try:
                    self._reread(requote, version)
                except AssistantError as e:
                    log.warning("%s; %s", e.message, e.hint)
            self._sync_keywords(report)
            journal.unlink(missing_ok=True)
        report.seconds = time.perf_counter() - t0
        return report

    def reread_quotes(self, progress: Progress | None = None) -> int:
        """Read again the quotes of every stored article an older quote extractor read (its chunks' `quotes_v` is
        not EXTRACTOR_VERSION): its body rebuilt from its chunks at their offsets, the quotes extracted anew and
        only the chunks' metadata updated (no embedding), one change of the log per batch so every process's
        derived indexes follow. Returns how many articles were read again."""
        version = extractor_version()
        with self.lock():
            stale = sorted(aid for aid, meta in self.store.manifest().items() if meta.get("quotes_v") != version)
            self._reread(stale, version, progress)
            return len(stale)

    def _reread(self, stale: list[str], version: int, progress: Progress | None = None) -> None:
        """Read again the quotes of these stored articles (under the ingest lock); see `reread_quotes`."""
        step = max(1, self.settings.ingest.batch_articles)
        for i in range(0, len(stale), step):
            chunks = self.store.article_chunks(stale[i:i + step])
            rows = [r for r in chunks.values() if r]
            found = read_quotes([(r[0][2].get("title") or "", visible_body(
                (int(m["start"]), int(m["end"]), t) for _, t, m in r)) for r in rows])
            if found is None:
                raise AssistantError("the quote extractor failed; the quotes were not read again",
                                     "see the log above; run `assistant reindex` again once it loads")
            updates = []
            for r, quotes in zip(rows, found):
                per = chunk_quotes([(int(m["start"]), int(m["end"])) for _, _, m in r], quotes)
                updates += [(cid, text, {**meta, "quotes": q, "quotes_v": version})
                            for (cid, text, meta), q in zip(r, per)]
            written = self.store.update_metadata(updates)
            self.lexical.sync(written=written)
            self.archive.quotes.apply(written)
            if progress:
                progress("quotes", min(i + step, len(stale)), len(stale))

    def delete(self, article_id: str) -> int:
        """Remove an article's chunks from the store and the keyword index; returns chunks removed."""
        with self.lock():
            n = self.store.delete_article(article_id)
            self._sync_keywords(IngestReport())
            return n

    def _sync_keywords(self, report: IngestReport) -> None:
        """Bring this data dir's keyword index in step with the store: what this run changed, or the whole
        store when the index is missing, stale or built by another tokenizer."""
        done = self.lexical.sync()
        if done.rebuilt and done.upserted and report.resumed is None and not (report.added or report.updated):
            report.resumed = "keyword index rebuilt from the store"

    @staticmethod
    def _write_journal(journal: Path, todo: list[Article]) -> None:
        """Record what this run is about to write; it is removed only when the run has finished."""
        tmp = journal.with_name(journal.name + ".tmp")
        tmp.write_text(json.dumps({"started": time.time(), "articles": {a.id: a.hash for a in todo}}))
        os.replace(tmp, journal)  # atomic: a kill never leaves half a journal

    @staticmethod
    def _read_journal(journal: Path) -> dict[str, Any] | None:
        """The journal a killed run left behind, or None after a clean finish."""
        if not journal.exists():
            return None
        try:
            info = json.loads(journal.read_text())
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _resumed_note(info: dict[str, Any], stored: dict[str, dict[str, Any]], swept: int) -> str:
        planned = info.get("articles")
        when = ""
        if isinstance(info.get("started"), (int, float)):
            when = " started " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info["started"]))
        note = f"resumed an interrupted ingest{when}"
        if isinstance(planned, dict):
            kept = sum(1 for aid, h in planned.items() if stored.get(aid, {}).get("hash") == h)
            note += (f": {kept} of its {len(planned)} articles were already stored whole and kept, "
                     f"{len(planned) - kept} were still to write")
        if swept:
            note += f"; removed {swept} leftover chunks of partly replaced articles"
        return note

    def _drop_near_duplicates(self, todo: list[Article], signatures: dict[str, Signature],
                              report: IngestReport) -> list[Article]:
        """Skip syndicated copies (the same wire story under another title, source or dateline).

        Each article's signature is kept in its manifest row and its bands in the keyword index, so copies
        are caught across runs and hosts by reading only the candidates' rows; `signatures` receives those
        of the articles to write.
        """
        threshold = self.settings.ingest.near_duplicate
        self.lexical.sync()  # in step with the store (other hosts' writes included) before it is asked
        index = CopyIndex()  # this run's kept articles and the stored candidates read so far
        keep = []
        for a in todo:
            sig = Signature.of(a.body)
            if sig is None:  # too short to judge by overlap
                keep.append(a)
                continue
            fresh = [aid for aid in self.lexical.copy_candidates(sig.lookup_bands())
                     if aid != a.id and aid not in index.sigs]
            for aid, meta in (self.store.manifest(fresh) if fresh else {}).items():
                if (stored_sig := Signature.from_meta(meta)) is not None:
                    index.add(aid, stored_sig, meta)
            match = index.copied_from(sig, exclude=a.id, threshold=threshold)
            if match is not None:
                meta = match[2]
                where = ", ".join(x for x in (meta.get("source"), meta.get("origin")) if x)
                report.skipped.append(LoadFailure(
                    a.origin or a.title,
                    f"near-duplicate ({match[1]:.0%} overlap) of '{meta.get('title')}'" + (f" ({where})" if where
                                                                                          else "")))
                continue
            signatures[a.id] = sig
            index.add(a.id, sig, {"title": a.title, "source": a.source, "origin": a.origin})
            keep.append(a)
        return keep

    def _write_batch(self, batch: list[Article], stored: dict, report: IngestReport,
                     signatures: dict[str, Signature] | None = None) -> None:
        chunker = self.chunker
        plans = []
        texts: list[str] = []
        for a in batch:
            regions = content_regions(a.body) if self.settings.ingest.clean else None
            chunks = chunker.split(a, regions)
            title = chunker.embed_title(a.title)
            plans.append((a, chunks, len(texts)))
            texts += [chunker.embedding_text(title, c.text) for c in chunks]
        # Who said what: one batched pass of the quote extractor over the batch's bodies as their chunks hold
        # them (what `assistant reindex` reads again from the store), each quote kept on the chunk of its start.
        # It runs in a thread beside the embedding: both spend most of their time in native code that lets go
        # of the GIL (ONNX Runtime, spaCy's thinc layers), so the two overlap on the cores (bench/RESULTS.md).
        bodies = [(a.title, visible_body((c.start, c.end, c.text) for c in chunks)) for a, chunks, _ in plans]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-quotes") as pool:
            reading = pool.submit(read_quotes, bodies)
            vectors = self.store.embedder.embed(texts)
            found = reading.result()
        version = extractor_version()
        # One store query for the batch's replaced articles (none on a first ingest), not one per article.
        old_chunks = self.store.chunk_ids_by_article([a.id for a in batch if a.id in stored])
        items = []
        for i, (a, chunks, offset) in enumerate(plans):
            old_ids = old_chunks.get(a.id, [])
            hashes = [content_hash(normalized(c.text)) for c in chunks]
            per = chunk_quotes([(c.start, c.end) for c in chunks], found[i]) if found is not None else None
            items.append(ArticleWrite(a, chunks, hashes, vectors[offset:offset + len(chunks)], old_ids, per,
                                      version if per is not None else None))
        written = self.store.write(items, {aid: sig.to_meta() for aid, sig in (signatures or {}).items()})
        self.lexical.sync(written=written)  # readers of this data dir see each batch as soon as it is stored
        self.archive.quotes.apply(written)  # and this process's quote index, if it is built
        for item in items:
            report.chunks += len(item.chunks)
            if item.article.id in stored:
                report.updated += 1
            else:
                report.added += 1
