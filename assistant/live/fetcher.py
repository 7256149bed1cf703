"""The polite HTTP client of URL ingest and the watcher: robots.txt, conditional requests, per-host delay, limits.

Every request names the assistant in its User-Agent, asks robots.txt first, waits its turn per host, sends the
validators it has (ETag / Last-Modified), follows redirects only on the same host, reads at most
`fetch.max_mb`, accepts only web pages and feeds, and retries 429/5xx a bounded number of times (honouring
Retry-After). A failure is a `FetchError` naming the URL and why; nothing here raises anything else.

A fetch resolves its host once, checks the addresses (`addresses._vet`) and connects only to them
(`addresses._PinnedBackend`), for robots.txt, redirects and retries alike: a host that answers differently the
next time it is asked (DNS rebinding) is never reached at the other address. The Host header, TLS server name and certificate check
stay the URL's host name.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import threading
import time
import urllib.request
import zlib
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from assistant.config import FetchSettings
from assistant.live.addresses import _PIN, _host, _Pin, _PinnedTransport, _vet, check_url
from assistant.live.errors import FetchError
from assistant.live.response import Page

log = logging.getLogger(__name__)

# What a web page, feed or sitemap is served as; anything else (images, PDFs, octet-stream) is refused.
ACCEPTED_TYPES = {"text/html", "application/xhtml+xml", "application/xml", "text/xml", "application/rss+xml",
                  "application/atom+xml", "application/rdf+xml", "application/x-rss+xml", "text/plain"}
GZIP_TYPES = {"application/gzip", "application/x-gzip"}  # a gzipped sitemap (sitemap.xml.gz), unpacked here
ACCEPT = "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,application/xml;q=0.9,*/*;q=0.1"
ROBOTS_TTL = 3600.0  # seconds a host's robots.txt is trusted before it is asked again
ROBOTS_RETRY = 300.0  # seconds before a failing robots.txt is asked again
ROBOTS_MAX_BYTES = 512 * 1024
MAX_CRAWL_DELAY = 60.0  # a robots.txt Crawl-delay above this is capped (it would stall the whole round)


class Stopped(FetchError):
    """The watcher was asked to stop while this request waited for its turn."""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1].lower()}"


def _env_proxies() -> list[str]:
    """The schemes the environment names a proxy for (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY), as httpx reads them."""
    proxies = urllib.request.getproxies()
    return [scheme for scheme in ("http", "https", "all") if proxies.get(scheme)]


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Fetcher:
    """A shared httpx client with the politeness rules; safe to use from several threads."""

    def __init__(self, settings: FetchSettings, stop: threading.Event | None = None,
                 transport: httpx.BaseTransport | None = None, robots_cache: Path | None = None):
        """Args:
            robots_cache: a JSON file keeping each host's robots.txt for ROBOTS_TTL across runs (so a cron
                `watch --once` every few minutes asks for it once an hour, not every run).
        """
        self.settings = settings
        self.robots_cache = robots_cache
        self.stop = stop or threading.Event()
        self.agent = settings.user_agent.split("/")[0].split()[0] if settings.user_agent else "*"
        limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)

        def client(transport: httpx.BaseTransport | None) -> httpx.Client:
            return httpx.Client(headers={"User-Agent": settings.user_agent, "Accept": ACCEPT},
                                timeout=httpx.Timeout(settings.timeout), follow_redirects=False,
                                transport=transport, limits=limits)

        # Two pools, one per rule, so a kept-alive connection only ever carries requests checked by the rule its
        # address was checked by (one opened to a source's private address never serves a listed link).
        self._clients: dict[bool, httpx.Client]
        if transport is None and _env_proxies():
            log.warning("fetching through the proxy the environment names (%s): the proxy resolves host names, "
                        "so addresses are checked here but cannot be pinned; let the proxy refuse internal "
                        "addresses", ", ".join(p.upper() + "_PROXY" for p in _env_proxies()))
            self._clients = dict.fromkeys((True, False), client(None))  # httpx's own proxy support, as before
        elif transport is None:
            self._clients = {ok: client(_PinnedTransport(limits)) for ok in (True, False)}
        else:  # a test's transport (no network)
            self._clients = dict.fromkeys((True, False), client(transport))
        self.client = self._clients[True]
        self.max_bytes = int(settings.max_mb * 1024 * 1024)
        self._slots = threading.BoundedSemaphore(settings.concurrency)
        self._lock = threading.Lock()
        self._next_at: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._robots: dict[str, tuple[float, RobotFileParser]] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self.requests = 0  # HTTP requests sent (robots.txt included)
        self.downloads = 0  # responses whose body was read (200s)
        self.bytes = 0

    def close(self) -> None:
        for c in set(self._clients.values()):
            c.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ public

    def get(self, url: str, etag: str | None = None, last_modified: str | None = None,
            private_ok: bool = True) -> Page:
        """GET one URL politely; a 304 comes back as a Page with `not_modified`; failures raise FetchError.

        The host is resolved once; every connection of this fetch (robots.txt, redirects, retries) goes to the
        addresses checked then. `private_ok`: whether they may be private or loopback (a configured source's
        may; a listed link's only by `listed_private_ok`). Link-local and metadata addresses never are.
        """
        url = check_url(url)
        pin = _vet(url, private_ok)  # before robots.txt: not even that is asked of a refused address
        if not self.allowed(url, pin):
            raise FetchError(url, "disallowed by the site's robots.txt")
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for attempt in range(self.settings.retries + 1):
            last = attempt == self.settings.retries
            if attempt and not pin.addresses:  # the name did not resolve: asked again for the retry
                pin = _vet(url, private_ok)
            try:
                page = self._follow(url, headers, self.max_bytes, pin)
            except _Transient as e:
                if last:
                    raise FetchError(url, f"{e.reason}" + (f" after {attempt + 1} tries" if attempt else "")) from None
                self._pause(url, self.settings.backoff * 2 ** attempt)
                continue
            if page.status == 429 or 500 <= page.status < 600:
                wait = _retry_after(page.headers.get("retry-after"))
                wait = max(wait or 0.0, self.settings.backoff * 2 ** attempt)
                reason = f"HTTP {page.status}" + (f" after {attempt + 1} tries" if attempt else "")
                if last:
                    raise FetchError(url, reason, page.status)
                if wait > self.settings.max_retry_wait:
                    raise FetchError(url, f"{reason}; Retry-After {wait:.0f} s is over fetch.max_retry_wait, "
                                          "next round will try again", page.status)
                log.info("%s: HTTP %d, retrying in %.1f s", url, page.status, wait)
                self._pause(url, wait)
                continue
            if page.status in (200, 304):
                return page
            raise FetchError(url, f"HTTP {page.status}", page.status)
        raise AssertionError("unreachable")

    def allowed(self, url: str, pin: _Pin | None = None) -> bool:
        """Whether the host's robots.txt lets our user agent fetch this URL (fetched once per host per hour,
        at the addresses `pin` holds, else at those it resolves to now)."""
        origin = _origin(url)
        with self._lock:
            lock = self._robots_locks.setdefault(origin, threading.Lock())
        with lock:  # one robots.txt request per host even when several pages ask at once
            cached = self._robots.get(origin)
            if cached is None or time.monotonic() > cached[0]:
                rp, ttl = self._load_robots(origin, pin)
                cached = (time.monotonic() + ttl, rp)
                self._robots[origin] = cached
        rp = cached[1]
        delay = rp.crawl_delay(self.agent)
        if delay:
            with self._lock:
                self._delay[_host(url)] = min(float(delay), MAX_CRAWL_DELAY)
        return rp.can_fetch(self.agent, url)

    # ------------------------------------------------------------ internals

    def _load_robots(self, origin: str, pin: _Pin | None) -> tuple[RobotFileParser, float]:
        """The rules of origin/robots.txt and how long to trust them: 404 and other 4xx allow everything,
        401/403 nothing; an unreachable or failing robots.txt (5xx, timeout) means 'not now' (RFC 9309): the
        host is skipped for a few minutes."""
        rp = RobotFileParser(origin + "/robots.txt")
        kept = self._kept_robots().get(origin)
        if isinstance(kept, dict) and isinstance(kept.get("at"), (int, float)) and \
                0 <= time.time() - kept["at"] < ROBOTS_TTL:
            return self._robots_rules(rp, kept.get("status", 200), kept.get("body", "")), \
                ROBOTS_TTL - (time.time() - kept["at"])
        try:
            page = self._follow(origin + "/robots.txt", {}, ROBOTS_MAX_BYTES, pin or _vet(origin, True),
                                robots_txt=True)
        except (_Transient, FetchError) as e:
            log.warning("%s/robots.txt: %s; not fetching from this host for now", origin, getattr(e, "reason", e))
            rp.disallow_all = True  # type: ignore[attr-defined]  # RobotFileParser's own flag; typeshed omits it
            return rp, ROBOTS_RETRY
        if page.status != 200 and not 400 <= page.status < 500:
            log.warning("%s/robots.txt: HTTP %d; not fetching from this host for now", origin, page.status)
            rp.disallow_all = True  # type: ignore[attr-defined]  # RobotFileParser's own flag; typeshed omits it
            return rp, ROBOTS_RETRY
        body = page.content.decode("utf-8", "replace") if page.status == 200 else ""
        self._keep_robots(origin, page.status, body)
        return self._robots_rules(rp, page.status, body), ROBOTS_TTL

    @staticmethod
    def _robots_rules(rp: RobotFileParser, status: int, body: str) -> RobotFileParser:
        if status in (401, 403):
            rp.disallow_all = True  # type: ignore[attr-defined]  # RobotFileParser's own flag; typeshed omits it
        elif status != 200:
            rp.allow_all = True  # type: ignore[attr-defined]  # RobotFileParser's own flag; typeshed omits it
        else:
            rp.parse(body.splitlines())
        return rp

    def _kept_robots(self) -> dict:
        if self.robots_cache is None:
            return {}
        try:
            data = json.loads(self.robots_cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _keep_robots(self, origin: str, status: int, body: str) -> None:
        if self.robots_cache is None:
            return
        with self._lock:
            data = self._kept_robots()
            data = {o: v for o, v in data.items()
                    if isinstance(v, dict) and time.time() - v.get("at", 0) < ROBOTS_TTL}  # drop stale hosts
            data[origin] = {"at": time.time(), "status": status, "body": body}
            try:
                self.robots_cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.robots_cache.with_name(self.robots_cache.name + f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(data), encoding="utf-8")
                os.replace(tmp, self.robots_cache)
            except OSError as e:
                log.warning("cannot keep robots.txt rules in %s: %s", self.robots_cache, e)

    def _pause(self, url: str, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopped(url, "stopped before the request was sent")

    def _turn(self, url: str) -> None:
        """Wait until this host may be asked again (fetch.per_host_delay, or its robots.txt Crawl-delay)."""
        host = _host(url)
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next_at.get(host, 0.0))
            self._next_at[host] = at + max(self.settings.per_host_delay, self._delay.get(host, 0.0))
        if at > now:
            self._pause(url, at - now)

    def _follow(self, url: str, headers: dict[str, str], max_bytes: int, pin: _Pin,
                robots_txt: bool = False) -> Page:
        """One request and its same-host redirects (all at the pinned addresses); redirect loops, other hosts
        and non-http(s) are refused."""
        chain: list[str] = []
        seen = {url}
        current = url
        while True:
            status, resp_headers, content = self._request(current, headers, max_bytes, not robots_txt, pin)
            if status in (301, 302, 303, 307, 308) and "location" in resp_headers:
                target = urljoin(current, resp_headers["location"].strip())
                if urlsplit(target).scheme not in ("http", "https"):
                    raise FetchError(url, f"redirect to a non-http(s) URL refused ({target[:80]})", status)
                if _host(target) != _host(url):
                    raise FetchError(url, f"redirect to another host ({_host(target)}) refused", status)
                if target in seen:
                    raise FetchError(url, "redirect loop", status)
                if len(chain) >= self.settings.max_redirects:
                    raise FetchError(url, f"more than {self.settings.max_redirects} redirects", status)
                if not robots_txt and not self.allowed(target, pin):
                    raise FetchError(url, f"redirect to {target} disallowed by robots.txt", status)
                seen.add(target)
                chain.append(target)
                current = target
                continue
            return Page(url=url, final_url=current, status=status, content=content, headers=resp_headers,
                        redirects=chain)

    def _request(self, url: str, headers: dict[str, str], max_bytes: int, check_type: bool,
                 pin: _Pin) -> tuple[int, dict[str, str], bytes]:
        self._turn(url)
        with self._slots:
            if self.stop.is_set():
                raise Stopped(url, "stopped before the request was sent")
            deadline = time.monotonic() + self.settings.timeout
            with self._lock:
                self.requests += 1
            pinned = _PIN.set(pin)  # what this request's connection (if it opens one) connects to
            try:
                with self._clients[pin.private_ok].stream("GET", url, headers=headers) as resp:
                    h = {k.lower(): v for k, v in resp.headers.items()}
                    if resp.status_code != 200:
                        return resp.status_code, h, b""
                    if check_type:
                        ctype = h.get("content-type", "").split(";")[0].strip().lower()
                        if ctype and ctype not in ACCEPTED_TYPES | GZIP_TYPES:
                            raise FetchError(url, f"not a web page or feed (content type {ctype[:60]})", 200)
                    length = h.get("content-length", "")
                    if length.isdigit() and int(length) > max_bytes:
                        raise FetchError(url, f"response is {int(length):,} bytes, over the limit of "
                                              f"{max_bytes:,} (fetch.max_mb)", 200)
                    body = bytearray()
                    for chunk in resp.iter_bytes():  # decoded (gzip, br): the cap counts what is kept
                        body += chunk
                        if len(body) > max_bytes:
                            raise FetchError(url, f"response is over the limit of {max_bytes:,} bytes "
                                                  "(fetch.max_mb)", 200)
                        if time.monotonic() > deadline:
                            raise FetchError(url, f"timed out after {self.settings.timeout:g} s (still sending)")
                    raw = bytes(body)
                    if raw[:2] == b"\x1f\x8b":  # a gzipped file (sitemap.xml.gz), whatever it is served as
                        raw = _gunzip(url, raw, max_bytes)
                        h["content-type"] = "text/plain" if urlsplit(url).path.endswith(".txt.gz") else ""
                    with self._lock:
                        self.downloads += 1
                        self.bytes += len(raw)
                    return 200, h, raw
            except httpx.TimeoutException:
                raise FetchError(url, f"timed out after {self.settings.timeout:g} s") from None
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
                raise _Transient(url, f"connection failed ({type(e).__name__}: {str(e)[:100]})") from None
            except httpx.InvalidURL as e:
                raise FetchError(url, f"not a valid URL ({str(e)[:100]})") from None
            except httpx.DecodingError as e:
                raise FetchError(url, f"cannot decode the response body ({str(e)[:100]})") from None
            except httpx.HTTPError as e:
                raise FetchError(url, f"request failed ({type(e).__name__}: {str(e)[:100]})") from None
            finally:
                _PIN.reset(pinned)


def _gunzip(url: str, raw: bytes, max_bytes: int) -> bytes:
    """A gzip file's content, every member, refused once it passes `max_bytes` (a gzip bomb is never
    unpacked further than the cap)."""
    out = bytearray()
    rest = raw
    try:
        while rest:
            unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += unpack.decompress(rest, max_bytes + 1 - len(out))
            if len(out) > max_bytes or unpack.unconsumed_tail:
                raise FetchError(url, f"unpacked, the gzip file is over the limit of {max_bytes:,} bytes "
                                      "(fetch.max_mb)", 200)
            if not unpack.eof:
                raise FetchError(url, "the gzip file is cut short", 200)
            rest = unpack.unused_data.lstrip(b"\x00")
    except zlib.error as e:
        raise FetchError(url, f"not a readable gzip file ({e})", 200) from None
    return bytes(out)


class _Transient(FetchError):
    """A connection-level failure worth retrying."""
