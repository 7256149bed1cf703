"""What the benchmarks share: the default dataset path, their common options, the dev-set store and retrieval.

The environment is set here, once, before any model library is imported: offline Hugging Face hub (the
models are cached), no tokenizer thread pools forked into the stage subprocesses.
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
# The real eval dataset, beside the checkout (`../shared/datasets/realtimeqa-news` from the repo root).
# Its licence allows evaluation only: never the product, never the tests.
DATASET = ROOT.parent / "shared" / "datasets" / "realtimeqa-news"


def add_dataset(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--dataset", type=Path, default=DATASET,
                    help="eval dataset folder, corpus.json + queries.json (default: %(default)s)")


def add_data_dir(ap: argparse.ArgumentParser, required: bool = False, help: str | None = None) -> None:
    ap.add_argument("--data-dir", required=required, default=None if required else os.environ.get("ASSISTANT_DATA_DIR"),
                    help=help or "data dir whose eval/<key> holds the dataset's store, built there if missing "
                                 "(default: $ASSISTANT_DATA_DIR, else the configured one)")


def add_sample(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--sample", type=int, help="only the evidence articles plus N others (a smaller store)")


def add_limit(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--limit", type=int, help="only the first N questions")


def add_devset(ap: argparse.ArgumentParser) -> None:
    """--dataset, --data-dir, --sample, --limit: the dev-set benchmarks' command line."""
    add_dataset(ap)
    add_data_dir(ap)
    add_sample(ap)
    add_limit(ap)


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values, 0 for none."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def retrieve_all(args: argparse.Namespace, min_confidence: float | None = None, k: int | None = None):
    """(settings, assistant, [(query, retrieval)] for every question, or the first --limit), the dataset's
    store built if missing.

    `min_confidence` replaces the configured refusal threshold (0: the chain never refuses on retrieval);
    `k` the number of passages retrieved for the answer engine.
    """
    from assistant.answering.chain import Assistant
    from assistant.answering.retrieval import Filters
    from assistant.config import load_settings
    from assistant.eval.dataset import ensure_store, load_dataset

    dataset = load_dataset(args.dataset, args.sample)
    overrides = {"retrieval.k": k} if k else {}
    settings = ensure_store(load_settings(data_dir=args.data_dir, **overrides), dataset)
    if min_confidence is not None:
        answer = settings.answer.model_copy(update={"min_confidence": min_confidence})
        settings = settings.model_copy(update={"answer": answer})
    assistant = Assistant(settings)
    queries = dataset.queries[: args.limit] if getattr(args, "limit", None) else dataset.queries
    retrieved = [(q, assistant.retriever.retrieve(q.query, Filters(today=q.question_date))) for q in queries]
    return settings, assistant, retrieved
