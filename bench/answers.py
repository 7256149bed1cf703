"""Answer figures of `assistant eval --out` files: all questions and the fortnight subset, and what changed.

    python -m bench answers AFTER.json [--base BEFORE.json] [--dataset DIR] [--changed]

`assistant eval --out FILE` writes one record per question (its answer, refused, citations). This reads one or
two such files and prints, for all questions and for the fortnight subset (answerable questions with an
evidence article published from 2 days after to 14 days before the question, the rule of `bench sweep
--diagnose`; the dev set's other answerable questions have evidence only in older articles that hold the answer
by coincidence): answer accuracy, false refusals, and the refusal rate of the unanswerable questions. With
--base, the same for the base file side by side, and with --changed every question whose verdict changed
(so a refactor is proven by no change at all).
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from .common import add_dataset


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("after", type=Path, help="an `assistant eval --out` file")
    ap.add_argument("--base", type=Path, help="another one to compare with (before)")
    ap.add_argument("--changed", action="store_true", help="list the questions whose verdict changed")
    add_dataset(ap)


def fortnight(q, published: dict[str, str | None]) -> bool:
    """An evidence article of the question published in the fortnight before it (2 days after at most)."""
    if q.is_null or not q.question_date:
        return False
    asked = date.fromisoformat(q.question_date)
    return any(-2 <= (asked - date.fromisoformat(published[u][:10])).days <= 14
               for u in q.evidence_urls if published.get(u))


def verdict(q, record: dict) -> str:
    """right / wrong / refused for an answerable question; refused / answered for an unanswerable one."""
    from assistant.eval.metrics import contains_answer

    if q.is_null:
        return "refused" if record["refused"] else "answered"
    if record["refused"]:
        return "refused"
    return "right" if contains_answer(record["answer"], q.answers) else "wrong"


def figures(verdicts: list[tuple[object, str]]) -> dict[str, str]:
    answerable = [v for q, v in verdicts if not q.is_null]  # type: ignore[attr-defined]
    nulls = [v for q, v in verdicts if q.is_null]  # type: ignore[attr-defined]

    def share(xs: list[str], what: str) -> str:
        return f"{sum(x == what for x in xs) / len(xs):.3f}" if xs else "-"

    return {"questions": str(len(verdicts)), "answer_accuracy": share(answerable, "right"),
            "false_refusal_rate": share(answerable, "refused"), "refusal_rate": share(nulls, "refused")}


def run(args: argparse.Namespace) -> None:
    from assistant.eval.dataset import load_dataset

    dataset = load_dataset(args.dataset)
    by_query = {q.query: q for q in dataset.queries}
    published = {a.url: a.published_at for a in dataset.articles if a.url}
    runs = {}
    for name, path in (("after", args.after), ("base", args.base)):
        if path is None:
            continue
        records = json.loads(path.read_text(encoding="utf-8"))
        missing = [r["query"] for r in records if r["query"] not in by_query]
        if missing:
            raise SystemExit(f"{path}: {len(missing)} questions are not in {args.dataset}, e.g. {missing[0]!r}")
        runs[name] = {r["query"]: verdict(by_query[r["query"]], r) for r in records}
    names = [n for n in ("base", "after") if n in runs]
    subsets = {"all": lambda q: True, "fortnight": lambda q: fortnight(q, published) or q.is_null}
    keys = ("questions", "answer_accuracy", "false_refusal_rate", "refusal_rate")
    print(f"{'subset':10} {'metric':20} " + " ".join(f"{n:>8}" for n in names))
    for subset, keep in subsets.items():
        table = {n: figures([(by_query[t], v) for t, v in runs[n].items() if keep(by_query[t])]) for n in names}
        for k in keys:
            print(f"{subset:10} {k:20} " + " ".join(f"{table[n][k]:>8}" for n in names))
    print("(fortnight: answerable questions with fortnight evidence, plus every unanswerable question)")
    if args.changed and len(names) == 2:
        changed = [(t, runs["base"][t], v) for t, v in runs["after"].items() if runs["base"].get(t) != v]
        print(f"\n{len(changed)} questions changed verdict:")
        for t, before, after in changed:
            tag = "fortnight" if fortnight(by_query[t], published) else ("null" if by_query[t].is_null else "older")
            print(f"  {before:>8} -> {after:<8} [{tag}] {t}")
