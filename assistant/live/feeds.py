"""Feeds and sitemaps into lists of article links: RSS/Atom with feedparser, (news) sitemaps with lxml.

feedparser rather than trafilatura.feeds: trafilatura's feed code returns bare links, while the watcher needs
each item's title, date and author (used when the page lacks them) and its updated date (to re-fetch only
what the feed says changed), and its URL filter (courlan) drops every link on an IP address or a non-default
port (tried on tests/data/feeds: no links at all from the loopback site); feedparser keeps them, and
recovers items from broken XML. Sitemaps are read with lxml rather than trafilatura.sitemaps, which fetches
by itself (around our polite client), returns bare links without <lastmod> or the news: title and date, and
tells a nested sitemap by '.xml' in its URL instead of by the <sitemapindex> element. Everything here is
parsing only: no network.
"""

from __future__ import annotations

import io
import logging
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from lxml import etree

log = logging.getLogger(__name__)

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
_ROOT = re.compile(rb"<([A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[\s/>]")
_FEED_ROOTS = {b"rss", b"feed", b"RDF", b"rdf"}
_SITEMAP_ROOTS = {b"urlset", b"sitemapindex"}


class ListingError(Exception):
    """A feed or sitemap that cannot be read at all (the reason is for the report)."""


@dataclass
class Entry:
    """One link a feed or sitemap lists, with what the listing says about it."""

    url: str
    title: str | None = None
    published: str | None = None  # YYYY-MM-DD
    author: str | None = None
    marker: str | None = None  # the listing's updated/lastmod value: a new one means the page changed


@dataclass
class Listing:
    """A parsed feed or sitemap: its pages, nested sitemaps, and items that could not be used."""

    kind: str  # "feed" or "sitemap"
    title: str | None = None
    entries: list[Entry] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    complete: bool = True  # False when part of it (a nested sitemap) could not be read


def detect_kind(content: bytes, content_type: str = "") -> str:
    """'feed', 'sitemap' or 'page', from the document's root element (the content type only breaks ties)."""
    head = content[:4096]
    head = re.sub(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", b"", head, flags=re.DOTALL)
    m = _ROOT.search(head)
    root = m.group(2) if m else b""
    if root in _FEED_ROOTS:
        return "feed"
    if root in _SITEMAP_ROOTS:
        return "sitemap"
    if content_type == "text/plain" and re.match(rb"\s*https?://", content[:200]):
        return "sitemap"  # the sitemap protocol's plain-text form: one URL per line
    return "page"


def parse_listing(content: bytes, url: str, content_type: str = "", kind: str | None = None) -> Listing:
    """Parse a feed or sitemap fetched from `url` (relative links resolve against it)."""
    kind = kind if kind in ("feed", "sitemap") else detect_kind(content, content_type)
    if kind == "feed":
        return parse_feed(content, url, content_type)
    if kind == "sitemap":
        return parse_sitemap(content, url, content_type)
    raise ListingError("not a feed or sitemap (an HTML page?)")


def parse_feed(content: bytes, url: str, content_type: str = "") -> Listing:
    """RSS 0.9x/1.0/2.0 or Atom: items with an http(s) link become entries; the others are problems."""
    import feedparser  # imported late: only URL ingest and the watcher need it

    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # A stream, never bytes or str: feedparser would open a str that looks like a URL or a file path.
    parsed = feedparser.parse(io.BytesIO(content), response_headers=headers)
    listing = Listing(kind="feed", title=_text(parsed.feed.get("title")))
    for n, item in enumerate(parsed.entries, start=1):
        link = (item.get("link") or "").strip()
        title = _text(item.get("title"))
        if not link or urlsplit(urljoin(url, link)).scheme not in ("http", "https"):
            listing.problems.append(f"item {n}" + (f" ('{title[:60]}')" if title else "") + " has no http(s) link")
            continue
        when = item.get("published_parsed") or item.get("updated_parsed")
        listing.entries.append(Entry(
            url=urljoin(url, link), title=title, author=_text(item.get("author")),
            published=time.strftime("%Y-%m-%d", when) if when else None,
            marker=_text(item.get("updated") or item.get("published"))))
    if parsed.get("bozo") and not listing.entries:
        raise ListingError(f"malformed feed XML ({_reason(parsed.get('bozo_exception'))})")
    if parsed.get("bozo"):
        log.info("%s: feed XML is not well-formed (%s); kept the %d items recovered", url,
                 _reason(parsed.get("bozo_exception")), len(listing.entries))
    return listing


def parse_sitemap(content: bytes, url: str, content_type: str = "") -> Listing:
    """A <urlset> (with news: titles and dates when present), a <sitemapindex>, or a plain-text URL list."""
    listing = Listing(kind="sitemap")
    if content_type == "text/plain" or not content.lstrip()[:1] == b"<":
        for line in content.decode("utf-8", "replace").splitlines():
            if line.strip().startswith(("http://", "https://")):
                listing.entries.append(Entry(url=line.strip()))
        if not listing.entries:
            raise ListingError("not a sitemap: no URLs found")
        return listing
    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True, huge_tree=False)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as e:
        raise ListingError(f"malformed sitemap XML ({e})") from None
    if root is None or etree.QName(root).localname not in ("urlset", "sitemapindex"):
        raise ListingError("malformed sitemap XML (no <urlset> or <sitemapindex>)")
    index = etree.QName(root).localname == "sitemapindex"
    for n, el in enumerate(root, start=1):
        if not isinstance(el.tag, str) or etree.QName(el).localname not in ("url", "sitemap"):
            continue
        loc = _child(el, "loc")
        if not loc or urlsplit(urljoin(url, loc)).scheme not in ("http", "https"):
            listing.problems.append(f"entry {n} has no http(s) <loc>")
            continue
        loc = urljoin(url, loc)
        if index:
            listing.sitemaps.append(loc)
            continue
        news = next((c for c in el if isinstance(c.tag, str) and etree.QName(c).localname == "news"), None)
        published = _child(news, "publication_date") if news is not None else None
        lastmod = _child(el, "lastmod")
        listing.entries.append(Entry(url=loc, title=_child(news, "title") if news is not None else None,
                                     published=_date(published or ""), marker=lastmod or published))
    # Newest first, so a capped round takes the latest news (undated entries keep their order, after).
    listing.entries.sort(key=lambda e: e.marker or "", reverse=True)
    return listing


def _child(el, name: str) -> str | None:
    for c in el:
        if isinstance(c.tag, str) and etree.QName(c).localname == name and c.text and c.text.strip():
            return c.text.strip()
    return None


def _date(value: str) -> str | None:
    m = re.match(r"(\d{4}-\d{2}-\d{2})", value.strip())
    return m.group(1) if m else None


def _text(value) -> str | None:
    return " ".join(str(value).split()) or None if value else None


def _reason(e: BaseException | None) -> str:
    return " ".join(str(e).split())[:120] if e else "unknown error"
