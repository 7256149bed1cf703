"""Reliability matrix, rows 1, 3 and 4: bad files at ingest, other scripts, odd questions (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.answering.chain import Assistant
from assistant.cli import cli
from assistant.config import load_settings
from assistant.errors import AssistantError
from assistant.index.store import Store
from assistant.ingest.ingestor import Ingestor
from assistant.ingest.loaders import load_file
from assistant.web.app import sources_html

DATA = Path(__file__).parent / "data" / "reliability"
MOJIBAKE = ("\ufffd", "Ã", "Â", "Ð", "Ñ", "Р°", "СЃ")
GOOD_TEXT = """Council approves new cycle lanes

The city council approved twelve kilometres of protected cycle lanes on Monday after a two-hour debate.
The first section, along the river embankment, is due to open in the spring.
"""


def _messy_folder(root: Path) -> tuple[Path, dict[str, Path]]:
    """A folder holding one of every kind of bad input, plus one good article."""
    d = root / "messy"
    d.mkdir()
    files = {}
    for name in ("cp1251.txt", "latin1.txt", "malformed.html", "truncated.jsonl", "truncated.json",
                 "no_text_layer.pdf"):
        files[name] = d / name
        shutil.copy(DATA / name, d / name)
    files["good.txt"] = d / "good.txt"
    files["good.txt"].write_text(GOOD_TEXT, encoding="utf-8")
    files["empty.txt"] = d / "empty.txt"
    files["empty.txt"].write_bytes(b"")
    files["blank.txt"] = d / "blank.txt"
    files["blank.txt"].write_text("  \n\t\n   \n", encoding="utf-8")
    files["binary.txt"] = d / "binary.txt"
    files["binary.txt"].write_bytes(bytes(range(256)) * 64)  # a renamed binary: NULs and control bytes
    # A real 200 MB file that costs no disk: sparse, created by truncate. Its atime is set far in the past so
    # that any read of it would show (the mount updates atime when atime <= mtime).
    files["huge.txt"] = d / "huge.txt"
    with open(files["huge.txt"], "wb") as fh:
        fh.truncate(200 * 1024 * 1024)
    st = files["huge.txt"].stat()
    os.utime(files["huge.txt"], (1_000_000, st.st_mtime))
    loop = d / "loop"
    loop.mkdir()
    (loop / "again").symlink_to("..", target_is_directory=True)  # folder loop: messy/loop/again -> messy
    (loop / "a.txt").symlink_to("b.txt")  # file loop: a -> b -> a
    (loop / "b.txt").symlink_to("a.txt")
    return d, files


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    root = tmp_path_factory.mktemp("messy")
    folder, files = _messy_folder(root)
    missing = root / "does-not-exist"
    settings = load_settings(data_dir=str(root / "data"))
    report = Ingestor(settings).ingest_paths([folder, missing, folder / "loop" / "a.txt"])
    return settings, folder, files, missing, report


def _reasons(items, path: Path) -> list[tuple[str, int | None]]:
    return [(f.reason, f.line) for f in items if Path(f.path) == path]


def test_bad_files_are_reported_and_good_ones_ingested(messy):
    settings, folder, files, missing, report = messy
    failed = report.failed

    assert _reasons(failed, files["empty.txt"]) == [("empty file", None)]
    assert _reasons(failed, files["blank.txt"]) == [("empty file", None)]
    assert _reasons(failed, files["binary.txt"]) == [("binary file, not text", None)]
    [(reason, _)] = _reasons(failed, files["no_text_layer.pdf"])
    assert "no text layer" in reason
    assert _reasons(failed, missing) == [("no such file or directory", None)]
    loop_reasons = _reasons(failed, folder / "loop" / "a.txt") + _reasons(failed, folder / "loop" / "b.txt")
    assert loop_reasons and all(r.startswith("symlink loop") for r, _ in loop_reasons)
    # the sparse 200 MB file: skipped for its size (default limit 50 MB) and never opened
    [(reason, _)] = _reasons(failed, files["huge.txt"])
    assert "200.0 MB" in reason and "ingest.max_file_mb" in reason
    assert files["huge.txt"].stat().st_atime == 1_000_000

    # truncated JSONL: the two good lines are in, each bad line is reported with its number
    jsonl = {line: reason for reason, line in _reasons(failed, files["truncated.jsonl"])}
    assert set(jsonl) == {2, 4, 5, 6}
    assert "invalid JSON" in jsonl[2] and "invalid JSON" in jsonl[6]
    assert "not a JSON object" in jsonl[4] and "missing body" in jsonl[5]
    [(reason, line)] = _reasons(failed, files["truncated.json"])
    assert "item 3 and after not loaded" in reason and line == 4

    stored = {meta["title"]: meta for meta in Store(settings).manifest().values()}
    assert {"Council approves new cycle lanes", "Rail fares frozen for a year", "Library hours extended",
            "Harbour strike ends after nine days", "Округ отказал Северолесску в помощи",
            "Grève générale à Valbrise: les élèves défilent"} <= set(stored)
    # the same two JSON records arrive from truncated.json and truncated.jsonl: stored once
    assert report.added == len(stored) == 6
    assert len([s for s in report.skipped if "duplicate" in s.reason]) == 2


def test_legacy_encodings_are_decoded_not_mojibake_in_the_store(messy):
    settings, *_ = messy
    texts = [text for _, text, _ in Store(settings).iter_chunks()]
    everything = "\n".join(texts)
    assert "Тимофей Ельников" in everything and "«Мы не видим оснований для новых расходов»" in everything
    assert "« Nous sommes épuisés », a déclaré Renée Müller" in everything
    for t in texts:
        assert not any(m in t for m in MOJIBAKE), t


def test_malformed_html_keeps_its_text(messy):
    settings, *_ = messy
    texts = " ".join(text for _, text, meta in Store(settings).iter_chunks()
                     if meta["title"] == "Harbour strike ends after nine days")
    for phrase in ("voted to end their nine-day strike", "seven per cent rise over two years"):
        assert phrase in texts


def test_cli_ingest_json_reports_failures_with_exit_0(tmp_path):
    folder, files = _messy_folder(tmp_path)
    res = CliRunner().invoke(cli, ["ingest", "--json", "--data-dir", str(tmp_path / "data"), str(folder)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["added"] == 6
    failed = {(Path(f["path"]).name, f["line"]): f["reason"] for f in summary["failed"]}
    assert {("truncated.jsonl", 2), ("truncated.jsonl", 4), ("truncated.jsonl", 5), ("truncated.jsonl", 6),
            ("truncated.json", 4), ("empty.txt", None), ("blank.txt", None), ("binary.txt", None),
            ("no_text_layer.pdf", None)} <= set(failed)
    assert "over the limit of 50.0 MB" in failed[("huge.txt", None)]
    assert "Traceback" not in res.stderr


def test_cli_ingest_of_a_path_that_does_not_exist_exits_2_and_ingests_nothing(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text(GOOD_TEXT, encoding="utf-8")
    missing = tmp_path / "typo"
    data = tmp_path / "data"
    res = CliRunner().invoke(cli, ["ingest", "--json", "--data-dir", str(data), str(good), str(missing)])
    assert res.exit_code == 2
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("Error: ") and str(missing) in line and "nothing was ingested" in line
    assert res.stdout == "" and "Traceback" not in res.output
    assert Store(load_settings(data_dir=str(data))).stats()["articles"] == 0


def test_size_limit_is_configurable(tmp_path, make_settings):
    small = tmp_path / "small.txt"
    small.write_text(GOOD_TEXT, encoding="utf-8")
    big = tmp_path / "big.txt"
    big.write_text(GOOD_TEXT.replace("Council approves", "Council rejects") + "More text. " * 500, encoding="utf-8")
    report = Ingestor(make_settings(**{"ingest.max_file_mb": 0.001})).ingest_paths([small, big])
    assert report.added == 1 and not report.skipped
    [skip] = report.failed
    assert Path(skip.path) == big and "over the limit of 0.0010 MB (ingest.max_file_mb)" in skip.reason


def test_cli_exits_1_only_when_the_run_cannot_proceed(tmp_path):
    not_a_dir = tmp_path / "file" / "data"  # its parent is a file: the data dir cannot be created
    not_a_dir.parent.write_text("x")
    good = tmp_path / "good.txt"
    good.write_text(GOOD_TEXT, encoding="utf-8")
    res = CliRunner().invoke(cli, ["ingest", "--json", "--data-dir", str(not_a_dir), str(good)])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "(hint: " in lines[0]
    assert "Traceback" not in res.output


# ---------------------------------------------------------------- row 3: Russian, Persian, Arabic


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    settings = load_settings(data_dir=str(tmp_path_factory.mktemp("scripts") / "data"))
    paths = [DATA / "ru.md", DATA / "fa.md", DATA / "ar.md"]
    report = Ingestor(settings).ingest_paths(paths)
    assert report.added == 3 and not report.failed, report
    return settings, {p.stem: load_file(p)[0][0] for p in paths}


def test_other_scripts_are_stored_intact(scripts):
    settings, articles = scripts
    by_id = {a.id: a for a in articles.values()}
    chunks = list(Store(settings).iter_chunks())
    assert {meta["article_id"] for _, _, meta in chunks} == set(by_id)
    for _, text, meta in chunks:
        article = by_id[meta["article_id"]]
        assert article.body[meta["start"]:meta["end"]] == text
        assert meta["title"] == article.title
    # the raw files' characters (ZWNJ in Persian, Arabic diacritics) survive unchanged
    assert "\u200c" in articles["fa"].body and "آتش‌بس" in articles["fa"].title
    assert "مؤكداً" in articles["ar"].body


@pytest.mark.parametrize("question", [
    "Что сказала Вересова о помощи городу?",
    "شهردار نارین‌دشت خواستار چه چیزی شد؟",
    "ماذا قال رئيس بلدية مرفأ الزيزفون؟",
    "Did Russia offer Iran military help?",
])
def test_other_script_questions_answer_or_refuse(scripts, question):
    settings, articles = scripts
    answer = Assistant(settings).ask(question)
    assert answer.answer
    bodies = {a.id: a.body for a in articles.values()}
    for c in answer.citations:
        assert bodies[c.article_id][c.start:c.end] == c.quote
    html = sources_html(answer)
    # every title and passage element lets the browser pick the direction from its own text
    cards = html.count('<div class="source-card')
    assert cards >= 1 and html.count('dir="auto"') == 3 * cards  # title, meta, passage


def test_sources_panel_keeps_rtl_text(scripts):
    settings, articles = scripts
    answer = Assistant(settings).ask("رئيس البلدية وقف الإضراب في الميناء")
    html = sources_html(answer)
    assert "بلدية مرفأ الزيزفون تدعو إلى وقف الإضراب في الميناء" in html
    assert 'class="title" dir="auto"' in html and 'class="passage" dir="auto"' in html


# ---------------------------------------------------------------- row 4: odd questions

ERRORS = {"": "question is empty", "   \n\t ": "question is empty", "x" * 20_000: "20,000 characters",
          "\x01\x07\x1b\u202e\u200b\x7f": "question is empty"}  # control and format characters only
ANSWERS = ["?!?...", "—", "Кто такая Вересова?", "ما هو موقف البلدية؟", "市長は何と言った？"]


@pytest.mark.parametrize("question", list(ERRORS), ids=["empty", "whitespace", "20000-chars", "control-chars"])
def test_bad_questions_are_clear_errors(scripts, question):
    settings, _ = scripts
    with pytest.raises(AssistantError, match=ERRORS[question]):
        Assistant(settings).ask(question)
    res = CliRunner().invoke(cli, ["ask", "--json", "--data-dir", str(settings.data_dir), question])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and ERRORS[question] in lines[0]
    assert "Traceback" not in res.output


@pytest.mark.parametrize("question", ANSWERS, ids=["punctuation", "dash", "russian", "arabic", "japanese"])
def test_odd_questions_get_an_answer_or_refusal(scripts, question):
    settings, _ = scripts
    answer = Assistant(settings).ask(question)
    assert answer.answer.strip()
    if not any(ch.isalnum() for ch in question):
        assert answer.refused and not answer.citations
    res = CliRunner().invoke(cli, ["ask", "--json", "--data-dir", str(settings.data_dir), question])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"answer", "refused", "citations"} and out["answer"]


@pytest.mark.parametrize("flag,value", [("--today", "2025-13-01"), ("--since", "yesterday"), ("--until", "2025-02-30")])
def test_impossible_dates_are_clear_errors(scripts, flag, value):
    """Found by schemathesis on /api/ask ("month must be in 1..12" was a 500); the CLI had the same traceback."""
    settings, _ = scripts
    with pytest.raises(AssistantError, match="give dates as YYYY-MM-DD"):
        Assistant(settings).ask("What did Mayor Veresova say?", filters={flag.strip("-").replace("since", "date_from")
                                                                 .replace("until", "date_to"): value})
    res = CliRunner().invoke(cli, ["ask", "--json", "--data-dir", str(settings.data_dir), flag, value,
                                   "What did Mayor Veresova say?"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("Error: invalid ") and value in line
