"""Correct under concurrency (issue 15 part 3): readers never see half a keyword-index change, a reopen of the
embedded store never closes a client another thread is using and keeps one path spelling, and a served
archive answers every request while articles are ingested in-process (admin API) and by another process,
embedded and on a Chroma server.

Fictional articles only (invented towns, outlets and people; `.example` URLs)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from assistant.index.lexical import LexicalIndex
from tests.support.archives import FakeStore, article, chunk, write_jsonl
from tests.support.net import serve_in_thread
from tests.support.paths import ROOT

ADMIN = "scale-admin-token"


# -- the keyword index: one snapshot per query ---------------------------------------------------------

def test_readers_see_whole_commits_while_a_writer_syncs(tmp_path):
    """Each write adds a pair of chunks (one 'Velmora', one 'Quillby') in one change; a reader filtering on
    one outlet must only ever get whole pairs' halves of that outlet, never an error, while another thread
    commits 15 changes."""
    src = FakeStore()
    src.write({"p0:v": chunk("Velmora pier", "pier works", 20250101, "Velmora Courier"),
               "p0:q": chunk("Quillby pier", "pier works", 20250101, "Quillby Post")})
    index = LexicalIndex(tmp_path / "lex", source=src)
    index.sync()
    index.SYNC_SECONDS = 0  # every query may sync: the most interleaving
    writes, readers = 15, 4
    start = threading.Barrier(readers + 1)
    done = threading.Event()
    errors: list[BaseException] = []
    seen_counts: list[int] = []

    def read():
        start.wait()
        try:
            while not done.is_set():
                hits = index.search("pier works", 100, index.mask(sources=["quillby"]))
                assert all(cid.endswith(":q") for cid, _ in hits), hits
                n = len(index)
                assert n % 2 == 0, n  # a change is two chunks: never half of one
                seen_counts.append(n)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=read) for _ in range(readers)]
    for t in threads:
        t.start()
    start.wait()
    writer = LexicalIndex(tmp_path / "lex", source=src)
    for i in range(1, writes + 1):
        src.write({f"p{i}:v": chunk("Velmora pier", "pier works", 20250101, "Velmora Courier"),
                   f"p{i}:q": chunk("Quillby pier", "pier works", 20250101, "Quillby Post")})
        writer.sync()
    deadline = time.monotonic() + 20
    while len(index) != 2 * (writes + 1):  # the readers' index reaches the last commit
        assert time.monotonic() < deadline
        time.sleep(0.01)
    done.set()
    for t in threads:
        t.join(20)
    assert not errors, errors[:3]
    assert seen_counts and len(index.search("pier works", 100, index.mask(sources=["quillby"]))) == writes + 1


# -- the embedded store: reopen --------------------------------------------------------------------------

def _touch(path):
    """What another process's write looks like to this one: the store files changed."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


@pytest.fixture
def small_store(make_settings, tmp_path):
    from assistant.ingest.ingestor import Ingestor
    from assistant.ingest.loaders import load_paths

    settings = make_settings()
    ing = Ingestor(settings)
    ing.ingest_articles(load_paths([write_jsonl(tmp_path / "a.jsonl", [article(i, "Corrowby") for i in range(2)])])
                        .articles)
    return settings, ing.store


def _spellings(settings) -> list[str]:
    from chromadb.api.shared_system_client import SharedSystemClient

    root = str(settings.data_dir / "chroma")
    return [k for k in SharedSystemClient._identifier_to_system if k.startswith(root)]


def test_reopens_keep_one_path_spelling(small_store):
    """Old code: every reopen registered the folder under a longer spelling (`chroma/./././.`...)."""
    settings, store = small_store
    db = settings.data_dir / "chroma" / "chroma.sqlite3"
    n = store.count()
    for _ in range(12):
        _touch(db)
        assert store.count() == n
    spellings = _spellings(settings)
    assert len(spellings) <= 2 and all(s.count("/.") <= 1 for s in spellings), spellings


def test_a_reopen_never_closes_a_client_in_use(small_store, monkeypatch):
    """A reader thread is inside a Chroma call when another thread sees the files change and reopens. Old code
    closed the client under the reader (AttributeError / 'NoneType' during a reopen, the HTTP 500s of the
    issue); now the retired client is closed by the last call out."""
    from chromadb.api.models.Collection import Collection

    settings, store = small_store
    db = settings.data_dir / "chroma" / "chroma.sqlite3"
    _touch(db)
    expected = store.count()  # the current client is now one the store opened itself
    inside, release = threading.Event(), threading.Event()
    original = Collection.count

    def count(self):
        if threading.current_thread().name == "reader":
            inside.set()
            assert release.wait(30)
        return original(self)

    monkeypatch.setattr(Collection, "count", count)
    result: list = []

    def reader():
        try:
            result.append(store.count())
        except BaseException as e:  # noqa: BLE001
            result.append(e)

    t = threading.Thread(target=reader, name="reader")
    t.start()
    assert inside.wait(30)
    in_use = getattr(getattr(store.chroma, "_embedded", None), "current", None)  # the handle the reader holds
    _touch(db)
    assert store.count() == expected  # this thread reopens meanwhile
    still_open = in_use is not None and not getattr(in_use.client, "_closed", False)
    release.set()
    t.join(30)
    assert result == [expected]  # old code: the reader's call failed on the client closed under it
    assert still_open and in_use.retired and store.chroma._embedded.current is not in_use
    assert in_use.users == 0 and getattr(in_use.client, "_closed", True)  # closed by the last call out


def test_a_reader_never_gets_a_half_reopened_store(small_store, monkeypatch):
    """The issue's HTTP 500s ('NoneType' object has no attribute 'count'): reader B had checked the store
    files, reader A then saw them change and reopened (the collection reset to None), and B went on with
    None. Replayed in that order: B pauses right after looking at the files until A is inside its reopen
    (or 3 s have passed: now B holds the store's handle lock there, so A cannot get in)."""
    import pathlib

    from chromadb.api.client import Client

    settings, store = small_store
    db = settings.data_dir / "chroma" / "chroma.sqlite3"
    vec = store.embedder.embed(["Corrowby canal lock"])[0]
    _touch(db)
    expected = store.count()  # the current client is one the store opened itself (the old code closes those)
    b_paused, a_reopening, b_done = threading.Event(), threading.Event(), threading.Event()
    armed = [True]
    stat, close = pathlib.Path.stat, Client.close

    def paused_stat(self, *args, **kwargs):
        out = stat(self, *args, **kwargs)
        if threading.current_thread().name == "B" and self.name == "chroma.sqlite3" and armed[0]:
            armed[0] = False
            b_paused.set()
            a_reopening.wait(3)
        return out

    def paused_close(self):
        if threading.current_thread().name == "A":
            a_reopening.set()
            b_done.wait(3)
        return close(self)

    monkeypatch.setattr(pathlib.Path, "stat", paused_stat)
    monkeypatch.setattr(Client, "close", paused_close)
    results: dict[str, object] = {}

    def run(name, fn):
        try:
            results[name] = fn()
        except BaseException as e:  # noqa: BLE001
            results[name] = e
        finally:
            if name == "B":
                b_done.set()

    b = threading.Thread(target=run, args=("B", lambda: store.dense_search(vec, 1)), name="B")
    b.start()
    assert b_paused.wait(30)
    _touch(db)  # another process wrote meanwhile
    a = threading.Thread(target=run, args=("A", store.count), name="A")
    a.start()
    a.join(60)
    b.join(60)
    assert isinstance(results["B"], list) and len(results["B"]) == 1, results["B"]
    assert results["A"] == expected


def test_store_calls_from_many_threads_across_reopens(small_store):
    settings, store = small_store
    db = settings.data_dir / "chroma" / "chroma.sqlite3"
    vec = store.embedder.embed(["Corrowby canal lock"])[0]
    start, errors = threading.Barrier(5), []

    def work():
        start.wait()
        try:
            for _ in range(15):
                assert store.dense_search(vec, 2)
                assert store.vectors([f"{p.chunk_id}" for p in store.dense_search(vec, 1)])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    start.wait()
    for _ in range(15):
        _touch(db)
        store.count()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert len(_spellings(settings)) <= 2


# -- serving while ingesting: embedded and on a Chroma server ----------------------------------------------

def _ingest_env(**extra) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


def _serve_and_ingest(settings, tmp_path, other_dir, env) -> None:
    """4 clients ask the served app while 2 articles arrive through its admin API and 2 through `assistant
    ingest` processes one after another; every request must succeed, every new article be found."""
    import httpx

    from assistant.answering.chain import Assistant
    from assistant.web.api import create_app

    assistant = Assistant(settings)
    questions = ["What did lockkeeper Idris Vantol1 say?", "When do boats leave the Corrowby basin?",
                 "Which canal lock did the council vote on?"]
    statuses: list[int] = []
    errors: list[str] = []
    stop = threading.Event()
    with serve_in_thread(create_app(settings, assistant)) as base:
        def client(i):
            with httpx.Client(base_url=base, timeout=60) as c:
                n = 0
                while not stop.is_set() and n < 200:
                    try:
                        r = c.post("/api/ask", json={"question": questions[(i + n) % len(questions)]})
                        statuses.append(r.status_code)
                        if r.status_code != 200:
                            errors.append(f"{r.status_code} {r.text[:300]}")
                    except Exception as e:  # noqa: BLE001
                        errors.append(repr(e))
                    n += 1
                    stop.wait(0.05)  # steady asking, leaving the ingest processes CPU on 2 cores

        clients = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in clients:
            t.start()
        files = [write_jsonl(tmp_path / f"late{i}.jsonl", [article(40 + i, "Fennaway")]) for i in range(2)]
        procs_ok = []

        def other_process():
            for f in files:
                out = subprocess.run([sys.executable, "-m", "assistant", "ingest", "--data-dir", str(other_dir),
                                      str(f)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
                procs_ok.append(out.returncode == 0 or out.stderr[-1500:])

        proc_thread = threading.Thread(target=other_process)
        proc_thread.start()
        with httpx.Client(base_url=base, timeout=120,
                          headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
            for i in range(2):
                r = admin.post("/api/articles", json=article(60 + i, "Dunmarrow"))
                assert r.status_code == 200, r.text
        proc_thread.join(300)
        stop.set()
        for t in clients:
            t.join(120)
    assert procs_ok == [True, True], procs_ok
    assert not errors, errors[:5]
    assert len(statuses) >= 8
    # every article is found by keyword search within seconds (the server's index follows the store)
    deadline = time.monotonic() + 10
    for i, town in [(40, "Fennaway"), (41, "Fennaway"), (60, "Dunmarrow"), (61, "Dunmarrow")]:
        while not assistant.lexical.search(f"Vantol{i} {town}", 1):
            assert time.monotonic() < deadline, f"article {i} never reached the keyword index"
            time.sleep(0.1)
        passages = assistant.retriever.retrieve(f"What did lockkeeper Idris Vantol{i} say about {town}?").passages
        assert f"Vantol{i}" in passages[0].text


@pytest.mark.subprocess
def test_serving_while_ingesting_embedded(make_settings, small_store, tmp_path):
    settings, _ = small_store
    settings = make_settings(settings.data_dir, **{"server.admin_token": ADMIN,
                                                   "server.rate_limit_per_minute": 100000})
    _serve_and_ingest(settings, tmp_path, settings.data_dir, _ingest_env())


@pytest.mark.subprocess
def test_serving_while_ingesting_on_a_chroma_server(make_settings, tmp_path, chroma_server):
    host, port = chroma_server
    server = {"store.host": host, "store.port": port}
    from assistant.ingest.ingestor import Ingestor
    from assistant.ingest.loaders import load_paths

    Ingestor(make_settings(tmp_path / "ingest-host", **server)).ingest_articles(
        load_paths([write_jsonl(tmp_path / "a.jsonl", [article(i, "Corrowby") for i in range(2)])]).articles)
    settings = make_settings(tmp_path / "serve-host", **server, **{"server.admin_token": ADMIN,
                                                                    "server.rate_limit_per_minute": 100000})
    _serve_and_ingest(settings, tmp_path, tmp_path / "ingest-host",
                      _ingest_env(ASSISTANT_STORE__HOST=host, ASSISTANT_STORE__PORT=str(port)))
