"""Kept for bench/feeds.py, which puts tests/ on sys.path and imports `feeds_site`: the site lives in
tests/support/feeds_site.py (test modules import it from there)."""

from tests.support.feeds_site import ARTICLES, Request, Resource, Site, article_page, rss, serve_newsroom

__all__ = ["ARTICLES", "Request", "Resource", "Site", "article_page", "rss", "serve_newsroom"]
