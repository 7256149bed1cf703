"""What watching feeds costs, against a loopback news site served from another process.

    python -m bench feeds [--pages 60] [--feeds 100] [--rounds 1000] [--rss-feeds 10]

1. throughput: one round over a feed of --pages new articles (about 250 words each): pages per second
   fetched, extracted and ingested, and the share of the round spent in the embedder.
2. idle round: --feeds feeds of 2 articles each, already ingested; one more round where nothing changed:
   the watcher's CPU seconds (the site runs in its own process, so its CPU is not counted), wall time,
   requests, and page downloads counted by the site itself (goal: under 1 s CPU, no downloads).
3. memory: --rounds idle rounds over --rss-feeds feeds; the watcher's RSS (VmRSS) every tenth of the way.

Prints one JSON object; the figures and the command go into bench/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path

from .common import ROOT

WORDS = ("osk calder vell marrow ferry harbour council meadow granary lantern quarry orchard mill barley tannery "
         "ropewalk beacon saltmarsh causeway ferrymen weir sluice lighthouse pier tide gull heron willow alder "
         "thatch forge smithy wagon cart drover shepherd fleece loom spindle bakery brewery chapel bell tower "
         "market square fountain almshouse toll bridge ford mayor budget school clinic road bus tram depot "
         "dockyard welder timber salt herring oyster storm flood dam reservoir tunnel railway station").split()


def body(seed: int, words: int) -> list[str]:
    """Invented prose (fictional place words), different for every seed so no two pages are near-duplicates."""
    rng = random.Random(seed)
    out, left = [], words
    while left > 0:
        n = min(left, rng.randint(12, 24))
        out.append(" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + ".")
        left -= n
    return [" ".join(out[i:i + 4]) for i in range(0, len(out), 4)]


def serve(conn, pages: int, feeds: int) -> None:
    """The site process: /big.xml (pages articles), /feed/{i}.xml (2 articles each); /__stats counts downloads."""
    sys.path.insert(0, str(ROOT))  # the tests' loopback news site (tests/support/feeds_site.py)
    from tests.support.feeds_site import Site, article_page, rss

    site = Site().start()
    site.add("/robots.txt", "User-agent: *\nAllow: /\n", "text/plain")
    for n in range(pages):
        site.add(f"/big/{n}.html", article_page(f"Osk harbour bulletin {n}", body(n, 250)))
    site.add("/big.xml", rss("Osk Bulletins", [f"{{base}}/big/{n}.html" for n in range(pages)]), "application/rss+xml")
    for i in range(feeds):
        links = []
        for j in range(2):
            site.add(f"/feed/{i}/{j}.html", article_page(f"Calder ward {i} notice {j}", body(10_000 + i * 2 + j, 60)))
            links.append(f"{{base}}/feed/{i}/{j}.html")
        site.add(f"/feed/{i}.xml", rss(f"Calder Ward {i}", links), "application/rss+xml")

    def stats(req):
        page_downloads = sum(1 for r in site.downloads() if r.path.endswith(".html"))
        data = {"requests": len(site.requests()) , "downloads": len(site.downloads()), "page_downloads": page_downloads}
        return 200, {"Content-Type": "application/json"}, json.dumps(data).encode()

    site.route("/__stats", stats)
    conn.send(site.base)
    conn.recv()  # until the parent is done
    site.stop()


def site_stats(base: str) -> dict:
    import httpx

    return httpx.get(base + "/__stats").json()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--pages", type=int, default=60, help="new articles in the throughput feed")
    ap.add_argument("--feeds", type=int, default=100, help="feeds in the idle round")
    ap.add_argument("--rounds", type=int, default=1000, help="idle rounds of the memory part")
    ap.add_argument("--rss-feeds", type=int, default=10, help="feeds in the memory part")


def run(args: argparse.Namespace) -> None:

    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("fork").Process(target=serve, args=(child, args.pages, args.feeds), daemon=True)
    proc.start()  # forked before any model is loaded here
    base = parent.recv()

    from assistant.config import load_settings
    from assistant.ingest.ingestor import Ingestor
    from assistant.live.watch import Watcher

    from .speed import time_embedding

    out: dict = {}
    common = {"fetch.per_host_delay": 0.0, "watch.items_per_round": max(args.pages, 50)}
    with tempfile.TemporaryDirectory(prefix="assistant-feeds-") as d:
        # 1. throughput
        settings = load_settings(data_dir=f"{d}/big", **common, sources=[{"url": base + "/big.xml"}])
        ingestor = Ingestor(settings)
        ingestor.store.embedder.embed(["warm up"])  # model load is not ingest
        ingestor.chunker  # noqa: B018 - tokenizer load too
        spent = time_embedding(ingestor.store.embedder)
        with Watcher(settings, ingestor=ingestor) as w:
            t0, c0 = time.perf_counter(), time.process_time()
            r = w.round()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert r.ingest.added == args.pages and not r.ingest.failed, r.to_json()
        out["throughput"] = {"pages": args.pages, "chunks": r.ingest.chunks, "seconds": round(wall, 2),
                             "pages_per_second": round(args.pages / wall, 1), "cpu_seconds": round(cpu, 2),
                             "embedder_seconds": round(spent[0], 2), "embedder_share": round(spent[0] / wall, 3)}

        # 2. an idle round over many feeds
        feeds = [{"url": f"{base}/feed/{i}.xml"} for i in range(args.feeds)]
        settings = load_settings(data_dir=f"{d}/idle", **common, sources=feeds)
        with Watcher(settings) as w:
            first = w.round()
            assert first.ingest.added == 2 * args.feeds, first.ingest.to_json()
            before = site_stats(base)
            t0, c0 = time.perf_counter(), time.process_time()
            idle = w.round()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            after = site_stats(base)
        out["idle_round"] = {"feeds": args.feeds, "cpu_seconds": round(cpu, 3), "seconds": round(wall, 3),
                             "requests": after["requests"] - before["requests"] - 1,  # minus the /__stats call
                             "page_downloads": after["page_downloads"] - before["page_downloads"],
                             "added": idle.ingest.added}

        # 3. memory over many idle rounds
        settings = load_settings(data_dir=f"{d}/idle", **common, sources=feeds[:args.rss_feeds])
        with Watcher(settings) as w:
            w.round()
            samples = [(0, round(rss_mb(), 1))]
            t0, c0 = time.perf_counter(), time.process_time()
            for n in range(1, args.rounds + 1):
                w.round()
                if n % max(1, args.rounds // 10) == 0:
                    samples.append((n, round(rss_mb(), 1)))
            out["memory"] = {"feeds": args.rss_feeds, "rounds": args.rounds, "rss_mb": samples,
                             "cpu_ms_per_round": round(1000 * (time.process_time() - c0) / args.rounds, 2),
                             "ms_per_round": round(1000 * (time.perf_counter() - t0) / args.rounds, 2)}
    parent.send("done")
    proc.join(10)
    print(json.dumps(out))

