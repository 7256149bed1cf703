"""Ablation of the retrieval stages on an eval dataset: each row adds one stage to the one above.

    python -m bench ablation [--dataset DIR] [--sample N] [--limit N] [--data-dir DIR] [--build-unclean]

Rows: dense only, +BM25 fusion, +cleaning, +time awareness, +diversity (dedupe + per-article cap),
+rerank (= the full pipeline). Rows before "+cleaning" need a store ingested without cleaning; it is
built (and cached beside the clean one) only with --build-unclean, else those rows run on the clean store
and say so. Retrieval only (no answers): hits@k, MRR@10, article_hit@10, retrieval p95.
"""

from __future__ import annotations

import argparse
import sys
import time

from .common import add_devset

OFF = {"hybrid": False, "time_aware": False, "dedupe": False, "diversify": False, "rerank": False}
ROWS = [
    ("dense only", {}, False),
    ("+ BM25 fusion", {"hybrid": True}, False),
    ("+ cleaning", {}, True),
    ("+ time awareness", {"time_aware": True}, True),
    ("+ diversity (dedupe, per-article cap)", {"dedupe": True, "diversify": True}, True),
    ("+ rerank (full pipeline)", {"rerank": True}, True),
]
METRICS = ("hits@1", "hits@4", "hits@10", "mrr@10", "article_hit@10")


def with_retrieval(settings, **changes):
    return settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update=changes)})


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_devset(ap)
    ap.add_argument("--build-unclean", action="store_true", help="ingest the no-cleaning store if not cached")


def run(args: argparse.Namespace) -> None:
    from assistant.config import load_settings
    from assistant.eval.dataset import ensure_store, eval_settings, load_dataset
    from assistant.eval.run import run_ours

    base = load_settings(data_dir=args.data_dir)
    dataset = load_dataset(args.dataset, args.sample)
    clean = ensure_store(base, dataset)
    raw_base = base.model_copy(update={"ingest": base.ingest.model_copy(update={"clean": False})})
    raw = eval_settings(raw_base, dataset.corpus_file, dataset.sample)
    if args.build_unclean:
        raw = ensure_store(raw_base, dataset)
    have_raw = (raw.data_dir / "eval-complete.json").exists()

    cmd = "python -m bench " + " ".join(sys.argv[1:])
    print(f"Command: `{cmd}`\n")
    print("| stages | " + " | ".join(METRICS) + " | p95 ms |")
    print("|---" * (len(METRICS) + 2) + "|")
    flags = dict(OFF)
    t0 = time.perf_counter()
    for label, change, cleaned in ROWS:
        flags.update(change)
        store = clean if (cleaned or not have_raw) else raw
        settings = with_retrieval(store, **flags)
        done = run_ours(settings, dataset, args.limit, answer=False, name=label)
        note = "" if (cleaned or have_raw) else " (clean store: no unclean one built)"
        cells = " | ".join(f"{done.summary[m]:.3f}" for m in METRICS)
        print(f"| {label}{note} | {cells} | {done.latency_p95_ms} |", flush=True)
    print(f"\n{len(dataset.queries[:args.limit] if args.limit else dataset.queries)} questions, "
          f"{len(dataset.articles)} articles; {time.perf_counter() - t0:.0f}s")

