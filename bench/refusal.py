"""Refusal trade-off of the extractive engine, by `answer.min_confidence`: refusals, false refusals, accuracy.

For each threshold: the refusal rate on unanswerable questions, the false-refusal rate and the answer
accuracy on answerable ones.

    python -m bench refusal [--dataset DIR] --data-dir DIR [--sample N] [--limit N]

Every question is retrieved and answered once with the threshold at 0 (the engine may still decline when no
sentence scores at all); a question is then counted as refused at threshold t when its retrieval
confidence is below t, which is exactly what the chain does. Also prints the separation (AUC) of the
confidence between answerable and null questions, and where answerable questions are lost: gold answer in
none of the passages the engine reads (retrieval) or in them but not in the reply (sentence selection); and how
many of the answers given carry the weak-match caution (`answer.caution_below`).
"""

from __future__ import annotations

import argparse

from .common import add_devset, retrieve_all

THRESHOLDS = (0.35, 0.40, 0.42, 0.45, 0.48, 0.50, 0.52, 0.55, 0.60)


def auc(pos: list[float], neg: list[float]) -> float:
    """Probability that an answerable question scores above a null one (ties count half)."""
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_devset(ap)


def run(args: argparse.Namespace) -> None:
    from assistant.config import load_settings
    from assistant.eval.metrics import contains_answer

    configured_answer = load_settings(data_dir=args.data_dir).answer
    configured, caution = configured_answer.min_confidence, configured_answer.caution_below
    settings, assistant, retrieved = retrieve_all(args, min_confidence=0.0)
    rows = []  # (is_null, confidence, engine_refused, correct)
    in_passages = 0
    for q, retrieval in retrieved:
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

    # Answers given (not refused at the configured threshold) that carry the weak-match caution.
    answered_null = [r for r in nulls if not r[2] and r[1] >= configured]
    answered = [r for r in answerable if not r[2] and r[1] >= configured]
    right = [r for r in answered if r[3]]
    print(f"\nanswers with the weak-match caution (answer.caution_below), {len(answered_null)} answers to null "
          f"questions, {len(answered)} to answerable ones ({len(right)} right):")
    print(f"{'caution_below':>13} {'null_answers':>12} {'answerable':>10} {'right_answers':>13}")
    for c in sorted({0.50, 0.55, 0.60, caution}):
        share = lambda group: sum(r[1] < c for r in group) / max(1, len(group))  # noqa: E731
        print(f"{c:13.2f} {share(answered_null):12.3f} {share(answered):10.3f} {share(right):13.3f}"
              + ("   <- configured" if c == caution else ""))

