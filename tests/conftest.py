"""Shared fixtures: real embedder (loaded once), stores in temp dirs, servers on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SEED = CORPUS / "russia-snubs-iran.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate a server process, killing it when it does not exit in time."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def serve_in_thread(app):
    """Run an ASGI app with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


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


def start_chroma(path: Path, port: int) -> subprocess.Popen:
    """A real `chroma run` server on 127.0.0.1:port over `path`, accepting connections; stop_process ends it."""
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    proc = subprocess.Popen([exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 60, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


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
