"""Backup of a live archive and restore elsewhere (issue 15 part 5): the backup catches up with ingests,
edits and deletions that land while it runs; the restored archive answers every article, and restoring
twice duplicates nothing. Fictional articles only."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from assistant.index.store import Store
from assistant.ingest.backup import backup, restore
from assistant.ingest.ingestor import Ingestor
from assistant.ingest.loaders import load_paths
from tests.support.archives import article, write_jsonl
from tests.support.paths import ROOT


def _articles(tmp_path, name, records):
    return load_paths([write_jsonl(tmp_path / f"{name}.jsonl", records)]).articles


def test_backup_while_ingesting_then_restore_elsewhere(make_settings, tmp_path, monkeypatch):
    src = make_settings(tmp_path / "newsroom")
    ing = Ingestor(src)
    first = _articles(tmp_path, "first", [article(i, "Glenharrow") for i in range(4)])
    ing.ingest_articles(first)
    (src.data_dir / "sources.json").write_text('{"sources": ["https://glenharrow-gazette.example/feed"]}')

    # while the backup's full pass has run and before it catches up: an ingest, an edit and a deletion land
    late = _articles(tmp_path, "late", [article(9, "Ostmere")])
    edited = dict(article(1, "Glenharrow"), body=article(1, "Glenharrow")["body"] + " The lock reopened on Friday.")
    real_all_ids = Store.all_ids
    landed = []

    def all_ids(store, page=5000):
        if not landed:
            landed.append(True)
            ing.ingest_articles(late + _articles(tmp_path, "edit", [edited]))
            ing.delete(first[3].id)
        return real_all_ids(store, page)

    monkeypatch.setattr(Store, "all_ids", all_ids)
    info = backup(src, tmp_path / "archive.jsonl.gz", page=2)
    assert landed and info["head"] == ing.store.change_head()

    expected = {cid: (text, meta) for cid, text, meta in ing.store.iter_chunks()}
    with gzip.open(tmp_path / "archive.jsonl.gz", "rt") as fh:
        header = json.loads(fh.readline())
        rows = [json.loads(line) for line in fh]
    chunks = {r["id"]: r for r in rows if "id" in r}
    assert header["chunks"] == len(chunks) == len(expected)
    assert {cid: r["document"] for cid, r in chunks.items()} == {cid: t for cid, (t, _) in expected.items()}
    assert not any(cid.startswith(first[3].id) for cid in chunks)

    dst = make_settings(tmp_path / "elsewhere")
    out = restore(dst, tmp_path / "archive.jsonl.gz")
    assert out["chunks"] == out["keyword_index"] == len(expected)
    again = restore(dst, tmp_path / "archive.jsonl.gz")
    from assistant.answering.chain import Assistant

    helper = Assistant(dst)
    assert again["chunks"] == helper.store.count() == len(expected)  # restoring twice duplicates nothing
    assert (dst.data_dir / "sources.json").read_text() == (src.data_dir / "sources.json").read_text()
    for i, town in [(0, "Glenharrow"), (1, "Glenharrow"), (2, "Glenharrow"), (9, "Ostmere")]:
        top = helper.retriever.retrieve(f"What did lockkeeper Idris Vantol{i} say about {town}?").passages[0]
        assert f"Vantol{i}" in top.text and helper.lexical.search(f"Vantol{i}", 1)
    assert "reopened on Friday" in " ".join(t for t, _ in expected.values())
    assert helper.lexical.status()["in_step"]


@pytest.mark.subprocess
def test_backup_and_restore_commands(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin:/bin"}

    def run(*args):
        out = subprocess.run([sys.executable, "-m", "assistant", *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=240, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    src = write_jsonl(tmp_path / "a.jsonl", [article(i, "Wickmoor") for i in range(2)])
    run("ingest", str(src), "--data-dir", str(tmp_path / "a"))
    assert "backed up 2 articles" in run("backup", str(tmp_path / "b.jsonl.gz"), "--data-dir", str(tmp_path / "a"))
    assert "restored" in run("restore", str(tmp_path / "b.jsonl.gz"), "--data-dir", str(tmp_path / "c"))
    stats = run("stats", "--data-dir", str(tmp_path / "c"))
    assert "articles: 2" in stats and "keyword index: in step" in stats
