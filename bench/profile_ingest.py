"""Where our ingest spends its time beyond the embedder: pyinstrument over one ingest of the first N articles.

    python -m bench profile-ingest [--dataset DIR] [--articles 40] [--backend onnx] [--html profile.html]

Prints the share of wall time inside Embedder.embed, then pyinstrument's call tree (model load excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from .common import add_dataset


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_dataset(ap)
    ap.add_argument("--articles", type=int, default=40, help="the first N articles of the corpus")
    ap.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None)
    ap.add_argument("--html", help="also write pyinstrument's HTML report here")


def run(args: argparse.Namespace) -> None:
    if args.backend:
        os.environ["ASSISTANT_EMBEDDING__BACKEND"] = args.backend
    from pyinstrument import Profiler

    from assistant.config import load_settings
    from assistant.ingest.ingestor import Ingestor

    from .speed import load_articles, time_embedding

    articles = load_articles(args.articles, args.dataset)
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

