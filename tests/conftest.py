"""Shared fixtures: real embedder (loaded once), stores in temp dirs, servers on free loopback ports."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.chroma import start_chroma
from tests.support.net import free_port, stop_process
from tests.support.paths import CORPUS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# Tests taking these fixtures run a server in a subprocess: marked `server` (`make test-fast` leaves them out).
SERVER_FIXTURES = {"chroma_server", "redis_server"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)


@pytest.fixture
def make_settings(tmp_path):
    """Settings with a fresh data dir; keyword overrides use dotted keys."""
    from assistant.config import load_settings

    def make(data_dir: Path | None = None, **overrides):
        return load_settings(data_dir=str(data_dir or tmp_path / "data"), **overrides)

    return make


@pytest.fixture(scope="session")
def corpus_data_dir(tmp_path_factory) -> Path:
    """A data dir with corpus/ ingested once for the whole session (read-only use)."""
    from assistant.config import load_settings
    from assistant.ingest.ingestor import Ingestor

    data_dir = tmp_path_factory.mktemp("corpus-store")
    report = Ingestor(load_settings(data_dir=str(data_dir))).ingest_paths([CORPUS])
    assert report.added >= 1 and not report.failed
    return data_dir


@pytest.fixture(scope="session")
def corpus_assistant(corpus_data_dir):
    from assistant.answering.chain import Assistant
    from assistant.config import load_settings

    return Assistant(load_settings(data_dir=str(corpus_data_dir)))


@pytest.fixture
def chroma_server(tmp_path):
    """A real `chroma run` server on a free loopback port; yields (host, port)."""
    port = free_port()
    proc = start_chroma(tmp_path / "chroma-server", port)
    try:
        yield "127.0.0.1", port
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server on a free loopback port for the session (see tests/support/redis.py)."""
    from tests.support.redis import RedisServer

    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (make test-deps installs Debian's redis-server)")
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server):
    """The session's redis-server, emptied for this test."""
    from tests.support.redis import redis_command

    assert redis_command(redis_server.port, "FLUSHALL").startswith(b"+OK")
    return redis_server


@pytest.fixture(scope="session")
def scripted_llm_server():
    """One scripted OpenAI-compatible server for the session (see tests/support/scripted_llm.py)."""
    from tests.support.scripted_llm import ScriptedLLM

    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture
def llm(scripted_llm_server):
    """The scripted server with an empty queue and history for this test."""
    scripted_llm_server.reset()
    yield scripted_llm_server
    scripted_llm_server.reset()


@pytest.fixture
def chat_assistant(corpus_assistant, corpus_data_dir, llm):
    """An Assistant over the corpus whose answer engine is the scripted server (openai engine)."""
    from assistant.answering.chain import Assistant
    from assistant.config import load_settings

    def make(**overrides):
        values = {"answer.engine": "openai", "llm.base_url": llm.base_url, "llm.timeout": 5.0,
                  "llm.max_retries": 0, **overrides}
        return Assistant(load_settings(data_dir=str(corpus_data_dir), **values), archive=corpus_assistant.archive)

    return make
