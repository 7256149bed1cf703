"""Issue 23, part 5: the fetcher connects to the address it checked (DNS rebinding).

A host name is resolved once per fetch; its addresses are vetted (never link-local, private or loopback only
when allowed) and every connection of that fetch (robots.txt, redirects, retries) goes to one of them, while
the Host header, the TLS server name and the certificate check stay the URL's host name. The resolver is
scripted (socket.getaddrinfo patched: the first answer for a name, then the next...), the servers are real
ones on 127.0.0.1, and every connect httpcore is asked for is recorded; nothing leaves the machine (a connect
to any address but 127.0.0.1 is refused in the recorder).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpcore
import httpx
import pytest

from assistant.config import FetchSettings
from assistant.live.addresses import listed_private_ok
from assistant.live.errors import FetchError
from assistant.live.feeds import Entry
from assistant.live.fetcher import Fetcher
from assistant.live.watch import Watcher
from tests.support.feeds_site import article_page
from tests.support.net import serve_forever_in_thread

PUBLIC = "8.8.8.8"  # a public address the scripted resolver hands out; never actually connected to
PAGE = article_page("Calder ferry timetable changes", ["The Calder ferry sails every half hour from May."]).encode()


class Loopback:
    """An HTTP server on 127.0.0.1 that records every connection it accepts and every request's path and Host
    (HTTP/1.0: one connection per request, so each request is a connect); optionally TLS."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.connections: list[tuple[str, int]] = []
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        self.server_names: list[str | None] = []  # TLS SNI the clients sent
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                site.requests.append((self.path, self.headers.get("Host", "")))
                if self.path == "/robots.txt":
                    status, ctype, body = 200, "text/plain", b"User-agent: *\nAllow: /\n"
                elif self.path == "/old.html":
                    status, ctype, body = 301, "text/plain", b""
                else:
                    status, ctype, body = 200, "text/html; charset=utf-8", PAGE
                self.send_response(status)
                if status == 301:
                    self.send_header("Location", "/news/ferry.html")
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                conn, peer = super().get_request()
                site.connections.append(peer[:2])
                if tls is not None:
                    conn = tls.wrap_socket(conn, server_side=True)  # a failed handshake drops the connection
                return conn, peer

            def handle_error(self, request, client_address) -> None:  # a refused handshake: quiet
                pass

        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)  # type: ignore[assignment]
        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = serve_forever_in_thread(self.server, start=False)

    def __enter__(self) -> Loopback:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class Resolver:
    """socket.getaddrinfo for scripted names: the n-th lookup of a name gets its n-th answer (the last one
    repeats); other names go to the real resolver."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]):
        self.answers = answers
        self.lookups: list[str] = []
        real = socket.getaddrinfo

        def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
            name = host.decode() if isinstance(host, bytes) else host
            if name not in answers:
                return real(host, port, family, type, proto, flags)
            n = sum(1 for looked in self.lookups if looked == name)
            self.lookups.append(name)
            ip = answers[name][min(n, len(answers[name]) - 1)]
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, int(port or 0)))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def count(self, name: str) -> int:
        return self.lookups.count(name)


@pytest.fixture
def connects(monkeypatch) -> Iterator[list[tuple[str, int]]]:
    """What httpcore's socket backend is asked to connect to: (host, port) as it was given. Nothing leaves the
    machine: an address other than 127.0.0.1 fails at once, and a name (as httpx passed them before pinning)
    is looked up once, as the socket library would, and connected to only when that gives 127.0.0.1."""
    asked: list[tuple[str, int]] = []
    original = httpcore.SyncBackend.connect_tcp

    def connect_tcp(self, host, port, *args, **kwargs):
        asked.append((host, port))
        try:
            ipaddress.ip_address(host)
            address = host
        except ValueError:
            address = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][4][0]
        if address != "127.0.0.1":
            raise httpcore.ConnectError(f"test: not connecting to {address}")
        return original(self, address, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect_tcp)
    yield asked


def fetcher(robots_cache: Path | None = None, **overrides) -> Fetcher:
    return Fetcher(FetchSettings(**{"per_host_delay": 0.0, "backoff": 0.01, "timeout": 2.0, "retries": 0,
                                    **overrides}), robots_cache=robots_cache)


def test_a_rebinding_host_is_connected_at_the_address_that_was_checked(monkeypatch, connects, tmp_path):
    """The first answer for rebind.example is public, every later one 127.0.0.1: a fetch resolves once and
    connects only to the checked address (unreachable here), for robots.txt, the page and its retry, never to
    the loopback server."""
    with Loopback() as server:
        resolver = Resolver(monkeypatch, {"rebind.example": [PUBLIC, "127.0.0.1"]})
        origin = f"http://rebind.example:{server.port}"
        with fetcher() as f, pytest.raises(FetchError, match="robots.txt"):
            f.get(origin + "/news/ferry.html")  # its robots.txt cannot be read at the vetted address: not now
        assert connects == [(PUBLIC, server.port)] and resolver.count("rebind.example") == 1
        # robots.txt known (kept from an earlier run): the page itself, retried once, stays at the address
        kept = tmp_path / "robots.json"
        kept.write_text(json.dumps({origin: {"at": time.time(), "status": 200, "body": "User-agent: *\n"}}))
        resolver.lookups.clear()  # the name's first answer is public again
        with fetcher(robots_cache=kept, retries=1) as f, pytest.raises(FetchError, match="after 2 tries"):
            f.get(origin + "/news/ferry.html")
        assert connects == [(PUBLIC, server.port)] * 3 and resolver.count("rebind.example") == 1
        assert server.connections == [] and server.requests == []


def test_a_pinned_fetch_keeps_the_host_header_and_follows_redirects_at_the_same_address(monkeypatch, connects):
    """news.example is on 127.0.0.1 when checked (a loopback source, allowed as the feed tests' servers are),
    then 'moves' to a public address: robots.txt, the page and its redirect all go to the checked address,
    each request still naming news.example in Host."""
    with Loopback() as server:
        resolver = Resolver(monkeypatch, {"news.example": ["127.0.0.1", PUBLIC]})
        host = f"news.example:{server.port}"
        with fetcher() as f:
            page = f.get(f"http://{host}/old.html")
            assert page.status == 200 and page.content == PAGE
            assert page.final_url == f"http://{host}/news/ferry.html" and page.redirects == [page.final_url]
            with pytest.raises(httpx.ConnectError, match="no vetted address"):  # no connection without a check
                f.client.get(f"http://{host}/news/ferry.html")
        assert server.requests == [("/robots.txt", host), ("/old.html", host), ("/news/ferry.html", host)]
        assert len(server.connections) == 3 and connects == [("127.0.0.1", server.port)] * 3
        assert resolver.count("news.example") == 1


def _certificates(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for `name` signed by it (openssl's command line)."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
        "-subj", "/CN=pinning test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
        "-keyout", "server.key", "-out", "server.csr")
    (tmp / "ext.cnf").write_text(f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"
                                 "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                                 "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
    return tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line")
def test_tls_to_a_pinned_address_names_and_verifies_the_host(monkeypatch, connects, tmp_path):
    """Over https the connection goes to the checked address, but the TLS server name is the URL's host and the
    certificate is verified for that name: a certificate for news.example serves news.example; the same server
    reached as other.example (pinned to the same address) fails verification, nothing is requested."""
    ca, cert, key = _certificates(tmp_path, "news.example")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # httpx's trust store for this test's CA
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    with Loopback(tls) as server:
        Resolver(monkeypatch, {"news.example": ["127.0.0.1", PUBLIC], "other.example": ["127.0.0.1"]})
        with fetcher() as f:
            page = f.get(f"https://news.example:{server.port}/news/ferry.html")
            assert page.status == 200 and page.content == PAGE
            assert server.server_names == ["news.example", "news.example"]  # robots.txt, the page
            assert {h for _, h in server.requests} == {f"news.example:{server.port}"}
            with pytest.raises(FetchError):
                f.get(f"https://other.example:{server.port}/news/ferry.html")  # robots.txt fails verification
        assert server.server_names[2:] == ["other.example"]
        assert len(server.requests) == 2  # none for other.example: the handshake was refused
        assert connects == [("127.0.0.1", server.port)] * 3


def test_a_listed_link_rebinding_to_loopback_is_refused(monkeypatch, connects, make_settings):
    """A public feed lists links.example: public when the watcher vets the listed link, 127.0.0.1 afterwards.
    The fetch vets the address it will use, with the listed link's rule (no private address: the source is
    public), so it is refused and the loopback server never hears of it."""
    with Loopback() as server:
        Resolver(monkeypatch, {"links.example": [PUBLIC, "127.0.0.1"], "public-feed.example": [PUBLIC],
                               "intranet.example": ["10.0.0.7"]})
        feed = "https://public-feed.example/rss.xml"
        link = f"http://links.example:{server.port}/news/ferry.html"
        assert not listed_private_ok(link, feed)
        assert listed_private_ok(f"https://public-feed.example:{server.port}/news/a.html", feed)  # its own host
        assert listed_private_ok(link, f"http://127.0.0.1:{server.port}/rss.xml")  # a source on loopback
        with Watcher(make_settings(**{"fetch.per_host_delay": 0.0, "fetch.retries": 0})) as w:
            outcome = w._fetch(Entry(link), None, None, feed)
        assert isinstance(outcome, FetchError) and "private or loopback" in outcome.reason, outcome
        with fetcher() as f, pytest.raises(FetchError, match="private or loopback"):
            f.get(f"http://intranet.example:{server.port}/admin", private_ok=False)
        assert server.connections == [] and connects == []


def test_a_proxy_in_the_environment_is_named_in_the_log(monkeypatch, caplog):
    """Through a proxy the proxy resolves names, so addresses cannot be pinned: kept working as before
    (httpx's own proxy support), with a warning saying so."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING, logger="assistant.live.fetcher"), fetcher():
        pass
    assert any("proxy" in r.getMessage() and "pinned" in r.getMessage() for r in caplog.records)
    monkeypatch.delenv("HTTPS_PROXY")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="assistant.live.fetcher"), fetcher():
        pass
    assert not caplog.records
