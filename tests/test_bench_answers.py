"""`python -m bench answers`: the figures of eval --out files, all questions and the fortnight subset, on an
invented dataset (fictional places and outlets)."""

from __future__ import annotations

import json

import pytest

from bench.__main__ import main


def _dataset(tmp_path):
    corpus = [
        {"title": "Vellmar opens its bridge", "body": "The Vellmar bridge opened on Monday.", "source": "Tarn Post",
         "published_at": "2031-03-01", "url": "https://tarn.example/bridge"},
        {"title": "Old Vellmar ferry", "body": "The ferry ran since 1990.", "source": "Tarn Post",
         "published_at": "2029-01-01", "url": "https://tarn.example/ferry"},
    ]
    queries = [
        {"query": "What opened in Vellmar?", "answers": ["bridge"], "question_type": "current_affairs",
         "question_date": "2031-03-05", "evidence_list": [{"url": "https://tarn.example/bridge"}]},
        {"query": "Since when did the ferry run?", "answers": ["1990"], "question_type": "current_affairs",
         "question_date": "2031-03-05", "evidence_list": [{"url": "https://tarn.example/ferry"}]},
        {"query": "Who painted the bridge?", "answers": [], "answer": "insufficient information",
         "question_type": "null_query", "question_date": "2031-03-05", "evidence_list": []},
    ]
    (tmp_path / "corpus.json").write_text(json.dumps(corpus))
    (tmp_path / "queries.json").write_text(json.dumps(queries))


def _out(path, answers):
    path.write_text(json.dumps([{"query": q, "answer": a, "refused": r, "citations": []} for q, a, r in answers]))
    return str(path)


def test_figures_for_all_and_the_fortnight_subset_and_the_changed_questions(tmp_path, capsys):
    _dataset(tmp_path)
    before = _out(tmp_path / "before.json", [("What opened in Vellmar?", "A ferry. [1]", False),
                                              ("Since when did the ferry run?", "Since 1990. [1]", False),
                                              ("Who painted the bridge?", "Someone. [1]", False)])
    after = _out(tmp_path / "after.json", [("What opened in Vellmar?", "The bridge. [1]", False),
                                            ("Since when did the ferry run?", "", True),
                                            ("Who painted the bridge?", "", True)])
    main(["answers", after, "--base", before, "--dataset", str(tmp_path), "--changed"])
    lines = capsys.readouterr().out.splitlines()
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in lines if line.startswith(("all ", "fortnight "))}
    assert rows[("all", "answer_accuracy")] == ["0.500", "0.500"]
    assert rows[("all", "false_refusal_rate")] == ["0.000", "0.500"]
    assert rows[("all", "refusal_rate")] == ["0.000", "1.000"]
    # the ferry question's evidence is two years old: only the bridge question and the null one are in the fortnight
    assert rows[("fortnight", "questions")] == ["2", "2"]
    assert rows[("fortnight", "answer_accuracy")] == ["0.000", "1.000"]
    changed = lines[lines.index("3 questions changed verdict:") + 1:]
    assert any("wrong -> right" in c and "[fortnight]" in c and "Vellmar" in c for c in changed)
    assert any("right -> refused" in c and "[older]" in c for c in changed)
    assert any("answered -> refused" in c and "[null]" in c for c in changed)


def test_a_file_from_another_dataset_is_refused_by_name(tmp_path):
    _dataset(tmp_path)
    other = _out(tmp_path / "other.json", [("A question of another set?", "x", False)])
    with pytest.raises(SystemExit, match="1 questions are not in"):
        main(["answers", other, "--dataset", str(tmp_path)])
