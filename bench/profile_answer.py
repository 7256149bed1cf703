"""Where the CPU of an answer goes: cProfile over `Assistant.ask` on the dev set's questions.

    python bench/profile_answer.py --data-dir STORE_DATA_DIR [--questions 40] [--top 15]

STORE_DATA_DIR is an ingested data dir (e.g. an eval store, `<data-dir>/eval/<key>`). Prints CPU seconds
per question and the functions with the most own time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "realtimeqa-news"))
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()

    from assistant.answering.chain import Assistant
    from assistant.config import load_settings

    assistant = Assistant(load_settings(data_dir=args.data_dir))
    queries = json.loads((Path(args.dataset) / "queries.json").read_text(encoding="utf-8"))[: args.questions]
    assistant.ask("warm up the model and the indexes")
    profile = cProfile.Profile()
    t = time.process_time()
    profile.enable()
    for q in queries:
        assistant.ask(q["query"], filters={"today": q.get("question_date")})
    profile.disable()
    print(f"{len(queries)} questions, {(time.process_time() - t) / len(queries):.3f} CPU s per question")
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
