"""One-article ingests into a copy of an archive, in process with the embedder warm (issue 15).

    python -m bench ingest-one --data-dir DATA_DIR [--n 5]

DATA_DIR is a data dir holding a store (e.g. a copy of the dev-set eval store, 21,388 chunks): it is
written to, so never point it at a cache you keep. Prints each ingest's seconds and the median. Run it on the
code before issue 15 with PYTHONPATH set to that checkout to compare (the keyword index was rebuilt whole):
`cd /tmp && PYTHONPATH=<that checkout>:<this one> python -m bench ingest-one ...` imports that checkout's
`assistant` (run from the repo root, `-m` puts this checkout first).
"""

from __future__ import annotations

import argparse
import statistics
import time

from .common import add_data_dir

TOWNS = ["Quellan", "Marrowick", "Ostenby", "Pellham", "Varnook", "Tressel", "Hobbard", "Lunmere"]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_data_dir(ap, required=True, help="a data dir holding a store, WRITTEN TO: a copy, never a cache you keep")
    ap.add_argument("--n", type=int, default=5, help="ingests timed")


def run(args: argparse.Namespace) -> None:
    from assistant.config import load_settings
    from assistant.ingest.ingestor import Ingestor
    from assistant.ingest.loaders import articles_from_records

    ing = Ingestor(load_settings(data_dir=args.data_dir))
    ing.store.embedder.embed(["warm"])
    out = []
    for i in range(args.n):
        town = TOWNS[i % len(TOWNS)]
        rec = {"title": f"Ferry timetable changes in {town} number {i}", "source": "Tidewater Note",
               "published_at": f"2025-07-{1 + i % 28:02d}", "url": f"https://tidewater-note.example/{time.time_ns()}",
               "body": f"{town} ferry operator Wenna Dolsk{i} said the winter timetable starts on Monday. " * 2
               + f"Commuters in {town} asked for a later last boat; the council of {town} will vote."}
        articles, _ = articles_from_records([rec], "bench")
        t = time.perf_counter()
        report = ing.ingest_articles(articles)
        out.append(time.perf_counter() - t)
        assert report.added == 1, report
    print("one-article ingest s:", [round(x, 3) for x in out], "median", round(statistics.median(out), 3))
