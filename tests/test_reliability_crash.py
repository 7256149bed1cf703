"""Reliability matrix, rows 5 and 6: an ingest killed with SIGKILL and resumed; reads and a second ingest
while an ingest runs in another process (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from assistant.answering.chain import Assistant
from assistant.config import load_settings
from assistant.index.lexical import LexicalIndex, lexical_path
from assistant.index.store import Store
from assistant.ingest.loaders import load_paths
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow

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
    assert set(lexical.load_cache()) == ids
    return len(ids)


def test_sigkill_mid_ingest_then_rerun_completes_without_loss_or_duplicates(tmp_path):
    n = 300
    src = tmp_path / "articles.jsonl"
    write_articles(src, n)
    data = tmp_path / "data"
    env = run_env(ASSISTANT_INGEST__BATCH_ARTICLES="10")

    proc, lines = start_and_wait_for(ingest_cmd(data, src), "stored ", env, min_done=40)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert (data / "ingest.journal").exists()  # the killed run left its journal behind

    rerun = subprocess.run(ingest_cmd(data, src), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads(rerun.stdout)
    assert not report["failed"]
    assert report["resumed"] and report["resumed"].startswith("resumed an interrupted ingest")
    kept = report["unchanged"]
    assert kept >= 40 and kept + report["added"] == n and report["updated"] == 0
    assert f"{kept} of its {n} articles were already stored whole and kept" in report["resumed"]
    assert not (data / "ingest.journal").exists()

    settings = load_settings(data_dir=str(data))
    expected = {a.id: a for a in load_paths([src]).articles}
    assert len(expected) == n
    check_store_consistent(settings, expected)

    again = subprocess.run(ingest_cmd(data, src), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    report = json.loads(again.stdout)
    assert (report["unchanged"], report["added"], report["resumed"]) == (n, 0, None)


def test_readers_see_whole_articles_while_another_process_ingests(tmp_path):
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    write_articles(first, 20, seed=1)
    write_articles(second, 120, seed=2)
    # second.jsonl must hold other articles than first.jsonl: other urls
    lines = [json.loads(x) for x in second.read_text().splitlines()]
    for rec in lines:
        rec["url"] += "-b"
    second.write_text("".join(json.dumps(r) + "\n" for r in lines))
    data = tmp_path / "data"
    env = run_env(ASSISTANT_INGEST__BATCH_ARTICLES="8")
    subprocess.run(ingest_cmd(data, first), cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)

    settings = load_settings(data_dir=str(data))
    assistant = Assistant(settings)
    assert assistant.ask("What happened in the harbour dispute?").answer  # model loaded before the write starts
    before = assistant.store.count()
    writer, _ = start_and_wait_for(ingest_cmd(data, second), "stored ", env, min_done=8)
    # a second ingest on the same data dir while the first runs: it waits for the lock, then finds nothing to do
    waiter = subprocess.Popen(ingest_cmd(data, second), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    drained: list[str] = []
    drain = threading.Thread(target=lambda: drained.extend(writer.stderr), daemon=True)
    drain.start()

    questions = [f"What happened in the {t} dispute in {p}?" for t in TOPICS[:6] for p in PLACES[:3]]
    asked = 0
    seen_chunks: set[int] = set()
    store = assistant.store
    try:
        while writer.poll() is None or asked < 3:
            q = questions[asked % len(questions)]
            answer = assistant.ask(q)
            asked += 1
            assert answer.answer
            # no partial article is ever visible: each returned passage's article has all its chunks
            for p in answer.passages:
                indices = sorted(int(cid.rsplit(":", 1)[1]) for cid in store.chunk_ids(p.article_id))
                assert indices == list(range(len(indices))), (p.article_id, indices)
            seen_chunks.add(store.count())
            if asked > 400:
                break
    finally:
        writer.wait(600)
        out, err = waiter.communicate(timeout=600)
        drain.join(10)
    assert writer.returncode == 0, "".join(drained[-20:])
    assert waiter.returncode == 0, err[-2000:]
    assert "another ingest is running" in err  # it waited for the lock instead of writing alongside
    waited = json.loads(out)
    assert waited["added"] == 0 and waited["unchanged"] == 120 and not waited["failed"]
    assert asked >= 3
    assert len(seen_chunks - {before}) >= 1, "reads never saw the write"  # the store grew under the reader
    assert assistant.store.count() == check_store_consistent(settings, expected_all(first, second))


def test_update_killed_between_upsert_and_stale_delete_is_swept_on_resume(tmp_path, make_settings):
    """The one partial state a kill can leave: an edited, shorter article upserted, its old tail not yet deleted."""
    from assistant.ingest.ingestor import Ingestor
    from assistant.models import content_hash
    from assistant.text.duplicates import normalized

    src = tmp_path / "articles.jsonl"
    write_articles(src, 30, seed=3)
    settings = make_settings()
    ingestor = Ingestor(settings)
    assert ingestor.ingest_paths([src]).added == 30
    articles = load_paths([src]).articles
    long = max(articles, key=lambda a: len(ingestor.chunker.split(a)))
    old_chunks = ingestor.chunker.split(long)
    assert len(old_chunks) >= 2
    records = [json.loads(x) for x in src.read_text().splitlines()]
    for r in records:
        if r["url"] == long.url:
            r["body"] = r["body"].split("\n\n")[0]  # the edit keeps only the first paragraph
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    edited = next(a for a in load_paths([src]).articles if a.id == long.id)
    new_chunks = ingestor.chunker.split(edited)
    assert len(new_chunks) < len(old_chunks)

    # replay the killed run: journal written, the edited article upserted, the old tail's delete never ran
    Ingestor._write_journal(settings.data_dir / "ingest.journal", [edited])
    vectors = ingestor.store.embedder.embed([c.text for c in new_chunks])
    ingestor.store.write([(edited, new_chunks, [content_hash(normalized(c.text)) for c in new_chunks], vectors, [])])
    assert len(ingestor.store.chunk_ids(long.id)) == len(old_chunks)  # the orphans are there

    report = Ingestor(settings).ingest_paths([src])
    removed = len(old_chunks) - len(new_chunks)
    assert report.resumed.endswith(f"; removed {removed} leftover chunks of partly replaced articles")
    assert "1 of its 1 articles were already stored whole and kept" in report.resumed
    assert report.unchanged == 30 and report.updated == 0
    check_store_consistent(settings, expected_all(src))
