"""Extractive engine: answer quality against CPU cost, by `answer.sentence_pool` (sentences embedded).

    python -m bench answer-cost [--dataset DIR] --data-dir DIR [--pools 0,8,12,16,24] [--sample N] [--limit N]

Retrieval runs once per answerable question; then each pool size answers every question from the same
passages. Prints the share of replies that contain a gold answer (no refusal threshold) and the CPU seconds
per answer (process time: all threads of this process, what a server's cores pay).
"""

from __future__ import annotations

import argparse
import time

from .common import add_devset, retrieve_all


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_devset(ap)
    ap.add_argument("--pools", default="0,8,12,16,24", help="answer.sentence_pool sizes, comma-separated")


def run(args: argparse.Namespace) -> None:
    from assistant.answering.engines.extractive import ExtractiveEngine
    from assistant.eval.metrics import contains_answer

    settings, assistant, retrieved = retrieve_all(args)
    retrieved = [(q, r) for q, r in retrieved if not q.is_null]
    embed = assistant.store.embedder.embed  # no memo: every answer pays for its sentences
    print(f"{len(retrieved)} answerable questions, {settings.retrieval.k} passages each")
    print(f"{'pool':>5} {'gold_in_reply':>13} {'cpu_s_per_answer':>16}")
    for pool in (int(x) for x in args.pools.split(",")):
        engine = ExtractiveEngine(embed, settings.answer.max_sentences, pool=pool)
        engine.select("warm up the encoder", retrieved[0][1].passages)
        t, got = time.process_time(), 0
        for q, r in retrieved:
            got += contains_answer(" ".join(p.text for p in engine.select(q.query, r.passages)), q.answers)
        cpu = (time.process_time() - t) / len(retrieved)
        print(f"{pool:5d} {got / len(retrieved):13.3f} {cpu:16.3f}", flush=True)

