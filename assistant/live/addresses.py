"""Which addresses a fetch may reach (SSRF and DNS rebinding): the URL check, a host resolved once, the rules
for private, loopback, link-local and metadata addresses (a configured source's and a listed link's), and the
httpx transport that connects only to the addresses checked (`_vet`, `_PinnedBackend`)."""

from __future__ import annotations

import contextvars
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httpcore
import httpx

from assistant.live.errors import FetchError
from assistant.urls import HTTP_SCHEMES, is_http_url


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def check_url(url: str) -> str:
    """The URL, stripped, if it is an absolute http(s) URL with a host; else FetchError."""
    url = url.strip()
    if len(url) > 2000 or any(c.isspace() or ord(c) < 32 or 0xD800 <= ord(c) < 0xE000 for c in url):
        raise FetchError(url[:200], "not a valid URL (too long, or spaces or control characters in it)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range
        if parts.scheme in ("http", "https"):
            httpx.URL(url)  # what the client will accept (IDNA host)
    except (ValueError, httpx.InvalidURL):
        raise FetchError(url, "not a valid URL") from None
    if not is_http_url(url):
        raise FetchError(url, "URL has no host" if parts.scheme in HTTP_SCHEMES else
                         f"only http and https URLs are fetched, not '{parts.scheme[:20] or '(none)'}'")
    return url


_METADATA = ipaddress.ip_address("fd00:ec2::254")  # a cloud's instance-metadata address outside fe80::/10


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _resolve(host: str) -> list[IPAddress] | None:
    """The addresses a host is (an IP literal) or resolves to, in the resolver's order (the order a connection
    tries them); None if it does not resolve."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        # TCP addresses are IPv4/IPv6 (host, port, ...) tuples: the host is a str (typeshed's sockaddr also
        # covers families with an int there)
        found = [ipaddress.ip_address(cast(str, info[4][0]).split("%")[0])
                 for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]
    except (OSError, UnicodeError, ValueError):
        return None
    return list(dict.fromkeys(found))


def _addresses(host: str) -> set[IPAddress] | None:
    """The addresses a host is (an IP literal) or resolves to; None if it does not resolve."""
    found = _resolve(host)
    return None if found is None else set(found)


def _is_private(a: IPAddress) -> bool:
    return a.is_private or a.is_loopback or a.is_link_local or a.is_reserved or a.is_multicast or a.is_unspecified


def _is_link_local(a: IPAddress) -> bool:
    mapped = a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) else None
    return a.is_link_local or a == _METADATA or (mapped is not None and mapped.is_link_local)


def _private(host: str) -> bool | None:
    """Whether a host is (or resolves to) a loopback, private, link-local or reserved address; None if it
    does not resolve (the request will fail on its own)."""
    addresses = _addresses(host)
    if addresses is None:
        return None
    return any(_is_private(a) for a in addresses)


def link_local(host: str, resolve: bool = True) -> bool:
    """Whether a host is (or, with `resolve`, resolves to) a link-local address (169.254.0.0/16, fe80::/10,
    where clouds answer instance-metadata requests with credentials) or fd00:ec2::254: never fetched, for
    any source, an admin's included."""
    if resolve:
        addresses = _addresses(host) or set()
    else:
        try:
            addresses = {ipaddress.ip_address(host.strip("[]"))}
        except ValueError:
            return False
    return any(_is_link_local(a) for a in addresses)


def listed_private_ok(url: str, source_url: str) -> bool:
    """Whether a link a feed or sitemap lists may be on a private or loopback address: only when it is on the
    source's own host or the source itself is on such an address (`Fetcher.get`'s `private_ok`)."""
    return _host(source_url) == _host(url) or bool(_private(_host(source_url)))


def listed_link_allowed(url: str, source_url: str) -> bool:
    """A link a feed or sitemap lists may lead anywhere public, but to a private or loopback address only
    when the source itself is on one: a hostile feed cannot make the watcher probe the internal network."""
    return not _private(_host(url)) or listed_private_ok(url, source_url)


@dataclass(frozen=True)
class _Pin:
    """The addresses one fetch checked for its host: each connection it opens goes to one of them."""

    host: str  # as the connection pool names it (IDNA, lower case)
    addresses: tuple[str, ...]  # in the resolver's order; empty when the host did not resolve
    private_ok: bool  # the rule they were checked by (which connection pool may carry them)


# The pin of the request this thread (or task) is sending; read by `_PinnedBackend.connect_tcp`.
_PIN: contextvars.ContextVar[_Pin | None] = contextvars.ContextVar("assistant_fetch_pin", default=None)


def _vet(url: str, private_ok: bool) -> _Pin:
    """Resolve the URL's host once and check every address: link-local and metadata addresses are refused
    always, private, loopback and reserved ones unless `private_ok`. FetchError when refused."""
    try:
        name = httpx.URL(url).raw_host.decode("ascii").lower()  # what httpcore would look up and connect to
    except (httpx.InvalidURL, UnicodeError):
        raise FetchError(url, "not a valid URL") from None
    addresses = _resolve(name)
    if addresses is None:  # the connection fails as a name that does not resolve (and a retry asks again)
        return _Pin(name, (), private_ok)
    if any(_is_link_local(a) for a in addresses):
        raise FetchError(url, "link-local and cloud metadata addresses are never fetched")
    if not private_ok and any(_is_private(a) for a in addresses):
        raise FetchError(url, f"{_host(url)} is on a private or loopback address: refused (a link the source "
                              "lists leads there only when the source itself is on the internal network)")
    return _Pin(name, tuple(str(a) for a in addresses), private_ok)


class _PinnedBackend(httpcore.NetworkBackend):
    """httpcore's own socket backend, told to connect to the addresses the current request's pin holds instead
    of resolving the host again. httpcore starts TLS on the stream it returns with the URL's host as server
    name (SNI and certificate verification for the name, not the address), and the Host header is the URL's.
    A connection without a pin for its host is refused (fail closed)."""

    def __init__(self) -> None:
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        pin = _PIN.get()
        if pin is None or pin.host != host.lower():
            raise httpcore.ConnectError(f"no vetted address for {host}")
        if not pin.addresses:
            raise httpcore.ConnectError(f"{host} does not resolve")
        failure: Exception | None = None
        for address in pin.addresses:  # as socket.create_connection tries a name's addresses
            try:
                return self._sockets.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                failure = e
        assert failure is not None
        raise failure


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's transport (its exception mapping and response streams) over an httpcore connection pool whose
    network backend is `_PinnedBackend`. HTTPTransport takes no network backend, so the pool it builds is
    replaced by the same pool with one (httpcore's public ConnectionPool; `_pool` is where httpx keeps it)."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):  # httpx moved it: say so
            raise RuntimeError("httpx.HTTPTransport has no _pool to give a network backend; update "
                               "assistant/live/addresses.py for this httpx version")
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend())
