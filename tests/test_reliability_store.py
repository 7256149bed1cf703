"""Reliability matrix, row 7: read-only data dir, Chroma server unreachable or killed mid-ingest
(docs/reliability.md)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.config import load_settings
from tests.support.chroma import start_chroma
from tests.support.ingest_runs import (
    check_store_consistent,
    expected_all,
    ingest_cmd,
    run_env,
    start_and_wait_for,
    write_articles,
)
from tests.support.net import free_port
from tests.support.paths import ROOT

ARTICLE = """Ferry service resumes after storm

The island ferry resumed its timetable on Thursday after three days of cancellations caused by the storm.
Operators said extra sailings would clear the backlog of passengers by the weekend.
"""
OTHER = ARTICLE.replace("Ferry service resumes", "Ferry fares rise").replace("resumed its timetable", "raised fares")


def assistant_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "assistant", *args]


def one_line_error(stderr: str) -> str:
    """The CLI's error: exactly one line starting with 'Error: ', no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.strip().splitlines() if not ln.startswith(("WARNING", "INFO", "DEBUG"))]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr[-3000:]
    return lines[0]


def can_mount_read_only(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    cmd = ["unshare", "-rm", "sh", "-c", f"mount --bind -o ro {probe} {probe} && touch {probe}/x"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode != 0 and "Read-only file system" in res.stderr


@pytest.mark.subprocess
def test_read_only_data_dir_is_a_clear_error_and_nothing_is_half_written(tmp_path):
    """A read-only bind mount in a private mount namespace: unlike chmod, it stops root too."""
    if shutil.which("unshare") is None or not can_mount_read_only(tmp_path):
        pytest.skip("cannot make a read-only bind mount here (needs user namespaces: unshare -rm)")
    data = tmp_path / "data"
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text(ARTICLE, encoding="utf-8")
    second.write_text(OTHER, encoding="utf-8")
    env = run_env()
    ok = subprocess.run(assistant_cmd("ingest", "--json", "--data-dir", str(data), str(first)), cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr

    def in_read_only(*args: str) -> subprocess.CompletedProcess:
        inner = " ".join(map(sh_quote, assistant_cmd(*args)))
        return subprocess.run(["unshare", "-rm", "sh", "-c", f"mount --bind -o ro {data} {data} && exec {inner}"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    res = in_read_only("ingest", "--json", "--data-dir", str(data), str(second))
    assert res.returncode == 1
    line = one_line_error(res.stderr)
    assert "data dir" in line and "(hint: " in line
    # the store stays readable: questions still answer from a read-only store, or fail with one clear line
    asked = in_read_only("ask", "--json", "--data-dir", str(data), "When did the ferry resume?")
    if asked.returncode == 0:
        assert json.loads(asked.stdout)["citations"]
    else:
        assert asked.returncode == 1 and one_line_error(asked.stderr)

    again = subprocess.run(assistant_cmd("ingest", "--json", "--data-dir", str(data), str(first), str(second)),
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["added"], report["unchanged"]) == (1, 1)
    check_store_consistent(load_settings(data_dir=str(data)), expected_all(first, second))


@pytest.mark.subprocess
def test_chmod_read_only_data_dir(tmp_path):
    """chmod as a normal user; root ignores permission bits, so there the test says so and skips."""
    data = tmp_path / "data"
    data.mkdir()
    article = tmp_path / "a.txt"
    article.write_text(ARTICLE, encoding="utf-8")
    data.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(data, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes (the unshare read-only mount test covers it)")
        res = subprocess.run(assistant_cmd("ingest", "--data-dir", str(data), str(article)), cwd=ROOT,
                             env=run_env(), capture_output=True, text=True, timeout=300)
        assert res.returncode == 1 and "data dir" in one_line_error(res.stderr)
    finally:
        data.chmod(0o755)


def sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


@pytest.mark.subprocess
def test_unreachable_chroma_server_is_a_clear_error(tmp_path):
    article = tmp_path / "a.txt"
    article.write_text(ARTICLE, encoding="utf-8")
    env = run_env(ASSISTANT_STORE__HOST="127.0.0.1", ASSISTANT_STORE__PORT=str(free_port()))  # nothing listens
    data = tmp_path / "data"
    for args in (("ingest", "--json", str(article)), ("ask", "Did the ferry resume?"), ("stats", "--json")):
        res = subprocess.run(assistant_cmd(*args[:1], "--data-dir", str(data), *args[1:]), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 1, (args, res.stdout, res.stderr[-2000:])
        line = one_line_error(res.stderr)
        assert "Chroma" in line and "127.0.0.1" in line and "(hint: start it with `chroma run" in line
        assert res.stdout == ""


@pytest.mark.slow
@pytest.mark.server
def test_chroma_server_killed_mid_ingest_then_rerun_after_restart(tmp_path):
    n = 60  # the server dies after 20: 40 still to store
    src = tmp_path / "articles.jsonl"
    write_articles(src, n, seed=7)
    data, server_dir, port = tmp_path / "data", tmp_path / "chroma-server", free_port()
    # The killed run cannot release its write lease (the server is gone): the rerun waits for it to expire,
    # 6 s here instead of the default 60 s.
    env = run_env(ASSISTANT_STORE__HOST="127.0.0.1", ASSISTANT_STORE__PORT=str(port),
                  ASSISTANT_INGEST__BATCH_ARTICLES="10", ASSISTANT_STORE__LEASE_SECONDS="6")
    server = start_chroma(server_dir, port)
    try:
        ingest, _ = start_and_wait_for(ingest_cmd(data, src), "stored ", env, min_done=20)
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        out, err = ingest.communicate(timeout=300)
        assert ingest.returncode == 1, err[-3000:]
        line = one_line_error(err)
        assert "Chroma" in line and f"127.0.0.1:{port}" in line
        assert "it expires in 6 s" in err  # the lease it could not release lasts store.lease_seconds
        assert out == ""
        assert (data / "ingest.journal").exists()

        server = start_chroma(server_dir, port)
        rerun = subprocess.run(ingest_cmd(data, src), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        report = json.loads(rerun.stdout)
        assert report["resumed"] and report["unchanged"] >= 20 and report["unchanged"] + report["added"] == n
        settings = load_settings(data_dir=str(data), **{"store.host": "127.0.0.1", "store.port": port})
        check_store_consistent(settings, expected_all(src))
    finally:
        server.kill()
        server.wait(30)


@pytest.mark.subprocess
def test_open_store_sees_ingests_made_by_another_process(tmp_path):
    """A server keeps its Store open while `assistant ingest` runs beside it: each later question sees the
    new articles (the embedded store is reopened when its files change), twice in a row."""
    from assistant.answering.chain import Assistant

    data = tmp_path / "data"
    first = tmp_path / "first.md"
    first.write_text(ARTICLE, encoding="utf-8")
    settings = load_settings(data_dir=str(data))
    env = run_env()
    res = subprocess.run(assistant_cmd("--data-dir", str(data), "ingest", str(first)), cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    server = Assistant(settings)
    assert server.store.count() == 1
    assert server.ask("When did the island ferry resume its timetable?").citations[0].title == \
        "Ferry service resumes after storm"

    for i, (title, fact) in enumerate([("Lighthouse keeper retires", "the lighthouse keeper retired on Monday"),
                                       ("Harbour dredging begins", "dredging of the harbour began on Tuesday")]):
        path = tmp_path / f"new{i}.md"
        path.write_text(f"{title}\n\nOfficials said {fact} after forty years of service to the island.\n",
                        encoding="utf-8")
        res = subprocess.run(assistant_cmd("--data-dir", str(data), "ingest", str(path)), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        assert server.store.count() == 2 + i
        answer = server.ask(f"What happened when {fact.split(' on ')[0]}?")
        assert not answer.refused and answer.citations[0].title == title, answer
