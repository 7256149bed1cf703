"""What the dev-set answer benchmarks share: their command line, the dataset's store, one retrieval per question.

    from devset import parser, retrieve_all   # in a script under bench/, run as `python bench/NAME.py`
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parser(doc: str) -> argparse.ArgumentParser:
    """--dataset DIR, --data-dir DIR (env ASSISTANT_DATA_DIR), --sample N; the description is doc's first line."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-dir", default=os.environ.get("ASSISTANT_DATA_DIR"))
    ap.add_argument("--sample", type=int)
    return ap


def retrieve_all(args: argparse.Namespace, min_confidence: float | None = None, k: int | None = None):
    """(settings, assistant, [(query, retrieval)] for every question), the dataset's store built if missing.

    `min_confidence` replaces the configured refusal threshold (0: the chain never refuses on retrieval);
    `k` the number of passages retrieved for the answer engine.
    """
    from assistant.answering.chain import Assistant
    from assistant.answering.retrieval import Filters
    from assistant.config import load_settings
    from assistant.eval.run import ensure_store, load_dataset

    dataset = load_dataset(args.dataset, args.sample)
    overrides = {"retrieval.k": k} if k else {}
    settings = ensure_store(load_settings(data_dir=args.data_dir, **overrides), dataset)
    if min_confidence is not None:
        answer = settings.answer.model_copy(update={"min_confidence": min_confidence})
        settings = settings.model_copy(update={"answer": answer})
    assistant = Assistant(settings)
    retrieved = [(q, assistant.retriever.retrieve(q.query, Filters(today=q.question_date))) for q in dataset.queries]
    return settings, assistant, retrieved
