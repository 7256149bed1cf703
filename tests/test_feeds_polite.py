"""The fetcher's manners and limits, against the loopback site (no store, no embedder), and the source settings."""

from __future__ import annotations

import json
import time

import pytest

from assistant.config import FetchSettings, load_settings
from assistant.errors import ConfigError
from assistant.live.addresses import listed_link_allowed
from assistant.live.errors import FetchError
from assistant.live.fetcher import Fetcher
from assistant.live.pages import canonical_url
from assistant.live.sources import SourceBook
from tests.support.feeds_site import Site, article_page

PAGE = article_page("Calder tram depot to close", ["The old tram depot of Calder will close in June."]).encode()


@pytest.fixture
def site():
    with Site() as s:
        s.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", "text/plain")
        yield s


def fetcher(**overrides) -> Fetcher:
    return Fetcher(FetchSettings(**{"per_host_delay": 0.0, "backoff": 0.01, "timeout": 2.0, **overrides}))


def test_retry_after_is_honoured_and_a_long_one_gives_up(site):
    calls = {"n": 0}

    def busy(req):
        calls["n"] += 1
        if calls["n"] == 1:
            return 429, {"Retry-After": "1", "Content-Type": "text/html"}, b"slow down"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, PAGE

    site.route("/busy.html", busy)
    site.route("/down.html", lambda req: (503, {"Retry-After": "3600"}, b"maintenance"))
    with fetcher() as f:
        page = f.get(site.base + "/busy.html")
        first, second = site.requests("/busy.html")
        assert page.status == 200 and second.at - first.at >= 0.95  # waited what Retry-After asked
        with pytest.raises(FetchError) as e:
            f.get(site.base + "/down.html")
        assert e.value.status == 503 and "Retry-After 3600 s is over fetch.max_retry_wait" in e.value.reason
        assert len(site.requests("/down.html")) == 1  # gave up at once instead of waiting an hour


def test_per_host_delay_conditional_requests_and_robots(site):
    for n in range(3):
        site.add(f"/news/{n}.html", PAGE)
    site.add("/private/memo.html", PAGE)
    with fetcher(per_host_delay=0.3) as f:
        pages = [f.get(site.base + f"/news/{n}.html") for n in range(3)]
        times = [r.at for r in site.requests() if r.path.startswith("/news/")]
        # 0.3 s apart at the client; the server's clock sees a little less when the first request lagged
        assert times[-1] - times[0] >= 0.5 and all(b - a >= 0.15 for a, b in zip(times, times[1:])), times
        again = f.get(site.base + "/news/0.html", pages[0].etag, pages[0].last_modified)
        assert again.not_modified and again.content == b""
        assert site.requests("/news/0.html")[-1].headers["if-none-match"] == pages[0].etag
        with pytest.raises(FetchError, match="robots.txt"):
            f.get(site.base + "/private/memo.html")
        with pytest.raises(FetchError, match="only http and https"):
            f.get("file:///etc/passwd")
    assert site.requests("/private/memo.html") == [] and len(site.requests("/robots.txt")) == 1


def test_failing_robots_txt_means_not_now(site):
    site.route("/robots.txt", lambda req: (500, {}, b"oops"))
    site.add("/news/a.html", PAGE)
    with fetcher() as f, pytest.raises(FetchError, match="robots.txt"):
        f.get(site.base + "/news/a.html")
    assert site.requests("/news/a.html") == []


def test_sources_from_toml_and_env(tmp_path, monkeypatch):
    cfg = tmp_path / "a.toml"
    cfg.write_text('[[sources]]\nurl = "https://calder-gazette.example/rss.xml"\nkind = "feed"\ninterval = 60\n\n'
                   '[[sources]]\nurl = " https://vell-courier.example/sitemap.xml "\n\n[watch]\ninterval = 120\n')
    s = load_settings(cfg, data_dir=str(tmp_path / "d"))
    assert [(x.url, x.kind, x.interval) for x in SourceBook(s).sources()] == [
        ("https://calder-gazette.example/rss.xml", "feed", 60.0), ("https://vell-courier.example/sitemap.xml",
                                                                   "auto", 120.0)]
    monkeypatch.setenv("ASSISTANT_SOURCES", json.dumps([{"url": "https://osk-post.example/atom.xml"}]))
    assert [x.url for x in load_settings(data_dir=str(tmp_path / "d")).sources] == ["https://osk-post.example/atom.xml"]
    monkeypatch.delenv("ASSISTANT_SOURCES")
    for bad in ('url = "ftp://files.example/feed.xml"', 'url = "https://x.example/"\nkind = "podcast"'):
        cfg.write_text(f"[[sources]]\n{bad}\n")
        with pytest.raises(ConfigError, match="sources"):
            load_settings(cfg)


def test_size_cap_without_content_length_and_timeout(site):
    big = b"<html>" + b"x" * 200_000 + b"</html>"
    site.add("/news/big.html", big)
    site.route("/news/unsized.html", lambda req: (200, {"Content-Type": "text/html", "X-Unsized": "1"}, big))
    with fetcher(max_mb=0.1) as f:
        with pytest.raises(FetchError, match="response is 200,013 bytes, over the limit"):
            f.get(site.base + "/news/big.html")  # refused from its Content-Length
        with pytest.raises(FetchError, match="response is over the limit of 104,857 bytes"):
            f.get(site.base + "/news/unsized.html")  # counted while reading
    t0 = time.monotonic()
    site.route("/news/never.html", lambda req: (site.release.wait(3), (200, {}, b""))[1])
    with fetcher(timeout=0.3) as f, pytest.raises(FetchError, match="timed out after 0.3 s"):
        f.get(site.base + "/news/never.html")
    assert time.monotonic() - t0 < 2


def test_listed_links_to_internal_addresses_and_foreign_canonicals_are_refused():
    public_feed = "https://calder-gazette.example/rss.xml"
    for internal in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/admin", "http://127.0.0.1:8000/",
                     "http://[::1]/", "http://localhost:7860/api/articles"):
        assert not listed_link_allowed(internal, public_feed), internal
    assert listed_link_allowed("http://127.0.0.1:8000/news/a.html", "http://127.0.0.1:9000/rss.xml")  # a local source
    assert listed_link_allowed("http://8.8.8.8/news/a.html", public_feed)  # a public address is fine
    # a page may name its canonical URL on its own host only; elsewhere it could overwrite another site's article
    fetched = "https://calder-gazette.example/news/2025/ferry?utm=x"
    assert canonical_url("https://calder-gazette.example/news/ferry", fetched) == "https://calder-gazette.example/news/ferry"
    assert canonical_url("https://vell-courier.example/news/ferry", fetched) == fetched
    assert canonical_url("javascript:alert(1)", fetched) == fetched
    assert canonical_url(None, fetched) == fetched


def test_link_local_and_metadata_addresses_are_never_fetched_for_any_source(tmp_path):
    """Issue 23, part 5: 169.254.0.0/16 and fe80::/10 (where clouds serve instance credentials) and
    fd00:ec2::254 are refused for every source, an admin's included, before anything is asked of them."""
    import httpx

    from assistant.live.sources import validate_source

    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, text="User-agent: *\nAllow: /\n", headers={"content-type": "text/plain"})

    f = Fetcher(FetchSettings(per_host_delay=0.0, backoff=0.01, timeout=2.0), transport=httpx.MockTransport(answer))
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[fd00:ec2::254]/",
                "http://[::ffff:169.254.169.254]/latest/"):
        with pytest.raises(FetchError, match="link-local and cloud metadata addresses are never fetched"):
            f.get(url)
        with pytest.raises(ConfigError, match="link-local or cloud metadata address"):
            validate_source(url)
    assert asked == []  # not even robots.txt
    assert f.get("http://10.0.0.7/news/a.html").status == 200  # other private addresses stay an admin's choice
    assert validate_source("http://10.0.0.7/rss.xml") == "http://10.0.0.7/rss.xml"


def test_gzipped_sitemaps_are_read_and_a_gzip_bomb_is_refused(site):
    """Issue 23, part 5: news sitemaps are often sitemap.xml.gz; the size cap applies to what is unpacked."""
    import gzip

    from assistant.live.feeds import parse_listing

    sitemap = ("<?xml version='1.0' encoding='UTF-8'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
               "<url><loc>{base}/news/a.html</loc><lastmod>2025-06-02</lastmod></url>"
               "<url><loc>{base}/news/b.html</loc></url></urlset>").replace("{base}", site.base)
    site.add("/sitemap.xml.gz", gzip.compress(sitemap.encode()), "application/gzip")
    site.add("/sitemap-octet.xml.gz", gzip.compress(sitemap.encode()) + gzip.compress(b""), "application/x-gzip")
    site.add("/bomb.xml.gz", gzip.compress(b"<urlset>" + b" " * 5_000_000), "application/gzip")
    site.add("/cut.xml.gz", gzip.compress(sitemap.encode())[:40], "application/gzip")
    with fetcher(max_mb=0.5) as f:
        for path in ("/sitemap.xml.gz", "/sitemap-octet.xml.gz"):
            page = f.get(site.base + path)
            assert page.content == sitemap.encode()
            listing = parse_listing(page.content, page.final_url, page.content_type)
            assert [e.url for e in listing.entries] == [site.base + "/news/a.html", site.base + "/news/b.html"]
        assert len(gzip.compress(b"<urlset>" + b" " * 5_000_000)) < 0.5 * 1024 * 1024  # small on the wire
        with pytest.raises(FetchError, match="unpacked, the gzip file is over the limit of 524,288 bytes"):
            f.get(site.base + "/bomb.xml.gz")
        with pytest.raises(FetchError, match="cut short"):
            f.get(site.base + "/cut.xml.gz")
