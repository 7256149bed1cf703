"""The one answer to "is this an absolute http(s) URL": a base rule every stage may import (settings, the
fetcher, the page reader, the chat's links)."""

from __future__ import annotations

from typing import TypeGuard
from urllib.parse import urlsplit

HTTP_SCHEMES = ("http", "https")


def is_http_url(url: object) -> TypeGuard[str]:
    """Whether `url` (surrounding spaces ignored) is an absolute http:// or https:// URL with a host name.

    False for anything else: javascript:, data:, ftp:, relative paths, "http://" or "http://:80" (no host),
    a URL urlsplit cannot read ("http://[::1"), or not a string at all."""
    if not url or not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url.strip())
        return parts.scheme in HTTP_SCHEMES and bool(parts.hostname)
    except ValueError:
        return False
