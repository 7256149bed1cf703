"""Where the CPU of an answer goes: cProfile over `Assistant.ask` on the dev set's questions.

    python -m bench profile-answer --data-dir STORE_DATA_DIR [--dataset DIR] [--limit 40] [--top 15]

STORE_DATA_DIR is an ingested data dir (e.g. an eval store, `<data-dir>/eval/<key>`). Prints CPU seconds
per question and the functions with the most own time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from pathlib import Path

from .common import add_data_dir, add_dataset


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_data_dir(ap, required=True, help="an ingested data dir (e.g. an eval store, <data-dir>/eval/<key>)")
    add_dataset(ap)
    ap.add_argument("--limit", type=int, default=40, help="the first N questions (default: %(default)s)")
    ap.add_argument("--top", type=int, default=15, help="functions listed")


def run(args: argparse.Namespace) -> None:
    from assistant.answering.chain import Assistant
    from assistant.config import load_settings

    assistant = Assistant(load_settings(data_dir=args.data_dir))
    queries = json.loads((Path(args.dataset) / "queries.json").read_text(encoding="utf-8"))[: args.limit]
    assistant.ask("warm up the model and the indexes")
    profile = cProfile.Profile()
    t = time.process_time()
    profile.enable()
    for q in queries:
        assistant.ask(q["query"], filters={"today": q.get("question_date")})
    profile.disable()
    print(f"{len(queries)} questions, {(time.process_time() - t) / len(queries):.3f} CPU s per question")
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)

