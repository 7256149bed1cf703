"""Reliability matrix, rows 5 and 6: an ingest killed with SIGKILL and resumed; reads and a second ingest
while an ingest runs in another process (docs/reliability.md)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading

import pytest

from assistant.answering.chain import Assistant
from assistant.config import load_settings
from assistant.ingest.loaders import load_paths
from tests.support.ingest_runs import (
    PLACES,
    TOPICS,
    check_store_consistent,
    expected_all,
    ingest_cmd,
    run_env,
    start_and_wait_for,
    write_articles,
)
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow

@pytest.mark.subprocess
def test_sigkill_mid_ingest_then_rerun_completes_without_loss_or_duplicates(tmp_path):
    n = 120  # killed after 40: 80 still to store, seconds of work left when the signal lands
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


@pytest.mark.subprocess
def test_readers_see_whole_articles_while_another_process_ingests(tmp_path):
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    write_articles(first, 20, seed=1)
    write_articles(second, 48, seed=2)  # six batches of 8: five still to write once the reads begin
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
    assert waited["added"] == 0 and waited["unchanged"] == len(lines) and not waited["failed"]
    assert asked >= 3
    assert len(seen_chunks - {before}) >= 1, "reads never saw the write"  # the store grew under the reader
    assert assistant.store.count() == check_store_consistent(settings, expected_all(first, second))


def test_update_killed_between_upsert_and_stale_delete_is_swept_on_resume(tmp_path, make_settings):
    """The one partial state a kill can leave: an edited, shorter article upserted, its old tail not yet deleted."""
    from assistant.index.store import ArticleWrite
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
    ingestor.store.write([ArticleWrite(edited, new_chunks, [content_hash(normalized(c.text)) for c in new_chunks], vectors,
                                       [])])
    assert len(ingestor.store.chunk_ids(long.id)) == len(old_chunks)  # the orphans are there

    report = Ingestor(settings).ingest_paths([src])
    removed = len(old_chunks) - len(new_chunks)
    assert report.resumed.endswith(f"; removed {removed} leftover chunks of partly replaced articles")
    assert "1 of its 1 articles were already stored whole and kept" in report.resumed
    assert report.unchanged == 30 and report.updated == 0
    check_store_consistent(settings, expected_all(src))
