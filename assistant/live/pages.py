"""A fetched page into an `Article`: trafilatura through the .html loader, identity from the canonical URL."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from assistant.ingest.loaders import html_article
from assistant.live.errors import FetchError
from assistant.live.feeds import Entry
from assistant.live.response import Page
from assistant.models import Article
from assistant.urls import is_http_url

log = logging.getLogger(__name__)


def canonical_url(declared: str | None, final_url: str) -> str:
    """The page's declared canonical URL (<link rel=canonical>, og:url) when it is http(s) on the host the
    page was served from, else the URL it was fetched from (after redirects).

    A page is untrusted: a canonical URL on another host could claim (and overwrite) another site's article.
    """
    if declared:
        if is_http_url(declared) and (urlsplit(declared).hostname or "").lower() == \
                (urlsplit(final_url).hostname or "").lower():
            return declared
        log.info("%s declares canonical URL %s on another host; keeping the fetched URL", final_url, declared)
    return final_url


def article_from_page(page: Page, entry: Entry | None = None, feed_title: str | None = None,
                      min_chars: int = 0) -> Article:
    """The article in an HTML page; the feed's title, date and author fill what the page lacks.

    Raises FetchError (for the report) when the page holds no article: no main text, or less than min_chars.
    """
    html = page.text()
    found = html_article(html, page.final_url, url=page.final_url, plain_fallback=False)
    if isinstance(found, str):
        raise FetchError(page.url, "not an article: no main text found (index page or paywall?)", page.status)
    if len(found.body) < min_chars:
        raise FetchError(page.url, f"not an article: {len(found.body)} characters of main text, under "
                                   f"fetch.min_article_chars ({min_chars}) (index page or paywall?)", page.status)
    url = canonical_url(found.url, page.final_url)
    source = found.source
    if feed_title and (not source or _is_host(source, page.final_url)):
        source = feed_title  # trafilatura names a page without og:site_name after its host; the feed knows better
    return Article(
        title=found.title or (entry.title if entry else None) or url, body=found.body,
        source=source, author=found.author or (entry.author if entry else None),
        published_at=found.published_at or (entry.published if entry else None), url=url, origin=page.url)


def _is_host(name: str, url: str) -> bool:
    parts = urlsplit(url)
    name = name.strip().lower().removeprefix("www.")
    return name in {(parts.hostname or "").removeprefix("www."), parts.netloc.lower().removeprefix("www.")}
