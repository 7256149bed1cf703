"""Extractive engine: how alternative sentence-scoring settings and refusal rules change the answers.

    python -m bench answer-variants [--dataset DIR] --data-dir DIR [--k K] [--lost] [--sample N] [--limit N]

Retrieval runs once per question; each variant then answers every answerable question from the same
passages. For each variant it prints the share of replies holding a gold answer (no refusal threshold), on all
answerable questions and on two halves (odd / even positions), so that a change which helps only one half is
seen as noise, plus the mean sentences and characters of a reply. A second table measures refusal rules on
top of `answer.min_confidence`: refusal rate on the null questions, false refusals and answer accuracy.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import date, timedelta

from .common import add_devset, retrieve_all


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_devset(ap)
    ap.add_argument("--k", type=int, help="passages the engine reads (default: retrieval.k)")
    ap.add_argument("--lost", action="store_true", help="Also list the questions whose gold answer is in the "
                    "passages but not in the configured reply, with the reply and the sentences holding it.")


def run(args: argparse.Namespace) -> None:
    from assistant.answering.engines.extractive import ExtractiveEngine, SentenceWeights
    from assistant.eval.metrics import contains_answer

    settings, assistant, retrieved = retrieve_all(args, k=args.k)
    embed = assistant.store.embedder.embed_memo
    answerable = [(q, r) for q, r in retrieved if not q.is_null]
    a = settings.answer
    w = SentenceWeights(floor=a.sentence_floor)

    def engine(max_sentences: int = a.max_sentences, pool: int = a.sentence_pool, title_context=None,
               **weights) -> ExtractiveEngine:
        title_context = assistant.extractive.title_context if title_context is None else title_context
        return ExtractiveEngine(embed, max_sentences, pool=pool, weights=replace(w, **weights),
                                title_context=title_context)

    variants = {
        "configured": engine(),
        "sentences embedded with their title": engine(title_context=True),
        "sentences embedded alone": engine(title_context=False),
        "title context, floor 0.7": engine(title_context=True, floor=0.7),
        "title context, floor 0.8": engine(title_context=True, floor=0.8),
        "max_sentences 5": engine(max_sentences=5),
        "sentence_pool 12": engine(pool=12),
        "sentence_pool 0 (all)": engine(pool=0),
        f"passage rank {w.rank} -> 0.25": engine(rank=0.25),
        f"passage rank 0.25, decay {w.rank_decay} -> 0.6": engine(rank=0.25, rank_decay=0.6),
        f"word coverage {w.words} -> 0.15": engine(words=0.15),
        f"word coverage {w.words} -> 0.35": engine(words=0.35),
        f"fact-kind bonus {w.fits} -> 0": engine(fits=0.0),
        f"fact-kind bonus {w.fits} -> 0.15": engine(fits=0.15),
        f"floor {w.floor} -> 0.6": engine(floor=0.6),
        f"floor {w.floor} -> 0.9": engine(floor=0.9),
        "max_sentences 5, floor 0.5": engine(max_sentences=5, floor=0.5),
        "max_sentences 5, floor 0.5, sentence_pool 12": engine(max_sentences=5, floor=0.5, pool=12),
    }
    n = len(answerable)
    halves = ((n + 1) // 2, n // 2)
    in_passages = sum(any(contains_answer(p.text, q.answers) for p in r.passages) for q, r in answerable) / n
    print(f"{n} answerable questions, {settings.retrieval.k} passages each, gold answer in them: {in_passages:.3f}")
    print("gold answer in the reply:")
    print(f"{'variant':44s} {'all':>6} {'half A':>6} {'half B':>6} {'sents':>5} {'chars':>5}")
    replies = {}
    for name, eng in variants.items():
        got, sentences, chars = [0, 0], 0, 0
        for i, (q, r) in enumerate(answerable):
            picks = eng.select(q.query, r.passages)
            reply = " ".join(p.text for p in picks)
            ok = contains_answer(reply, q.answers)
            got[i % 2] += ok
            sentences += len(picks)
            chars += len(reply)
            if name == "configured":
                replies[q.query] = ok
        print(f"{name:44s} {sum(got) / n:6.3f} {got[0] / halves[0]:6.3f} {got[1] / halves[1]:6.3f} "
              f"{sentences / n:5.2f} {chars / n:5.0f}", flush=True)

    def outside_window(r) -> bool:
        """The question names a time ("this week", "on Saturday") and no passage is dated near it."""
        if not r.window:
            return False
        start, end = r.window.start - timedelta(days=7), r.window.end + timedelta(days=2)
        return not any(p.published_at is None or start <= date.fromisoformat(p.published_at[:10]) <= end
                       for p in r.passages)

    rules = {
        f"retrieval confidence < {a.min_confidence} (configured)": lambda r: False,
        "... or a named time with no passage dated near it": outside_window,
    }
    nulls = [r for q, r in retrieved if q.is_null]
    print(f"\nrefusal rules ({len(nulls)} null questions, {n} answerable):")
    print(f"{'rule':56s} {'refusal':>7} {'false':>6} {'accuracy':>8}")
    for name, extra in rules.items():
        refuses = lambda r: r.confidence < a.min_confidence or extra(r)  # noqa: E731
        refused_null = sum(refuses(r) for r in nulls) / len(nulls)
        false = sum(refuses(r) for _, r in answerable) / n
        accuracy = sum(replies[q.query] and not refuses(r) for q, r in answerable) / n
        print(f"{name:56s} {refused_null:7.3f} {false:6.3f} {accuracy:8.3f}")

    if args.lost:
        eng = variants["configured"]
        print("\nlost: gold answer in the passages, not in the reply")
        for q, r in answerable:
            if replies[q.query] or not any(contains_answer(p.text, q.answers) for p in r.passages):
                continue
            print(f"\nQ: {q.query}  |  gold: {q.answers}")
            for pick in eng.select(q.query, r.passages):
                print(f"  reply [{pick.passage + 1}] {pick.text[:160]}")
            for c in [c for c in eng.candidates(r.passages) if contains_answer(c.text, q.answers)][:2]:
                print(f"  holds [{c.passage + 1}] {c.text[:160]}")

