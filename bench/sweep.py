"""Retrieval settings sweep on an eval dataset, with a split to keep tuning honest.

    python -m bench sweep [--dataset DIR] --data-dir DIR [--sample N] [--limit N] [--diagnose] \
        '{}' '{"lexical_weight": 1.5}' '{"rerank_terms": 0.5}' ...

Each argument is a JSON object of `retrieval` settings changed from the defaults. Retrieval only (no answers),
on the cached eval store. Metrics are printed for the whole set and for its two halves (A = even-numbered
questions, B = odd): a change chosen on A should also hold on B, or it is fitted to these questions.

--diagnose adds, for each variant, where the misses are: the answerable questions split by whether an
evidence article was published in the fortnight before the question (recent) or only earlier, the rank-1
misses whose top passage is from a non-evidence article that holds the gold answer anyway, and the ceiling
(questions for which some stored chunk of an evidence article holds the answer).
"""

from __future__ import annotations

import argparse
import json

from .common import add_devset

METRICS = ("hits@1", "hits@4", "hits@10", "mrr@10", "article_hit@10")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_devset(ap)
    ap.add_argument("--diagnose", action="store_true", help="print where the misses are (see above)")
    ap.add_argument("variants", nargs="*", default=["{}"], help="JSON objects of `retrieval` settings changed")


def run(args: argparse.Namespace) -> None:
    from assistant.config import load_settings
    from assistant.eval.dataset import ensure_store, load_dataset
    from assistant.eval.metrics import SystemRun
    from assistant.eval.run import run_ours

    base = load_settings(data_dir=args.data_dir)
    dataset = load_dataset(args.dataset, args.sample)
    store = ensure_store(base, dataset)
    print(f"{'variant':60} {'split':5} " + " ".join(f"{m:>8}" for m in METRICS) + f" {'p95 ms':>7}")
    for v in args.variants:
        changes = json.loads(v)
        settings = store.model_copy(update={"retrieval": store.retrieval.model_copy(update=changes)})
        done = run_ours(settings, dataset, args.limit, answer=False, name=v)
        answerable = [r for r in done.results if not r.query.is_null]
        for split, rs in (("all", done.results), ("A", answerable[0::2]), ("B", answerable[1::2])):
            s = SystemRun(v, rs, done.seconds).summary
            p95 = f" {done.latency_p95_ms:7.1f}" if split == "all" else ""
            print(f"{v[:60]:60} {split:5} " + " ".join(f"{s[m]:8.3f}" for m in METRICS) + p95, flush=True)
        if args.diagnose:
            diagnose(settings, dataset, answerable)


def diagnose(settings, dataset, answerable) -> None:
    from datetime import date

    from assistant.eval.metrics import SystemRun, contains_answer
    from assistant.index.store import Store

    published = {a.url: a.published_at for a in dataset.articles if a.url}

    def recent(q) -> bool:
        asked = date.fromisoformat(q.question_date) if q.question_date else None
        days = [(asked - date.fromisoformat(published[u][:10])).days for u in q.evidence_urls
                if asked and published.get(u)]
        return any(-2 <= d <= 14 for d in days)

    for name, group in (("evidence of the fortnight", [r for r in answerable if recent(r.query)]),
                        ("evidence only older", [r for r in answerable if not recent(r.query)])):
        s = SystemRun(name, group, 0.0).summary
        print(f"  {name}: {len(group)} questions, " + ", ".join(f"{m} {s[m]:.3f}" for m in METRICS))
    other = sum(1 for r in answerable if r.rank() != 1 and r.retrieved
                and not set(r.retrieved[0]["urls"]) & set(r.query.evidence_urls)
                and contains_answer(r.retrieved[0]["text"], r.query.answers))
    print(f"  rank-1 misses whose top passage is from another article that holds the gold answer: {other}")
    col = Store(settings).collection()
    reachable = 0
    for r in answerable:
        got = col.get(where={"url": {"$in": r.query.evidence_urls}}, include=["documents"])
        reachable += any(contains_answer(d, r.query.answers) for d in got["documents"])
    print(f"  ceiling: {reachable} of {len(answerable)} questions have an evidence chunk holding the answer")

