"""Refusal trade-off of the extractive engine: for each `answer.min_confidence`, the refusal rate on
unanswerable questions, the false-refusal rate and the answer accuracy on answerable ones.

    python bench/refusal.py --dataset ../shared/datasets/realtimeqa-news --data-dir DIR [--sample N]

Every question is retrieved and answered once with the threshold at 0 (the engine may still decline when no
sentence scores at all); a question is then counted as refused at threshold t when its retrieval
confidence is below t, which is exactly what the chain does. Also prints the separation (AUC) of the
confidence between answerable and null questions, and where answerable questions are lost: gold answer in
none of the passages the engine reads (retrieval) or in them but not in the reply (sentence selection).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from assistant.config import load_settings  # noqa: E402
from assistant.eval import contains_answer, ensure_store, load_dataset  # noqa: E402

THRESHOLDS = (0.35, 0.40, 0.42, 0.45, 0.48, 0.50, 0.52, 0.55, 0.60)


def auc(pos: list[float], neg: list[float]) -> float:
    """Probability that an answerable question scores above a null one (ties count half)."""
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-dir", default=os.environ.get("ASSISTANT_DATA_DIR"))
    ap.add_argument("--sample", type=int)
    args = ap.parse_args()

    from assistant.chain import Assistant
    from assistant.retrieval import Filters

    base = load_settings(data_dir=args.data_dir)
    dataset = load_dataset(args.dataset, args.sample)
    settings = ensure_store(base, dataset)
    configured = settings.answer.min_confidence
    settings = settings.model_copy(update={"answer": settings.answer.model_copy(update={"min_confidence": 0.0})})
    assistant = Assistant(settings)
    rows = []  # (is_null, confidence, engine_refused, correct)
    in_passages = 0
    for q in dataset.queries:
        retrieval = assistant.retriever.retrieve(q.query, Filters(today=q.question_date))
        answer = assistant.answer_retrieval(q.query, retrieval)
        correct = not q.is_null and not answer.refused and contains_answer(answer.answer, q.answers)
        rows.append((q.is_null, retrieval.confidence, answer.refused, correct))
        in_passages += not q.is_null and any(contains_answer(p.text, q.answers) for p in retrieval.passages)
    answerable = [r for r in rows if not r[0]]
    nulls = [r for r in rows if r[0]]
    print(f"{len(answerable)} answerable, {len(nulls)} null questions; configured min_confidence {configured}")
    k = settings.retrieval.k
    print(f"gold answer in the {k} passages answered from: {in_passages / len(answerable):.3f}; "
          f"in the reply (no threshold): {sum(r[3] for r in answerable) / len(answerable):.3f}")
    print(f"confidence AUC (answerable above null): {auc([r[1] for r in answerable], [r[1] for r in nulls]):.3f}")
    print(f"{'min_confidence':>14} {'refusal_rate':>12} {'false_refusal':>13} {'answer_accuracy':>15}")
    for t in sorted(set(THRESHOLDS) | {configured}):
        refused = lambda r: r[2] or r[1] < t  # noqa: E731
        print(f"{t:14.2f} {sum(map(refused, nulls)) / len(nulls):12.3f} "
              f"{sum(map(refused, answerable)) / len(answerable):13.3f} "
              f"{sum(r[3] and not refused(r) for r in answerable) / len(answerable):15.3f}"
              + ("   <- configured" if t == configured else ""))


if __name__ == "__main__":
    main()
