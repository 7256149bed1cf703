"""`assistant eval` end to end on the project's own tiny dataset (tests/data/eval): real store, real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.eval.metrics import SUMMARY_KEYS

DATASET = Path(__file__).parent / "data" / "eval"
RATES = ("hits@1", "hits@4", "hits@10", "mrr@10", "article_hit@10", "answer_accuracy", "refusal_rate",
         "false_refusal_rate", "citation_precision")


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval-data")


def test_eval_json_summary_and_per_query_out(eval_dir, tmp_path):
    out = tmp_path / "results.json"
    res = CliRunner().invoke(cli, ["--data-dir", str(eval_dir), "eval", "--dataset", str(DATASET), "--json",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert list(summary) == [*SUMMARY_KEYS, "by_type"]
    queries = json.loads((DATASET / "queries.json").read_text())
    assert summary["queries"] == len(queries)
    for key in RATES:
        assert 0.0 <= summary[key] <= 1.0, key
    # non-trivial: the pipeline finds most evidence, answers most answerable questions, refuses null ones
    assert summary["hits@10"] >= 0.8 and summary["mrr@10"] >= 0.5
    assert summary["hits@1"] <= summary["hits@4"] <= summary["hits@10"]
    assert summary["answer_accuracy"] >= 0.5 and summary["refusal_rate"] >= 0.5
    assert summary["false_refusal_rate"] <= 0.5
    assert set(summary["by_type"]) == {"current_affairs", "null_query"}
    assert summary["by_type"]["null_query"]["hits@1"] is None
    assert summary["by_type"]["current_affairs"]["refusal_rate"] is None

    rows = json.loads(out.read_text())
    assert len(rows) == len(queries)
    for row, q in zip(rows, queries):
        assert set(row) == {"query", "question_type", "retrieved", "answer", "refused", "citations"}
        assert row["query"] == q["query"] and row["question_type"] == q["question_type"]
        assert 1 <= len(row["retrieved"]) <= 10
        assert all(set(r) == {"url", "title", "text", "score"} for r in row["retrieved"])
        for c in row["citations"]:
            assert set(c) == {"n", "article_id", "title", "source", "published_at", "url", "quote", "start", "end", "speaker"}
    assert sum(r["refused"] for r in rows if r["question_type"] == "null_query") >= 2


@pytest.mark.slow
def test_eval_table_beside_baselines_reuses_the_cached_store(eval_dir):
    res = CliRunner().invoke(cli, ["--data-dir", str(eval_dir), "eval", "--dataset", str(DATASET),
                                   "--baseline", "naive", "--baseline", "bm25"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["metric", "ours", "ours+top-chunk", "naive", "bm25"]
    table = {ln.split()[0]: ln.split()[1:] for ln in lines[2:] if ln.strip() and not ln.startswith(" ")}
    for key in RATES[:5]:
        cells = [float(x) for x in table[key]]
        assert len(cells) == 4 and all(0.0 <= c <= 1.0 for c in cells), (key, cells)
        assert cells[0] > 0.5, key  # ours finds the evidence
    assert "queries/s" in res.stdout and "p95" in res.stdout
    assert "null_query" in res.stdout  # confidence distribution of both groups
    stores = [p.name for p in (eval_dir / "eval").iterdir()]
    assert len([s for s in stores if not s.startswith("naive-")]) == 1  # the first test's store, reused
    assert len([s for s in stores if s.startswith("naive-")]) == 1
