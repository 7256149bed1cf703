"""Feeds, sitemaps and article URLs over real HTTP on loopback: what is fetched, what is stored, what is reported.

The site (tests/support/feeds_site.py) logs every request it answers; the assertions about downloads, conditional
requests and robots.txt come from that log, not from the client's own counters.
"""

from __future__ import annotations

import random
import time

import pytest

from assistant.answering.chain import Assistant
from assistant.live.watch import Watcher
from tests.support.feeds_site import ARTICLES, Site, article_page, rss, serve_newsroom


@pytest.fixture
def site():
    with Site() as s:
        serve_newsroom(s)
        yield s


@pytest.fixture
def watch_settings(make_settings, site):
    def make(paths, **overrides):
        values = {"fetch.per_host_delay": 0.0, "fetch.backoff": 0.05, "fetch.timeout": 2.0,
                  "sources": [{"url": site.base + p} for p in paths], **overrides}
        return make_settings(**values)
    return make


def stored(watcher: Watcher) -> dict[str, dict]:
    """The store's articles by URL."""
    return {m["url"]: m for m in watcher.ingestor.store.manifest().values()}


def body_of(watcher: Watcher, article_id: str) -> str:
    return " ".join(text for cid, text, meta in watcher.ingestor.store.iter_chunks() if meta["article_id"] == article_id)


def test_feeds_and_sitemaps_ingested_then_nothing_unchanged_is_downloaded(site, watch_settings):
    settings = watch_settings(["/rss.xml", "/atom.xml", "/sitemap-index.xml"])
    with Watcher(settings) as w:
        r1 = w.round()
        urls = {site.base + f"/news/{n}.html" for n in ARTICLES}
        arts = stored(w)
        assert set(arts) == urls and r1.ingest.added == 4
        assert arts[site.base + "/news/ferry-fares.html"]["source"] == "Calder Gazette"
        assert arts[site.base + "/news/dam-inspection.html"]["published_at"] == "2025-03-30"
        failed = {(f.path, f.reason) for f in r1.ingest.failed}
        assert (site.base + "/rss.xml", "item 4 ('An item whose link went missing') has no http(s) link") in failed
        assert (site.base + "/private/leak.html", "disallowed by the site's robots.txt") in failed
        # robots.txt asked once; the disallowed page never; every request names the assistant
        assert len(site.requests("/robots.txt")) == 1
        assert site.requests("/private/leak.html") == []
        assert all(q.headers["user-agent"].startswith("newsroom-assistant/") for q in site.requests())

        site.clear_log()
        r2 = w.round()
        assert site.downloads() == [], [q.path for q in site.downloads()]
        assert {q.path for q in site.requests()} == {"/rss.xml", "/atom.xml", "/sitemap-index.xml"}
        assert all(q.status == 304 and "if-none-match" in q.headers for q in site.requests())
        assert (r2.ingest.added, r2.ingest.updated, r2.downloads) == (0, 0, 0)

        # The Atom feed says the dam story was updated, and the page has changed: only those two are downloaded.
        site.change("/news/dam-inspection.html", "found three cracks", "found five cracks")
        site.change("/atom.xml", "<updated>2025-03-30T08:00:00Z</updated>\n    <published>",
                    "<updated>2025-03-31T12:00:00Z</updated>\n    <published>")
        site.clear_log()
        r3 = w.round()
        assert sorted(q.path for q in site.downloads()) == ["/atom.xml", "/news/dam-inspection.html"]
        page_request = site.requests("/news/dam-inspection.html")[0]
        assert "if-none-match" in page_request.headers  # re-checked with its own validators
        assert (r3.ingest.added, r3.ingest.updated) == (0, 1)
        arts = stored(w)
        assert len(arts) == 4
        dam = arts[site.base + "/news/dam-inspection.html"]["article_id"]
        assert "five cracks" in body_of(w, dam) and "three cracks" not in body_of(w, dam)

        answer = Assistant(settings, archive=w.ingestor.archive).ask("How much will the Calder ferry fares rise?")
        assert not answer.refused
        assert answer.citations[0].url == site.base + "/news/ferry-fares.html"
        assert "eight percent" in answer.answer


def test_bad_inputs_are_reported_per_url_and_the_round_goes_on(site, watch_settings):
    paragraphs = ["The harbour council of Calder met on Thursday to discuss the winter timetable for the ferry "
                  "to Osk, which loses money every January.",
                  "Councillor Brit Aldane proposed two sailings a day instead of four, and the vote was put off "
                  "until the island's residents could be heard at a public meeting."]
    calls = {"flaky": 0}

    def flaky(req):
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            return 500, {"Content-Type": "text/html"}, b"<html><body>try later</body></html>"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, article_page(
            "Osk ferry timetable cut in winter", paragraphs).encode()

    def slow(req):
        site.release.wait(5)  # far past fetch.timeout; released at teardown at the latest
        return 200, {"Content-Type": "text/html"}, b"<html><body>too late</body></html>"

    def redirect(to):
        return lambda req: (302, {"Location": to}, b"")

    site.route("/news/flaky.html", flaky)
    site.route("/news/slow.html", slow)
    site.route("/news/moved", redirect("/news/moved-here.html"))
    site.add("/news/moved-here.html", article_page("Calder dockyard finds a buyer", [
        "The shuttered dockyard of Calder has been bought by a boatbuilder from Southmere, the town said, and "
        "forty welders will be hired by the summer.", "The buyer plans to build small electric ferries for the "
        "island routes, starting with two boats for the crossing to Osk."]))
    port = site.base.rsplit(":", 1)[1]
    site.route("/news/away", redirect(f"http://localhost:{port}/news/ferry-fares.html"))
    site.route("/news/loop-a", redirect("/news/loop-b"))
    site.route("/news/loop-b", redirect("/news/loop-a"))
    site.route("/news/gone.html", lambda req: (410, {"Content-Type": "text/html"}, b"gone"))
    site.add("/news/photo.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40, "image/jpeg")
    site.add("/news/huge.html", article_page("Huge", ["Calder " * 12000]))
    site.add("/news/nul.html", b"<html>" + b"\x00\x01\x02\x03" * 500 + b"</html>", "text/html")
    # wrong charset: the header says UTF-8, the bytes are cp1252; missing charset: no header, no <meta>
    site.add("/news/cp1252.html", article_page("Café owners of Ærøby protest the new parking fees", [
        "The café owners of Ærøby say the fees drive away visitors from the old harbour, where parking was free "
        "for sixty years.", "The council will review the fees in the autumn, the mayor's office said, after "
        "a petition with nine hundred names."],
        charset=None).encode("cp1252"), "text/html; charset=utf-8")
    site.add("/news/nocharset.html", article_page("Malmvik choir wins the regional contest", [
        "The Malmvik choir won the regional contest in Southmere on Saturday with a programme of songs by the "
        "valley's own composers, the jury said.", "The choir will sing in Calder cathedral at midsummer and "
        "tour the island villages in August."],
        charset=None).encode("utf-8"), "text/html")
    names = ["missing.html", "gone.html", "flaky.html", "slow.html", "moved", "away", "loop-a", "index.html",
             "photo.jpg", "huge.html", "nul.html", "cp1252.html", "nocharset.html"]
    site.add("/trouble.xml", rss("Trouble Times", [f"{{base}}/news/{n}" for n in names]), "application/rss+xml")
    site.add_file("/malformed.xml", "malformed.xml", "application/rss+xml")
    settings = watch_settings(["/malformed.xml", "/trouble.xml", "/atom.xml"],
                              **{"fetch.timeout": 0.5, "fetch.max_mb": 0.05})
    t0 = time.monotonic()
    with Watcher(settings) as w:
        r = w.round()
        elapsed = time.monotonic() - t0
        reasons = {f.path.removeprefix(site.base): f.reason for f in r.ingest.failed}
        assert reasons["/malformed.xml"].startswith("malformed feed XML")
        assert reasons["/news/missing.html"] == "HTTP 404"
        assert reasons["/news/gone.html"] == "HTTP 410"
        assert reasons["/news/slow.html"] == "timed out after 0.5 s"
        assert reasons["/news/away"] == "redirect to another host (localhost) refused"
        assert reasons["/news/loop-a"] == "redirect loop"
        assert reasons["/news/index.html"].startswith("not an article")
        assert reasons["/news/photo.jpg"] == "not a web page or feed (content type image/jpeg)"
        assert "over the limit" in reasons["/news/huge.html"] and "fetch.max_mb" in reasons["/news/huge.html"]
        assert reasons["/news/nul.html"].startswith("binary")
        assert len(site.requests("/news/flaky.html")) == 2 and "/news/flaky.html" not in reasons  # 500, then 200
        assert len(site.requests("/news/loop-a")) == 1 and len(site.requests("/news/loop-b")) == 1
        assert not any("localhost" in q.headers.get("host", "") for q in site.requests())  # never followed
        arts = stored(w)
        titles = {m["title"] for m in arts.values()}
        assert {"Osk ferry timetable cut in winter", "Calder dockyard finds a buyer",
                "Café owners of Ærøby protest the new parking fees", "Malmvik choir wins the regional contest",
                "Inspectors find cracks in the Vell river dam"} == titles  # the round went on past every failure
        # a redirect is followed and recorded: the article's identity is where it ended up
        assert site.base + "/news/moved-here.html" in arts
        state = w.book.state(site.base + "/trouble.xml").items[site.base + "/news/moved"]
        assert state.redirects == [site.base + "/news/moved-here.html"]
        cafe = next(m for m in arts.values() if m["title"].startswith("Café"))
        assert "Ærøby say the fees" in body_of(w, cafe["article_id"])
        assert elapsed < 20  # the slow page cost one timeout, not the round


def test_a_long_feed_is_capped_per_round_and_worked_through(site, watch_settings):
    words = ("osk calder vell marrow ferry harbour council meadow granary lantern quarry orchard mill barley "
             "tannery ropewalk beacon saltmarsh causeway ferrymen weir sluice lighthouse pier tide gull heron "
             "willow alder thatch forge smithy wagon cart drover shepherd fleece loom spindle bakery brewery "
             "chapel bell tower market square fountain almshouse toll bridge ford").split()

    def bulk(req):
        n = int(req.path.rsplit("/", 1)[1].split(".")[0])
        rng = random.Random(n)
        text = [" ".join(rng.choice(words) for _ in range(45)).capitalize() + "." for _ in range(2)]
        return 200, {"Content-Type": "text/html; charset=utf-8"}, article_page(f"Bulletin {n} from Osk", text).encode()

    site.route("/bulk/", bulk)
    site.routes.update({f"/bulk/{n}.html": bulk for n in range(10)})
    site.add("/bulk.xml", rss("Osk Bulletins", [f"{{base}}/bulk/{n}.html" for n in range(10_000)]),
             "application/rss+xml")
    settings = watch_settings(["/bulk.xml"], **{"watch.items_per_round": 3})
    with Watcher(settings) as w:
        r1 = w.round()
        assert sorted(q.path for q in site.downloads() if q.path.startswith("/bulk/")) == \
            ["/bulk/0.html", "/bulk/1.html", "/bulk/2.html"]
        assert r1.ingest.added == 3 and r1.sources[0].pending == 9_997 and r1.sources[0].listed == 10_000
        site.clear_log()
        r2 = w.round()
        assert sorted(q.path for q in site.downloads() if q.path.startswith("/bulk/")) == \
            ["/bulk/3.html", "/bulk/4.html", "/bulk/5.html"]
        assert r2.ingest.added == 3 and r2.sources[0].pending == 9_994
        assert len(stored(w)) == 6


def test_feed_fills_what_the_page_lacks_wire_copies_skipped_and_a_page_as_source(site, watch_settings):
    wire = ["The regional rail company of Vell announced on Monday that the night train between Calder and "
            "Southmere will run again from June, after two years without it, with four sleeping cars and a "
            "dining car for the eleven-hour journey along the coast.",
            "The company said bookings would open in May and that fares would stay at the level of the last "
            "timetable, with a discount for the island residents of Osk who change at Calder."]
    site.add("/wire/night-train.html", article_page("Night train to return", wire, outlet=None))  # no date/author/outlet
    site.add("/copy/night-train.html", article_page("Vell night train back in June", wire, outlet="Southmere Post"))
    site.add("/wire.xml", rss("Vell Wire Service", ["{base}/wire/night-train.html"], author="Hedda Sorn"),
             "application/rss+xml")
    site.add("/copy.xml", rss("Southmere Post", ["{base}/copy/night-train.html"]), "application/rss+xml")
    settings = watch_settings(["/wire.xml", "/copy.xml", "/news/library.html"])
    with Watcher(settings) as w:
        r = w.round()
        arts = stored(w)
        got = arts[site.base + "/wire/night-train.html"]
        assert (got["source"], got["author"], got["published_at"]) == ("Vell Wire Service", "Hedda Sorn", "2025-04-01")
        # the syndicated copy is skipped as a near-duplicate, as for files
        assert site.base + "/copy/night-train.html" not in arts
        assert any(f.path == site.base + "/copy/night-train.html" and f.reason.startswith("near-duplicate")
                   for f in r.ingest.skipped)
        # an article page can itself be a source; polled again it costs a 304
        assert arts[site.base + "/news/library.html"]["title"] == "Southmere library reopens after flood repairs"
        assert [s.kind for s in r.sources] == ["feed", "feed", "page"]
        site.clear_log()
        again = w.round()
        assert site.downloads() == [] and again.ingest.added == 0
        assert [q.status for q in site.requests("/news/library.html")] == [304]


def test_the_watcher_waits_for_another_ingest(site, watch_settings, caplog):
    import logging
    import threading

    from assistant.ingest.ingestor import Ingestor

    settings = watch_settings(["/atom.xml"])
    other = Ingestor(settings)
    with Watcher(settings) as w:
        done = threading.Event()
        with other.lock(), caplog.at_level(logging.WARNING, logger="assistant.ingest.ingestor"):
            thread = threading.Thread(target=lambda: (w.round(), done.set()), daemon=True)
            thread.start()
            deadline = time.monotonic() + 30
            while not any("another ingest is running" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "the watcher never reached the ingest lock"
                time.sleep(0.02)
            assert site.downloads("/news/dam-inspection.html") and not done.is_set()
            assert other.store.count() == 0  # nothing written while the other ingest holds the lock
        thread.join(60)
        assert done.is_set() and set(stored(w)) == {site.base + "/news/dam-inspection.html"}


def test_undated_pages_are_rechecked_with_conditional_requests_when_due(site, watch_settings):
    site.add("/urls.txt", "{base}/news/ferry-fares.html\n{base}/news/orchard.html\n", "text/plain")  # plain sitemap
    settings = watch_settings(["/urls.txt"])
    with Watcher(settings) as w:
        assert w.round().ingest.added == 2
        site.clear_log()
        w.round()
        assert [q.path for q in site.requests()] == ["/urls.txt"]  # not due yet: the pages are not asked
        states = w.book.states()
        for item in states[site.base + "/urls.txt"].items.values():
            item.checked = time.time() - 25 * 3600  # older than watch.recheck_hours (24)
        w.book.save_states(states)
        site.change("/news/ferry-fares.html", "eight percent", "nine percent")
        site.clear_log()
        r = w.round()
        assert {q.path: q.status for q in site.requests()} == {
            "/urls.txt": 304, "/news/ferry-fares.html": 200, "/news/orchard.html": 304}
        assert all("if-none-match" in q.headers for q in site.requests())
        assert (r.ingest.added, r.ingest.updated) == (0, 1)


def test_page_state_reads_and_writes_the_sources_file_format():
    """sources.json keeps its short per-page keys ("m", "lm"): a data dir written before keeps its state."""
    from assistant.live.sources import SourceState

    page = {"m": "2025-06-02", "etag": '"v1"', "lm": "Mon, 02 Jun 2025 08:00:00 GMT", "checked": 1748851200.0,
            "id": "a1b2", "url": "https://osk-harbour.example/news/ferry", "fails": 0}
    failed = {"m": None, "checked": 1748851300.0, "fails": 2, "error": "HTTP 503"}
    st = SourceState.from_json({"etag": '"list"', "items": {"p1": page, "p2": failed, "bad": "not a dict"}})
    assert st.items["p1"].marker == "2025-06-02" and st.items["p1"].last_modified == page["lm"]
    assert st.items["p2"].fails == 2 and st.items["p2"].id is None
    out = st.to_json()["items"]
    assert out == {"p1": page, "p2": {k: v for k, v in failed.items() if v is not None}}
