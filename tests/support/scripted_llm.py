"""A scripted OpenAI-compatible chat server on 127.0.0.1: tests enqueue replies and read recorded requests."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.net import serve_forever_in_thread


@dataclass
class Fault:
    """A scripted failure: HTTP status with a body, a delay before answering, or a malformed stream."""

    status: int | None = None
    delay: float = 0.0
    malformed: bool = False


class ScriptedLLM:
    """`/v1/chat/completions` answering queued replies as JSON, or as SSE chunks when the request streams."""

    def __init__(self) -> None:
        self.replies: list[str | Fault] = []
        self.history: list[dict] = []  # request bodies, in order
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = serve_forever_in_thread(self.server, start=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def enqueue(self, *replies: str | Fault) -> None:
        with self._lock:
            self.replies.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.history.clear()

    def start(self) -> ScriptedLLM:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next(self, body: dict) -> str | Fault:
        with self._lock:
            self.history.append(body)
            return self.replies.pop(0) if self.replies else Fault(status=500)

    def _handler(self):
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802
                if not self.path.endswith("/chat/completions"):
                    self._json(404, {"error": {"message": "not found"}})
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                reply = scripted._next(body)
                if isinstance(reply, Fault):
                    if reply.delay:
                        time.sleep(reply.delay)
                    if reply.status:
                        self._json(reply.status, {"error": {"message": "scripted server error", "type": "server"}})
                        return
                    if reply.malformed:
                        good = json.dumps(_chunk("m", {"content": "Partial answer"})).encode()
                        self._sse([b"data: " + good, b"data: this is not json"])
                        return
                    reply = ""
                model = body.get("model", "scripted")
                if body.get("stream"):
                    pieces = [reply[i:i + 7] for i in range(0, len(reply), 7)]
                    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
                    chunks += [_chunk(model, {"content": p}) for p in pieces]
                    chunks.append(_chunk(model, {}, "stop"))
                    self._sse([b"data: " + json.dumps(c).encode() for c in chunks] + [b"data: [DONE]"])
                    return
                self._json(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": reply}}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def _json(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, events: list[bytes]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for ev in events:  # one write per event, so the client really receives a stream
                    self.wfile.write(ev + b"\n\n")
                    self.wfile.flush()
                    time.sleep(0.01)
                self.close_connection = True

        return Handler


def _chunk(model: str, delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
