"""The ollama engine through the chain, against a scripted server speaking Ollama's own protocol
(`POST /api/chat`, NDJSON lines when streaming), as tests/support/scripted_llm.py does for the OpenAI protocol."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assistant.answering.chain import Assistant
from assistant.config import load_settings
from tests.support.callbacks import Recorder
from tests.support.net import serve_forever_in_thread

QUESTION = "Did Russia offer Iran military help?"


class ScriptedOllama:
    """Queued replies (text, or an int HTTP status) for /api/chat; `history` holds the request bodies."""

    def __init__(self) -> None:
        self.replies: list[str | int] = []
        self.history: list[dict] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path != "/api/chat":
                    return self._send(404, b'{"error": "not found"}', "application/json")
                scripted.history.append(body)
                reply = scripted.replies.pop(0) if scripted.replies else 500
                if isinstance(reply, int):
                    return self._send(reply, b'{"error": "scripted failure"}', "application/json")
                model = body.get("model", "m")
                if body.get("stream", True):
                    pieces = [reply[i:i + 9] for i in range(0, len(reply), 9)]
                    lines = [{"model": model, "created_at": "2025-06-03T10:00:00Z",
                              "message": {"role": "assistant", "content": p}, "done": False} for p in pieces]
                    lines.append({"model": model, "created_at": "2025-06-03T10:00:01Z",
                                  "message": {"role": "assistant", "content": ""}, "done": True,
                                  "done_reason": "stop", "prompt_eval_count": 1, "eval_count": len(pieces)})
                    data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
                    return self._send(200, data, "application/x-ndjson")
                done = {"model": model, "created_at": "2025-06-03T10:00:00Z", "done": True, "done_reason": "stop",
                        "message": {"role": "assistant", "content": reply}}
                return self._send(200, json.dumps(done).encode(), "application/json")

            def _send(self, status, data, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        serve_forever_in_thread(self.server)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def ollama():
    server = ScriptedOllama()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def ollama_assistant(corpus_assistant, corpus_data_dir, ollama):
    ollama.replies.clear()
    ollama.history.clear()
    settings = load_settings(data_dir=str(corpus_data_dir), **{
        "answer.engine": "ollama", "llm.ollama_base_url": ollama.base_url, "llm.model": "qwen-test",
        "llm.timeout": 5.0})
    return Assistant(settings, archive=corpus_assistant.archive)


def test_ollama_engine_answers_through_the_chain_with_citations(ollama_assistant, ollama):
    n = next(i for i, p in enumerate(ollama_assistant.retriever.retrieve(QUESTION).passages, 1)
             if "will not intervene militarily" in p.text)
    ollama.replies.append(f"No. Moscow has made clear it will not intervene militarily on Iran's behalf [{n}].")
    recorder = Recorder()
    chunks = list(ollama_assistant.chain.stream({"question": QUESTION}, {"callbacks": [recorder]}))
    deltas = [c["delta"] for c in chunks if "delta" in c]
    assert len(deltas) > 2  # the NDJSON lines arrive as separate deltas
    final = chunks[-1]
    assert not final["refused"] and final["answer"].endswith("[1].")
    assert "will not intervene militarily" in final["citations"][0]["quote"]
    [request] = ollama.history
    assert request["model"] == "qwen-test" and request["stream"] is True
    system, user = request["messages"]
    assert system["role"] == "system" and f"Question: {QUESTION}" in user["content"]
    [root] = recorder.roots()
    assert recorder.under(root, "retriever") == ["NewsRetriever"] and len(recorder.under(root, "chat_model")) == 1


def test_ollama_server_failure_gives_the_notice_and_the_extractive_answer(ollama_assistant, ollama,
                                                                           corpus_assistant):
    ollama.replies.append(500)
    events = list(ollama_assistant.stream(QUESTION))
    notices = [e.text for e in events if e.kind == "notice"]
    assert len(notices) == 1 and "ollama model server" in notices[0] and "extractive answer instead" in notices[0]
    answer = events[-1].answer
    assert answer.answer == corpus_assistant.ask(QUESTION).answer and answer.citations


def test_ollama_condenses_a_follow_up(ollama_assistant, ollama):
    standalone = "Did China offer Iran military help after the strikes?"
    n = next(i for i, p in enumerate(ollama_assistant.retriever.retrieve(standalone).passages, 1)
             if "Wang Yi" in p.text)
    ollama.replies.extend([standalone, f"Chinese Foreign Minister Wang Yi and Russian Foreign Minister Sergei "
                                       f"Lavrov condemned the large-scale US and Israeli attacks on Iran [{n}]."])
    answer = ollama_assistant.ask("And China?", [(QUESTION, "No, Moscow will not intervene [1].")])
    condense, answer_request = ollama.history
    assert "Last question: And China?" in condense["messages"][-1]["content"]
    assert f"Question: {standalone}" in answer_request["messages"][1]["content"]
    assert not answer.refused and "Wang Yi" in answer.citations[0].quote
