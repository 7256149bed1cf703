"""Polling rounds over the configured sources, and the loop `assistant watch` runs until it is stopped.

A round polls each source (a conditional request for its feed or sitemap), picks the listed pages that are
new, that the listing says changed, or that are due a re-check, fetches at most `watch.items_per_round` of
them (the rest wait for the next rounds), turns them into articles and hands them to the Ingestor (near-
duplicate skipping, the ingest lock, resume after a kill). A bad feed or page is reported for its URL and the
round goes on.

The scheduler is a small loop, not APScheduler: one thread polls whatever is due, then sleeps on an Event
until the next source is due, so a stop (SIGTERM) is seen at once, rounds never overlap (APScheduler runs jobs
in a pool and would need max_instances and a lock to keep two writers apart), and there is no job store to
keep in step with the sources file the admin API edits: the loop simply re-reads it.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.ingest.ingestor import Ingestor, IngestReport
from assistant.ingest.loaders import LoadFailure
from assistant.live.addresses import listed_link_allowed, listed_private_ok
from assistant.live.errors import FetchError
from assistant.live.feeds import Entry, Listing, ListingError, detect_kind, parse_listing
from assistant.live.fetcher import Fetcher, Stopped
from assistant.live.pages import article_from_page
from assistant.live.response import Page
from assistant.live.sources import PageState, Source, SourceBook, SourceState
from assistant.models import Article

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # a page that failed this often is left alone until its listing says it changed
MAX_SITEMAPS = 50  # nested sitemaps read per source per round


@dataclass
class SourceResult:
    """What one poll of one source did."""

    url: str
    kind: str | None = None
    listed: int = 0
    fetched: int = 0
    not_modified: int = 0
    added: int = 0
    updated: int = 0
    failed: int = 0
    pending: int = 0
    error: str | None = None


@dataclass
class RoundReport:
    """A round: the ingest summary over all its sources (same fields as `ingest --json`) plus per source."""

    ingest: IngestReport = field(default_factory=IngestReport)
    sources: list[SourceResult] = field(default_factory=list)
    requests: int = 0
    downloads: int = 0
    stopped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**self.ingest.to_json(), "sources": [asdict(s) for s in self.sources],
                "requests": self.requests, "downloads": self.downloads, "stopped": self.stopped}


class Watcher:
    """Polls sources and ingests what is new or changed; `stop` ends a round after the current articles."""

    def __init__(self, settings: Settings, ingestor: Ingestor | None = None, book: SourceBook | None = None,
                 stop: threading.Event | None = None):
        self.settings = settings
        self.stop = stop or threading.Event()
        self.fetcher = Fetcher(settings.fetch, self.stop, robots_cache=settings.data_dir / "robots.json")
        self.book = book or SourceBook(settings)
        self._ingestor = ingestor
        self._pool = ThreadPoolExecutor(max_workers=settings.fetch.concurrency, thread_name_prefix="fetch")

    @property
    def ingestor(self) -> Ingestor:
        if self._ingestor is None:  # opened on the first article: an idle round never loads the embedder
            self._ingestor = Ingestor(self.settings)
        return self._ingestor

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.fetcher.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ entry points

    def round(self, sources: list[Source] | None = None) -> RoundReport:
        """Poll each source once (all configured sources when none are given) and ingest what changed."""
        t0 = time.perf_counter()
        sources = self.book.sources() if sources is None else sources
        states = self.book.states()
        report = RoundReport()
        requests, downloads = self.fetcher.requests, self.fetcher.downloads
        for src in sources:
            if self.stop.is_set():
                report.stopped = True
                break
            self._poll_safely(src, states.setdefault(src.url, SourceState()), report, persist=True)
        self.book.save_states({s.url: states[s.url] for s in sources if s.url in states})
        report.stopped = report.stopped or self.stop.is_set()
        report.requests = self.fetcher.requests - requests
        report.downloads = self.fetcher.downloads - downloads
        report.ingest.seconds = time.perf_counter() - t0
        if report.ingest.added or report.ingest.updated:  # a round that changed the archive, not every round
            changed = [s.url for s in report.sources if s.added or s.updated]
            self.ingestor.archive.audit.record("watcher", "ingest", " ".join(changed), report.ingest.summary())
        return report

    def ingest_urls(self, urls: list[str]) -> IngestReport:
        """`assistant ingest URL...`: each URL once (a page, or a feed or sitemap and its pages), asked with the
        validators an earlier run kept, so what has not changed is not downloaded again."""
        t0 = time.perf_counter()
        report = RoundReport()
        known = self.book.url_states()
        for url in urls:
            if self.stop.is_set():
                break
            st = known.get(url) or SourceState()
            self._poll_safely(Source(url, "auto", origin="cli"), st, report, persist=False)
            self.book.save_url_states({url: st})
        report.ingest.seconds = time.perf_counter() - t0
        return report.ingest

    def run(self, on_round=None) -> None:
        """Poll the sources that are due, round after round, until `stop` is set (re-reads the sources each time)."""
        warned = False
        while not self.stop.is_set():
            sources = self.book.sources()
            states = self.book.states()
            now = time.time()
            due = [s for s in sources if now - (states.get(s.url, SourceState()).last_poll or 0) >= s.interval]
            if not sources and not warned:
                log.warning("no sources configured: add [[sources]] to the settings file or POST /api/sources")
                warned = True
            if due:
                try:
                    report = self.round(due)
                except AssistantError as e:  # e.g. the store is unreachable: try again at the next due time
                    log.error("round failed: %s", e)
                else:
                    if on_round:
                        on_round(report)
                states = self.book.states()
            next_due = min((((states.get(s.url, SourceState()).last_poll or 0) + s.interval) for s in sources),
                           default=time.time() + 60)
            self.stop.wait(min(max(next_due - time.time(), 1.0), 60.0))

    # ------------------------------------------------------------ one source

    def _poll_safely(self, src: Source, st: SourceState, report: RoundReport, persist: bool) -> None:
        try:
            self._poll(src, st, report, persist)
        except AssistantError:
            raise  # the store or the data dir: the round cannot go on
        except Exception as e:  # a bug on odd input must not stop the watcher: report it for this source
            log.exception("unexpected error polling %s", src.url)
            self._source_failed(src, st, report.sources[-1], report, f"unexpected error: {type(e).__name__}: {e}")

    def _poll(self, src: Source, st: SourceState, report: RoundReport, persist: bool) -> None:
        res = SourceResult(src.url, kind=st.kind)
        report.sources.append(res)
        st.last_poll = time.time()
        fresh = st.pending == 0  # with a backlog, the listing is read again even if unchanged
        try:
            page = self.fetcher.get(src.url, st.etag if fresh else None, st.last_modified if fresh else None)
        except Stopped:
            return
        except FetchError as e:
            self._source_failed(src, st, res, report, e.reason)
            return
        if page.not_modified:
            log.info("%s: not modified", src.url)
            st.last_success, st.last_error = time.time(), None
            if st.kind == "page":
                return
            work = self._due(st, [])  # only re-checks of pages whose listing gives no date
            listing = None
        else:
            kind = src.kind if src.kind != "auto" else detect_kind(page.content, page.content_type)
            res.kind = st.kind = kind
            if kind == "page":
                self._ingest_page_source(src, st, page, res, report, persist)
                return
            try:
                listing = self._listing(src, page, kind, report)
            except (ListingError, FetchError) as e:
                self._source_failed(src, st, res, report, getattr(e, "reason", None) or str(e))
                return
            for problem in listing.problems:
                report.ingest.failed.append(LoadFailure(src.url, problem))
            res.failed += len(listing.problems)
            # The listing's validators are kept only once its pages are all handled: a watcher killed in
            # between reads the listing again next time instead of getting a 304 and missing pages.
            st.etag = st.last_modified = None
            validators = (page.etag, page.last_modified)
            st.last_success, st.last_error = time.time(), None
            res.listed = len(listing.entries)
            listed = {e.url for e in listing.entries}
            if listing.complete:  # forget pages the listing no longer has (not when a nested sitemap failed)
                for url in [u for u in st.items if u not in listed]:
                    del st.items[url]
            work = self._due(st, listing.entries)
        cap = self.settings.watch.items_per_round
        st.pending = res.pending = max(0, len(work) - cap)
        work = work[:cap]
        if res.pending and not persist:
            report.ingest.skipped.append(LoadFailure(src.url, f"{res.pending:,} more listed pages not fetched "
                                                              f"(watch.items_per_round = {cap}); add it as a "
                                                              "source to work through them"))
        self._fetch_and_ingest(src, st, work, listing.title if listing else None, res, report, persist)
        if listing is not None and not self.stop.is_set():
            st.etag, st.last_modified = validators
        if res.pending:
            log.info("%s: %d listed pages left for the next rounds", src.url, res.pending)

    def _listing(self, src: Source, page: Page, kind: str, report: RoundReport) -> Listing:
        """Parse the feed or sitemap; a sitemap index's sitemaps (same host, at most MAX_SITEMAPS) are read too."""
        listing = parse_listing(page.content, page.final_url, page.content_type, kind)
        queue, seen = list(listing.sitemaps), {page.final_url}
        while queue and len(seen) <= MAX_SITEMAPS and not self.stop.is_set():
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            if urlsplit(url).hostname != urlsplit(page.final_url).hostname:
                report.ingest.failed.append(LoadFailure(url, "sitemap on another host than its index; not read"))
                continue
            try:
                sub_page = self.fetcher.get(url)
                sub = parse_listing(sub_page.content, sub_page.final_url, sub_page.content_type, "sitemap")
            except Stopped:
                listing.complete = False
                break
            except (FetchError, ListingError) as e:
                report.ingest.failed.append(LoadFailure(url, getattr(e, "reason", None) or str(e)))
                listing.complete = False
                continue
            listing.entries += sub.entries
            listing.problems += [f"{url}: {p}" for p in sub.problems]
            queue += sub.sitemaps
        if len(seen) > 1:  # newest first across the nested sitemaps too, for the per-round cap
            listing.entries.sort(key=lambda e: e.marker or "", reverse=True)
        return listing

    def _due(self, st: SourceState, entries: list[Entry]) -> list[tuple[Entry, PageState | None]]:
        """The listed pages to fetch now: new ones, those the listing says changed, failed ones worth another try,
        and those due a re-check; each with what is known of it (for a conditional request)."""
        now = time.time()
        recheck = self.settings.watch.recheck_hours * 3600
        work: list[tuple[Entry, PageState | None]] = []
        listed: set[str] = set()
        for e in entries:
            if e.url in listed:
                continue
            listed.add(e.url)
            it = st.items.get(e.url)
            if it is None:
                work.append((e, None))
            elif not it.id and 0 < it.fails < MAX_ATTEMPTS:
                work.append((e, it))
            elif e.marker and e.marker != it.marker:
                work.append((e, it))
            elif recheck and not e.marker and now - it.checked > recheck:
                work.append((e, it))
        if not entries:  # listing unchanged (304): failed pages worth another try, undated pages due a re-check
            for url, it in st.items.items():
                if (not it.id and 0 < it.fails < MAX_ATTEMPTS) or (
                        recheck and not it.marker and it.id and now - it.checked > recheck):
                    work.append((Entry(url=url, marker=it.marker), it))
        return work

    def _fetch_and_ingest(self, src: Source, st: SourceState, work: list[tuple[Entry, PageState | None]],
                          feed_title: str | None, res: SourceResult, report: RoundReport, persist: bool) -> None:
        size = max(1, self.settings.ingest.batch_articles)
        for i in range(0, len(work), size):
            if self.stop.is_set():
                break
            batch = work[i:i + size]
            outcomes = list(self._pool.map(lambda w: self._fetch(w[0], w[1], feed_title, src.url), batch))
            articles: list[Article] = []
            updates: dict[str, PageState] = {}
            now = time.time()
            for (entry, known), outcome in zip(batch, outcomes):
                if isinstance(outcome, Stopped):
                    st.pending += 1  # not tried: next round
                    continue
                if isinstance(outcome, FetchError):
                    res.failed += 1
                    report.ingest.failed.append(LoadFailure(entry.url, outcome.reason))
                    log.warning("%s: %s", entry.url, outcome.reason)
                    was = known or PageState()
                    updates[entry.url] = replace(was, marker=entry.marker, checked=now, fails=was.fails + 1,
                                                 error=outcome.reason)
                    continue
                page, article = outcome
                if page.not_modified:
                    res.not_modified += 1
                    updates[entry.url] = replace(known or PageState(), marker=entry.marker, checked=now, fails=0)
                    continue
                assert article is not None  # _fetch gives none only with a 304, handled above
                res.fetched += 1
                articles.append(article)
                # redirects recorded: where the listed URL led (the article's identity follows it)
                updates[entry.url] = PageState(entry.marker, page.etag, page.last_modified, now, article.id,
                                               article.url, redirects=page.redirects or None)
                if page.redirects:
                    log.info("%s redirected to %s", entry.url, " -> ".join(page.redirects))
            if articles:
                ingested = self.ingestor.ingest_articles(articles)
                res.added += ingested.added
                res.updated += ingested.updated
                st.articles_added += ingested.added
                ingested.seconds = 0.0
                report.ingest.merge(ingested)
                log.info("%s: %d added, %d updated, %d unchanged", src.url, ingested.added, ingested.updated,
                         ingested.unchanged)
            st.items.update(updates)
            if persist:  # after each batch: a killed watcher does not fetch these pages again
                self.book.save_states({src.url: st})

    def _fetch(self, entry: Entry, known: PageState | None, feed_title: str | None,
               source_url: str) -> tuple[Page, Article | None] | FetchError:
        """One listed page: fetched (conditionally when it is known) and made an article, or why not."""
        try:
            if not listed_link_allowed(entry.url, source_url):
                raise FetchError(entry.url, "listed link to a private or loopback address refused (the source "
                                            "is not on the internal network)")
            # the fetch checks again, by the same rule, the address it connects to (a name may answer differently)
            page = self.fetcher.get(entry.url, known.etag if known else None, known.last_modified if known else None,
                                    private_ok=listed_private_ok(entry.url, source_url))
            if page.not_modified:
                return page, None
            if detect_kind(page.content, page.content_type) != "page":
                raise FetchError(entry.url, "a feed or sitemap, not an article page (nested feeds are not followed)")
            return page, article_from_page(page, entry, feed_title, self.settings.fetch.min_article_chars)
        except FetchError as e:
            return e
        except Exception as e:  # a parser bug must not stop the round
            log.exception("unexpected error on %s", entry.url)
            return FetchError(entry.url, f"unexpected error: {type(e).__name__}: {e}")

    def _ingest_page_source(self, src: Source, st: SourceState, page: Page, res: SourceResult,
                            report: RoundReport, persist: bool) -> None:
        """A source that is one article page: the response already holds it."""
        try:
            article = article_from_page(page, None, None, self.settings.fetch.min_article_chars)
        except FetchError as e:
            self._source_failed(src, st, res, report, e.reason)
            return
        st.etag, st.last_modified = page.etag, page.last_modified
        st.last_success, st.last_error = time.time(), None
        res.listed = res.fetched = 1
        ingested = self.ingestor.ingest_articles([article])
        res.added, res.updated = ingested.added, ingested.updated
        st.articles_added += ingested.added
        ingested.seconds = 0.0
        report.ingest.merge(ingested)
        st.items = {src.url: PageState(etag=page.etag, last_modified=page.last_modified, checked=time.time(),
                                       id=article.id, url=article.url)}
        if persist:
            self.book.save_states({src.url: st})

    @staticmethod
    def _source_failed(src: Source, st: SourceState, res: SourceResult, report: RoundReport, reason: str) -> None:
        log.warning("%s: %s", src.url, reason)
        st.last_error = reason
        res.error = reason
        res.failed += 1
        report.ingest.failed.append(LoadFailure(src.url, reason))
