"""The audit trail (issue 23 part 4): who ingested, deleted, restored, added or removed a source, and when, kept in
the store beside the change log; questions only when `server.log_questions` is set, pruned past their retention."""

from __future__ import annotations

import getpass
import json
import shutil
import time
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from assistant.answering.chain import Assistant
from assistant.cli import cli
from assistant.config import load_settings
from assistant.errors import ConfigError
from assistant.index.archive import Archive
from assistant.index.audit import AuditLog
from assistant.ingest.ingestor import Ingestor
from assistant.web.api import create_app
from tests.support.answers import sse_events
from tests.support.feeds_site import Site, serve_newsroom
from tests.support.net import serve_in_thread

ADMIN = "audit-admin-token-7"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
KEYS = {"at", "actor", "action", "target", "detail"}
QUESTION = "What did Peskov say about BRICS?"  # the seed article answers it
FEED = "https://calder-gazette.example/rss.xml"
ARTICLE = {"title": "Calder ferry fares rise by a fifth", "source": "Calder Gazette", "published_at": "2025-06-02",
           "body": "The Calder ferry company raised its fares by a fifth on Monday, citing fuel costs. "
                   "Commuters on the Osk crossing said the rise would cost them forty crowns a month. " * 2}
ME = f"cli:{getpass.getuser()}"


def _settings(data_dir, **server):
    return load_settings(data_dir=str(data_dir), **{
        "server.admin_token": ADMIN, "server.allowed_hosts": ["testserver"], "server.rate_limit_per_minute": 1000,
        **{f"server.{k}": v for k, v in server.items()}})


@pytest.fixture
def data_dir(corpus_data_dir, tmp_path):
    """A writable copy of the session's corpus store."""
    target = tmp_path / "data"
    shutil.copytree(corpus_data_dir, target)
    return target


class SetActor:
    """What the sign-in work's access policy does for a signed-in user: `request.state.actor`."""

    def __init__(self, app, actor: str):
        self.app, self.actor = app, actor

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope.setdefault("state", {})["actor"] = self.actor
        await self.app(scope, receive, send)


def _app(assistant: Assistant, actor: str | None = None):
    app = create_app(assistant.settings, assistant)
    if actor:
        app.add_middleware(SetActor, actor=actor)
    return app


def _ticking(start: float):
    """A clock that moves one second each time it is read (entries get distinct times); `now[0]` sets it."""
    now = [start]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    return clock, now


def run_audit(data_dir, *args: str):
    return CliRunner().invoke(cli, ["audit", "--data-dir", str(data_dir), *args])


def audit_json(data_dir, *args: str) -> list[dict]:
    res = run_audit(data_dir, "--json", *args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"entries"}
    return out["entries"]


def test_the_trail_stays_out_of_the_change_log_and_the_keyword_index(data_dir):
    settings = load_settings(data_dir=str(data_dir))
    archive = Archive(settings)
    archive.lexical.sync()
    head, tombstones = archive.store.change_head(), archive.store.deletions_since(0)
    archive.audit.clock, _ = _ticking(time.time())
    for i in range(3):
        archive.audit.record("cli:tester", "ingest", f"batch {i}", "added 1")
    assert archive.store.change_head() == head and archive.store.deletions_since(0) == tombstones
    again = archive.lexical.sync()
    assert (again.upserted, again.deleted) == (0, 0) and archive.lexical.status()["in_step"]
    # a deletion after them: its tombstones are read as before (an entry read as one would fail here)
    aid = next(iter(archive.store.manifest()))
    chunk_ids = archive.store.chunk_ids(aid)
    assert Ingestor(settings, archive).delete(aid) == len(chunk_ids) > 0
    assert sorted(cid for cid, _ in archive.store.deletions_since(head or 0)) == sorted(chunk_ids)
    assert archive.lexical.status()["in_step"] and len(archive.lexical) == archive.store.count()
    assert [e.target for e in archive.audit.entries(2)] == ["batch 2", "batch 1"]  # newest first
    # every process of this store reads the same trail: another Archive on it, as `assistant audit` is
    assert [e["target"] for e in audit_json(data_dir)] == ["batch 2", "batch 1", "batch 0"]


def test_a_cli_ingest_is_recorded_with_who_ran_it(tmp_path):
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "ferry.json").write_text(json.dumps(ARTICLE), encoding="utf-8")
    data = tmp_path / "data"
    assert run_audit(data).stdout == ""  # nothing yet (and no error on a store never written)
    for _ in range(2):
        res = CliRunner().invoke(cli, ["ingest", "--json", "--data-dir", str(data), str(folder)])
        assert res.exit_code == 0, res.output
    second, first = audit_json(data)
    assert set(first) == KEYS
    assert (first["actor"], first["action"], first["target"]) == (ME, "ingest", str(folder))
    assert first["detail"] == "added 1, updated 0, unchanged 0, failed 0, skipped 0"
    assert second["detail"] == "added 0, updated 0, unchanged 1, failed 0, skipped 0"  # the run is recorded too
    at = datetime.strptime(first["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(at.timestamp() - time.time()) < 300 and second["at"] >= first["at"]
    plain = run_audit(data).stdout.splitlines()
    assert plain == [f"{e['at']}  {ME}  ingest  {folder}  {e['detail']}" for e in (second, first)]


def test_api_ingest_and_delete_name_the_user_or_the_token(data_dir):
    """The access policy names the caller: an admin's personal key by its user, the admin token as such."""
    assistant = Assistant(_settings(data_dir))
    alice = {"Authorization": f"Bearer {assistant.archive.users.add('alice', 'admin')}"}
    with TestClient(_app(assistant)) as c:
        r = c.post("/api/articles", json=ARTICLE, headers=alice)
        assert r.status_code == 200, r.text
        [aid] = r.json()["ids"]
        chunks = assistant.store.chunk_ids(aid)
        assert c.delete(f"/api/articles/{aid}", headers=alice).status_code == 200
        assert c.delete(f"/api/articles/{aid}", headers=alice).status_code == 404  # nothing changed: no entry
        assert c.post("/api/articles", json={"title": "no body"}, headers=alice).status_code in (400, 422)
    with TestClient(_app(assistant)) as c:  # the admin token
        r = c.post("/api/articles", json={**ARTICLE, "title": "Osk crossing reopens"}, headers=AUTH)
        [other] = r.json()["ids"]
    entries = assistant.archive.audit.entries()
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("admin token", "ingest", other), ("alice", "delete", aid), ("alice", "ingest", aid)]
    assert entries[2].detail == f"added 1, updated 0, unchanged 0, failed 0, skipped 0: {ARTICLE['title']}"
    assert entries[1].detail == f"{ARTICLE['title']} ({len(chunks)} chunks)"
    assert entries[0].detail.endswith(": Osk crossing reopens")


def test_source_additions_and_removals_are_recorded(data_dir):
    assistant = Assistant(_settings(data_dir))
    with TestClient(_app(assistant, actor="admin token")) as c:
        r = c.post("/api/sources", json={"url": FEED, "kind": "feed", "interval": 600}, headers=AUTH)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert c.post("/api/sources", json={"url": "ftp://x.example/feed"}, headers=AUTH).status_code == 400
        assert c.delete(f"/api/sources/{sid}", headers=AUTH).status_code == 200
        assert c.delete(f"/api/sources/{sid}", headers=AUTH).status_code == 404
    assert [(e["actor"], e["action"], e["target"], e["detail"]) for e in audit_json(data_dir)] == [
        ("admin token", "source.remove", FEED, f"id {sid}"), ("admin token", "source.add", FEED, "feed, every 600 s")]


def test_audit_prints_untrusted_fields_as_text_and_json_as_the_exact_data(data_dir):
    archive = Archive(load_settings(data_dir=str(data_dir)))
    archive.audit.clock, _ = _ticking(time.time())
    hostile = "Harbour \x1b[2J\x1b]0;owned\x07 fees\r\nrise \u202eevil\u202c \x9b31m red"
    archive.audit.record("cli:tester", "delete", "art-1", hostile)
    archive.audit.record("alice", "source.add", FEED)
    res = run_audit(data_dir, "--json")
    assert not any(ch in res.stdout for ch in "\x1b\x07\r\x9b\u202e")  # raw, they would act on the terminal
    newest, oldest = json.loads(res.stdout)["entries"]
    assert oldest["detail"] == hostile and (newest["target"], newest["detail"]) == (FEED, "")  # the data itself
    plain = run_audit(data_dir)
    assert plain.exit_code == 0 and plain.stderr == ""
    lines = plain.stdout.splitlines()
    assert lines == [f"{newest['at']}  alice  source.add  {FEED}",
                     f"{oldest['at']}  cli:tester  delete  art-1  Harbour  [2J ]0;owned  fees rise  evil   31m red"]


def test_limit_keeps_the_newest_and_bad_limits_are_usage_errors(data_dir):
    archive = Archive(load_settings(data_dir=str(data_dir)))
    archive.audit.clock, _ = _ticking(time.time())
    for i in range(4):
        archive.audit.record("cli:tester", "delete", f"art-{i}")
    assert [e["target"] for e in audit_json(data_dir, "--limit", "2")] == ["art-3", "art-2"]
    assert len(audit_json(data_dir)) == 4
    for bad in ("-1", "0", "abc"):
        res = run_audit(data_dir, "--limit", bad)
        assert res.exit_code == 2 and res.stdout == "", (bad, res.output)
        assert "Error: Invalid value for '--limit'" in res.stderr and "Traceback" not in res.output


def test_questions_are_not_recorded_by_default(data_dir):
    assistant = Assistant(_settings(data_dir))
    assert assistant.settings.server.log_questions is False
    with TestClient(_app(assistant, actor="alice")) as c:
        assert c.post("/api/ask", json={"question": QUESTION}).status_code == 200
        stream = c.post("/api/ask/stream", json={"question": QUESTION})
        assert [e for e, _ in sse_events(stream.text)][-1] == "done"
        r = c.post("/v1/chat/completions", json={"model": "newsroom-articles",
                                                  "messages": [{"role": "user", "content": QUESTION}]})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    assert assistant.archive.audit.export() == []  # nothing at all in the store
    res = run_audit(data_dir)
    assert res.exit_code == 0 and res.stdout == "" and QUESTION not in res.output


def test_questions_are_recorded_when_on_and_pruned_past_their_retention(data_dir):
    assistant = Assistant(_settings(data_dir, log_questions=True, question_retention_days=7))
    trail = assistant.archive.audit
    t0 = time.time()
    trail.clock, now = _ticking(t0)
    with TestClient(_app(assistant, actor="bob")) as c:
        assert c.post("/api/ask", json={"question": QUESTION}).status_code == 200
        c.post("/api/ask/stream", json={"question": "Who is Dmitry Peskov?"})
        c.post("/v1/chat/completions", json={"model": "newsroom-articles", "messages": [
            {"role": "user", "content": "Did Russia offer Iran military help?"}]})
        assert c.post("/api/ask", json={"question": "   "}).status_code == 400  # not a question: not recorded
    trail.record("cli:tester", "ingest", "corpus/", "added 0")
    assert [(e.actor, e.action, e.target, e.detail) for e in trail.entries()] == [
        ("cli:tester", "ingest", "corpus/", "added 0"),
        ("bob", "ask", "/v1/chat/completions", "Did Russia offer Iran military help?"),
        ("bob", "ask", "/api/ask/stream", "Who is Dmitry Peskov?"),
        ("bob", "ask", "/api/ask", QUESTION)]
    assert f"  bob  ask  /api/ask  {QUESTION}" in run_audit(assistant.settings.data_dir).stdout  # shown when there

    now[0] = t0 + 5 * 86400  # five days on, one more question
    with TestClient(_app(assistant)) as c:
        assert c.post("/api/ask", json={"question": "What is BRICS?"}).status_code == 200
    now[0] = t0 + 8 * 86400  # the first three are past the 7 days, the last is not
    reader = AuditLog(assistant.store.chroma, question_retention_days=7, clock=lambda: now[0])
    shown = [(e.action, e.detail) for e in reader.entries()]
    assert shown == [("ask", "What is BRICS?"), ("ingest", "added 0")]  # expired: never shown, even unpruned
    assert len([m for _, m in trail.export() if m["action"] == "ask"]) == 4  # ... but still stored
    trail.record("cli:tester", "delete", "art-9")  # a write prunes them
    stored = [(m["action"], m["detail"], m["actor"]) for _, m in trail.export()]
    assert stored == [("ingest", "added 0", "cli:tester"), ("ask", "What is BRICS?", "anonymous (testclient)"),
                      ("delete", "", "cli:tester")]


def test_chat_questions_are_recorded_with_the_signed_in_user(data_dir):
    """The Gradio chat's /ask and /chat (what the page's textbox runs, through Gradio's queue) with log_questions:
    the actor the access policy set reaches them too."""
    from gradio_client import Client

    assistant = Assistant(_settings(data_dir, log_questions=True, allowed_hosts=["127.0.0.1"]))
    with serve_in_thread(_app(assistant, actor="carol")) as url:
        client = Client(f"{url}/", verbose=False)
        answer, _ = client.predict(QUESTION, api_name="/ask")
        assert "[1]" in answer
        client.predict("Who is Dmitry Peskov?", [], api_name="/chat")
    asks = {(e.actor, e.target, e.detail) for e in assistant.archive.audit.entries() if e.action == "ask"}
    assert asks == {("carol", "chat", QUESTION), ("carol", "chat", "Who is Dmitry Peskov?")}


def test_only_watcher_rounds_that_change_the_archive_are_recorded(tmp_path):
    with Site() as site:
        serve_newsroom(site)
        cfg = tmp_path / "assistant.toml"
        cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n\n[fetch]\nper_host_delay = 0\n\n'
                       f'[[sources]]\nurl = "{site.base}/rss.xml"\n')
        rounds = [CliRunner().invoke(cli, ["--config", str(cfg), "watch", "--once", "--json"]) for _ in range(2)]
    assert [r.exit_code for r in rounds] == [0, 0], rounds[0].output
    assert [json.loads(r.stdout)["added"] for r in rounds] == [2, 0]  # the second round finds nothing new
    [entry] = audit_json(tmp_path / "data")
    assert (entry["actor"], entry["action"], entry["target"]) == ("watcher", "ingest", f"{site.base}/rss.xml")
    assert entry["detail"].startswith("added 2, updated 0, unchanged 0")


def test_a_restore_carries_the_trail_and_is_recorded(data_dir, tmp_path):
    archive = Archive(load_settings(data_dir=str(data_dir)))
    archive.audit.record("alice", "delete", "art-1", "Harbour fees")
    backup_file = tmp_path / "archive.jsonl.gz"
    assert CliRunner().invoke(cli, ["backup", "--data-dir", str(data_dir), str(backup_file)]).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    for _ in range(2):  # restoring twice duplicates nothing
        res = CliRunner().invoke(cli, ["restore", "--data-dir", str(elsewhere), str(backup_file)])
        assert res.exit_code == 0, res.output
    entries = audit_json(elsewhere)
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        (ME, "restore", str(backup_file)), (ME, "restore", str(backup_file)), ("alice", "delete", "art-1")]
    assert entries[0]["detail"].endswith("1 audit entries, change " + str(archive.store.change_head()))
    assert [e["target"] for e in audit_json(data_dir)] == ["art-1"]  # the backup itself changes nothing


def test_question_retention_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="question_retention_days"):
        load_settings(data_dir=str(tmp_path), **{"server.question_retention_days": 0})
