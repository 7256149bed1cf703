"""Ingests in another process: generated articles, the command and environment, waiting for a progress line,
and the check that a store holds every expected article exactly once, in step with its keyword index."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from assistant.index.lexical import LexicalIndex, lexical_path
from assistant.index.store import Store
from assistant.ingest.loaders import load_paths
from tests.support.paths import ROOT

TOPICS = ["harbour", "railway", "election", "drought", "vaccine", "budget", "bridge", "wildfire", "strike",
          "embassy", "reservoir", "tariff", "satellite", "museum", "refinery", "ceasefire"]
PLACES = ["Lisbon", "Nairobi", "Oslo", "Lima", "Hanoi", "Tbilisi", "Accra", "Perth", "Quito", "Riga"]
WORDS = ("officials said the plan would be reviewed next week after residents raised concerns about costs "
         "delays safety and the long term impact on local jobs while opposition members demanded an inquiry "
         "into how contracts were awarded and whether the ministry had consulted independent experts").split()


def write_articles(path: Path, n: int, seed: int = 8) -> None:
    """n generated news articles as JSONL, one to three chunks each."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            topic, place = rng.choice(TOPICS), rng.choice(PLACES)
            paragraphs = []
            for _ in range(rng.randint(1, 3)):
                sentences = [f"The {topic} dispute in {place} entered day {rng.randint(2, 90)}."]
                for _ in range(rng.randint(2, 5)):
                    sentences.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))).capitalize()
                                     + ".")
                paragraphs.append(" ".join(sentences))
            record = {"title": f"Story {i}: {topic} row in {place}", "body": "\n\n".join(paragraphs),
                      "source": rng.choice(["Wire", "Daily", "Courier"]), "published_at": f"2025-05-{1 + i % 28:02d}",
                      "url": f"https://newsroom.example/story/{i}"}
            fh.write(json.dumps(record) + "\n")


def ingest_cmd(data_dir: Path, *paths: Path) -> list[str]:
    return [sys.executable, "-m", "assistant", "-v", "ingest", "--json", "--data-dir", str(data_dir),
            *map(str, paths)]


def run_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def start_and_wait_for(cmd: list[str], pattern: str, env: dict[str, str], min_done: int, timeout: float = 240):
    """Start an ingest and return (proc, stderr lines) once it logs `stored X/Y` with X >= min_done."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    deadline = time.time() + timeout
    for line in proc.stderr:
        lines.append(line)
        if pattern in line:
            done = int(line.rsplit(pattern, 1)[1].split("/")[0])
            if done >= min_done:
                return proc, lines
        if time.time() > deadline:
            break
    proc.kill()
    raise AssertionError("ingest never reached the kill point:\n" + "".join(lines[-30:]))


def expected_all(*paths: Path) -> dict:
    return {a.id: a for a in load_paths(list(paths)).articles}


def check_store_consistent(settings, expected: dict) -> int:
    """Every expected article stored exactly once, whole, matching its text; keyword index == Chroma."""
    store = Store(settings)
    per_article: dict[str, list[tuple[int, str]]] = defaultdict(list)
    ids = set()
    for cid, text, meta in store.iter_chunks():
        ids.add(cid)
        a = expected.get(meta["article_id"])
        assert a is not None, f"orphan chunk {cid} of an unknown article"
        assert meta["hash"] == a.hash, f"chunk {cid} is from another version of its article"
        assert a.body[meta["start"]:meta["end"]] == text
        assert cid == f"{a.id}:{meta['chunk_index']}"
        per_article[a.id].append((meta["chunk_index"], cid))
    assert set(per_article) == set(expected), "missing articles"
    for aid, chunks in per_article.items():
        assert sorted(i for i, _ in chunks) == list(range(len(chunks))), f"article {aid} chunks not 0..n-1"
    stats = store.stats()
    assert stats["articles"] == len(expected) and stats["chunks"] == len(ids)
    lexical = LexicalIndex(lexical_path(settings))
    assert len(lexical) == len(ids) and set(lexical.ids) == ids
    return len(ids)
