"""`assistant ingest URL`, `assistant watch --once`, `stats`, and a watcher stopped (SIGTERM) or killed mid-round."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.config import load_settings
from assistant.index.store import Store
from tests.support.feeds_site import Site, article_page, rss, serve_newsroom
from tests.support.paths import ROOT

INGEST_KEYS = {"added", "updated", "unchanged", "deleted", "chunks", "failed", "skipped", "resumed", "seconds"}
NOTE = ROOT / "tests" / "data" / "answers" / "northvale-rates.md"


@pytest.fixture
def site():
    with Site() as s:
        serve_newsroom(s)
        yield s


def write_config(tmp_path: Path, site: Site, sources: list[str], **sections) -> Path:
    lines = [f'data_dir = "{tmp_path / "data"}"']
    sections = {**sections, "fetch": {"per_host_delay": 0, "backoff": 0.05, **sections.get("fetch", {})}}
    for section, values in sections.items():
        lines += ["", f"[{section}]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    for url in sources:
        lines += ["", "[[sources]]", f'url = "{site.base}{url}"']
    path = tmp_path / "assistant.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ingest_urls_beside_paths_same_summary_shape(tmp_path, site, monkeypatch):
    monkeypatch.setenv("ASSISTANT_FETCH__PER_HOST_DELAY", "0")  # one loopback host: no 1 s between requests
    data = tmp_path / "data"
    res = CliRunner().invoke(cli, ["--data-dir", str(data), "ingest", "--json", site.base + "/news/ferry-fares.html",
                                   str(NOTE), site.base + "/news/missing.html", site.base + "/rss.xml"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == INGEST_KEYS
    # the page, the file, and the feed's other page (its ferry item is the page already stored: unchanged)
    assert (out["added"], out["unchanged"]) == (3, 1)
    assert {"path": site.base + "/news/missing.html", "reason": "HTTP 404", "line": None} in out["failed"]
    assert {"path": site.base + "/private/leak.html", "reason": "disallowed by the site's robots.txt",
            "line": None} in out["failed"]
    manifest = Store(load_settings(data_dir=str(data))).manifest()
    assert {m.get("url") for m in manifest.values()} >= {site.base + "/news/ferry-fares.html",
                                                         site.base + "/news/library.html"}
    # a second run of the same URLs asks with the validators the first kept: nothing unchanged is downloaded
    site.clear_log()
    again = CliRunner().invoke(cli, ["--data-dir", str(data), "ingest", "--json", site.base + "/news/ferry-fares.html",
                                     site.base + "/rss.xml"])
    assert again.exit_code == 0, again.output
    assert (json.loads(again.stdout)["added"], json.loads(again.stdout)["updated"]) == (0, 0)
    asked = {(q.path, q.status) for q in site.requests()}
    assert asked and {status for _, status in asked} == {304}, asked  # conditional requests, all not modified
    # only http(s) is fetched, and a path that does not exist is still the caller's error
    for bad in (["ftp://files.example/feed.xml"], [str(tmp_path / "typo")]):
        res = CliRunner().invoke(cli, ["--data-dir", str(data), "ingest", *bad])
        assert res.exit_code == 2 and "nothing was ingested" in res.stderr


def test_watch_once_twice_is_idempotent_and_stats_show_sources(tmp_path, site):
    cfg = write_config(tmp_path, site, ["/rss.xml", "/atom.xml", "/sitemap-index.xml"])
    first = CliRunner().invoke(cli, ["--config", str(cfg), "watch", "--once", "--json"])
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    assert INGEST_KEYS <= set(out) and out["added"] == 4 and len(out["sources"]) == 3
    site.clear_log()
    second = CliRunner().invoke(cli, ["--config", str(cfg), "watch", "--once", "--json"])
    out2 = json.loads(second.stdout)
    assert (out2["added"], out2["updated"], out2["downloads"]) == (0, 0, 0)
    assert site.downloads() == [] and len(site.requests()) == 3  # three conditional requests, three 304s
    assert len(Store(load_settings(cfg)).manifest()) == 4

    human = CliRunner().invoke(cli, ["--config", str(cfg), "watch", "--once"])
    assert "0 added, 0 updated" in human.stdout and f"{site.base}/rss.xml:" in human.stdout
    stats = CliRunner().invoke(cli, ["--config", str(cfg), "stats"])
    assert f"{site.base}/rss.xml (feed, every 900 s, config): last poll 20" in stats.stdout
    assert "2 articles added, last error" not in stats.stdout and "2 articles added" in stats.stdout
    as_json = json.loads(CliRunner().invoke(cli, ["--config", str(cfg), "stats", "--json"]).stdout)
    assert set(as_json) == {"articles", "chunks", "embedding_model", "store"}


def slow_site(site: Site, n: int = 6) -> list[str]:
    """A feed of n articles whose pages each take 0.4 s to answer (so a signal lands mid-round)."""
    paths = [f"/slow/{i}.html" for i in range(n)]
    for i, path in enumerate(paths):
        page = article_page(f"Osk harbour log, day {i}", [
            f"On day {i} of the spring survey the harbour team of Osk counted {40 + i * 7} fishing boats and "
            f"{3 + i} ferries at the quay, and measured the channel at {5 + i} metres at low tide.",
            f"Survey leader Mette Varn{'e' * (i + 1)} said the figures for day {i} would go to the council of "
            f"Calder, which decides on dredging the channel before the summer timetable starts."]).encode()

        def answer(req, page=page):
            site.release.wait(0.4)
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page
        site.route(path, answer)
    site.add("/slow.xml", rss("Osk Harbour Log", [f"{{base}}{p}" for p in paths]), "application/rss+xml")
    return paths


def wait_until(condition, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"watcher exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def each_article_once(cfg: Path, urls: list[str]) -> None:
    store = Store(load_settings(cfg))
    manifest = store.manifest()
    assert sorted(m["url"] for m in manifest.values()) == sorted(urls)
    chunks = store.chunk_ids_by_article(list(manifest))
    for aid, ids in chunks.items():
        indexes = sorted(int(c.rsplit(":", 1)[1]) for c in ids)
        assert indexes == list(range(len(indexes))), (aid, ids)  # whole, no leftovers or doubles


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
@pytest.mark.subprocess
def test_watcher_stopped_mid_round_then_once_leaves_every_article_once(tmp_path, site, how):
    paths = slow_site(site)
    cfg = write_config(tmp_path, site, ["/slow.xml"], ingest={"batch_articles": 2}, fetch={"concurrency": 1})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "--config", str(cfg), "watch"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: sum(len(site.requests(p)) for p in paths) >= 3, 120, proc)
        proc.send_signal(how)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    urls = [site.base + p for p in paths]
    if how == signal.SIGTERM:
        assert rc == 0, proc.stderr.read().decode()[-2000:]
        fetched = [p for p in paths if site.requests(p)]
        assert 3 <= len(fetched) < len(paths)  # it stopped mid-round, after finishing the pages in hand
        assert len(Store(load_settings(cfg)).manifest()) == len(fetched)
    res = CliRunner().invoke(cli, ["--config", str(cfg), "watch", "--once", "--json"])
    assert res.exit_code == 0, res.output
    each_article_once(cfg, urls)
    if how == signal.SIGTERM:  # what the stopped watcher stored is not downloaded again
        assert all(len(site.downloads(p)) == 1 for p in paths), [len(site.downloads(p)) for p in paths]


@pytest.mark.subprocess
def test_watch_keeps_the_archive_current(tmp_path, site):
    """The long-running watcher polls again when the interval has passed and picks up a new story."""
    site.add("/live.xml", rss("Calder Gazette", ["{base}/news/ferry-fares.html"]), "application/rss+xml")
    cfg = write_config(tmp_path, site, [], watch={"interval": 1})
    cfg.write_text(cfg.read_text() + f'\n[[sources]]\nurl = "{site.base}/live.xml"\ninterval = 1\n')
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "--config", str(cfg), "watch"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: site.downloads("/news/ferry-fares.html"), 120, proc)
        wait_until(lambda: len(site.requests("/live.xml")) >= 2, 30, proc)  # polled again: a 304
        site.add("/live.xml", rss("Calder Gazette", ["{base}/news/library.html", "{base}/news/ferry-fares.html"]),
                 "application/rss+xml")
        wait_until(lambda: site.downloads("/news/library.html"), 30, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [q.status for q in site.requests("/live.xml")][:2] == [200, 304]
    assert len(site.downloads("/news/ferry-fares.html")) == 1  # not downloaded again when the feed changed
    each_article_once(cfg, [site.base + "/news/ferry-fares.html", site.base + "/news/library.html"])
    assert "round: 1 sources polled, 1 added" in proc.stderr.read().decode()
