"""Where our ingest spends its time beyond the embedder: pyinstrument over one ingest of the first N articles.

    python bench/profile_ingest.py --articles 40 [--backend onnx] [--html profile.html]

Prints the share of wall time inside Embedder.embed, then pyinstrument's call tree (model load excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=40)
    ap.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None)
    ap.add_argument("--html", help="also write pyinstrument's HTML report here")
    args = ap.parse_args()
    if args.backend:
        os.environ["ASSISTANT_EMBEDDING__BACKEND"] = args.backend
    from pyinstrument import Profiler
    from run import load_articles, time_embedding

    from assistant.config import load_settings
    from assistant.ingest.ingestor import Ingestor

    articles = load_articles(args.articles)
    with tempfile.TemporaryDirectory(prefix="assistant-profile-") as d:
        ingestor = Ingestor(load_settings(data_dir=d))
        ingestor.store.embedder.embed(["warm up"])  # model load (and ONNX export) is not ingest
        ingestor.chunker  # noqa: B018 - tokenizer load too
        spent = time_embedding(ingestor.store.embedder)
        profiler = Profiler(interval=0.005)
        t0 = time.perf_counter()
        profiler.start()
        report = ingestor.ingest_articles(articles)
        profiler.stop()
        total = time.perf_counter() - t0
    print(json.dumps({"articles": len(articles), "chunks": report.chunks, "seconds": round(total, 2),
                      "embed_seconds": round(spent[0], 2), "embedder_share": round(spent[0] / total, 3)}))
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    if args.html:
        Path(args.html).write_text(profiler.output_html())


if __name__ == "__main__":
    main()
