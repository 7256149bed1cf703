"""A loopback news site for the feed tests and bench/feeds.py: static resources with ETag and Last-Modified
(answering 304 to conditional requests), scripted routes (errors, redirects, slow answers), and a log of
every request it received, so tests assert what the client actually downloaded."""

from __future__ import annotations

import email.utils
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.net import serve_forever_in_thread

DATA = Path(__file__).resolve().parent.parent / "data" / "feeds"

Handler = Callable[["Request"], tuple[int, dict[str, str], bytes]]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    sent: int = 0  # body bytes sent
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Resource:
    body: bytes
    content_type: str
    modified: float = field(default_factory=time.time)
    validators: bool = True

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(self.body).hexdigest()[:12] + '"'


class Site:
    """`add()` static resources, `route()` scripted ones; `start()` serves them on 127.0.0.1 (free port)."""

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.routes: dict[str, Handler] = {}
        self.log: list[Request] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # lets slow handlers finish at shutdown
        self.server: ThreadingHTTPServer | None = None
        self.base = ""

    # ---------------------------------------------------------------- content

    def add(self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8",
            validators: bool = True) -> None:
        """Serve `body` at `path` ("{base}" in text is replaced by the site's base URL)."""
        if isinstance(body, str):
            body = body.replace("{base}", self.base).encode("utf-8")
        with self.lock:
            self.resources[path] = Resource(body, content_type, validators=validators)

    def add_file(self, path: str, name: str, content_type: str = "text/html; charset=utf-8") -> None:
        self.add(path, (DATA / name).read_text(encoding="utf-8"), content_type)

    def change(self, path: str, old: str, new: str) -> None:
        """Edit a served resource (new ETag, Last-Modified one second later)."""
        with self.lock:
            r = self.resources[path]
            text = r.body.decode("utf-8")
            assert old in text, old
            self.resources[path] = Resource(text.replace(old, new).encode("utf-8"), r.content_type,
                                            modified=r.modified + 1, validators=r.validators)

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    # ---------------------------------------------------------------- log

    def requests(self, path: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.log if path is None or r.path == path]

    def downloads(self, path: str | None = None) -> list[Request]:
        """Requests answered 200 with a body (what a conditional request saves)."""
        return [r for r in self.requests(path) if r.status == 200 and r.sent > 0]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()

    # ---------------------------------------------------------------- server

    def start(self) -> Site:
        site = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                req = Request("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
                with site.lock:
                    site.log.append(req)
                status, headers, body = site._answer(req)
                req.status = status
                try:
                    self.send_response(status)
                    unsized = headers.pop("X-Unsized", None)  # no Content-Length: the body ends at close
                    for k, v in headers.items():
                        self.send_header(k, v)
                    if unsized:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    elif "Content-Length" not in headers:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if body:
                        self.wfile.write(body)
                        req.sent = len(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class _Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # a client that hangs up early (size cap, timeout) is expected here

        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        serve_forever_in_thread(self.server)
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> Site:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _answer(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        path = req.path.split("?")[0]
        if path in self.routes:
            return self.routes[path](req)
        with self.lock:
            r = self.resources.get(path)
        if r is None:
            return 404, {"Content-Type": "text/html; charset=utf-8"}, b"<html><body>Not found</body></html>"
        headers = {"Content-Type": r.content_type}
        if r.validators:
            headers["ETag"] = r.etag
            headers["Last-Modified"] = email.utils.formatdate(r.modified, usegmt=True)
            inm = req.headers.get("if-none-match")
            ims = req.headers.get("if-modified-since")
            if inm == r.etag or (inm is None and ims and _parse_date(ims) >= int(r.modified)):
                return 304, {"ETag": r.etag}, b""
        return 200, headers, r.body


def _parse_date(value: str) -> float:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0.0


def article_page(title: str, paragraphs: list[str], outlet: str | None = "Calder Gazette",
                 canonical: str | None = None, charset: str | None = "utf-8") -> str:
    """A small news page in the shape of the ones in tests/data/feeds/ (for generated and odd-encoding pages)."""
    meta = f'<meta charset="{charset}">' if charset else ""
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    site = f'<meta property="og:site_name" content="{outlet}">' if outlet else ""
    body = "\n".join(f"      <p>{p}</p>" for p in paragraphs)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n  {meta}\n  <title>{title}</title>\n  {site}\n  {link}\n'
            f"</head>\n<body>\n  <main>\n    <article>\n      <h1>{title}</h1>\n{body}\n    </article>\n  </main>\n"
            f"</body>\n</html>\n")


def rss(title: str, links: list[str], author: str | None = None) -> str:
    """An RSS 2.0 feed listing these links (one item each, dated a day apart from 2025-04-01, newest first)."""
    by = f"<dc:creator>{author}</dc:creator>" if author else ""
    items = "".join(
        f"<item><title>Item {n}</title><link>{link}</link>{by}"
        f"<pubDate>{email.utils.formatdate(1743490800 - n * 86400, usegmt=True)}</pubDate></item>\n"
        for n, link in enumerate(links))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<channel><title>{title}</title><link>{{base}}/</link><description>fictional test feed</description>\n"
            f"{items}</channel></rss>\n")


ARTICLES = ["ferry-fares", "library", "dam-inspection", "orchard"]


def serve_newsroom(site: Site) -> None:
    """The standard fictional site: robots.txt, an RSS feed, an Atom feed, a news sitemap index, four articles."""
    site.add_file("/robots.txt", "robots.txt", "text/plain")
    site.add_file("/rss.xml", "rss.xml", "application/rss+xml")
    site.add_file("/atom.xml", "atom.xml", "application/atom+xml; charset=utf-8")
    site.add_file("/sitemap-index.xml", "sitemap-index.xml", "application/xml")
    site.add_file("/sitemap-news.xml", "sitemap-news.xml", "application/xml")
    site.add_file("/private/leak.html", "leak.html")
    site.add_file("/news/index.html", "index.html")
    for name in ARTICLES:
        site.add_file(f"/news/{name}.html", f"{name}.html")
