"""The one redis launcher: a real `redis-server` on a loopback port, nothing persisted, and a client that
speaks Redis' inline protocol over a plain socket (the tests need no redis package)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from tests.support.net import stop_process

needs_redis = pytest.mark.skipif(not shutil.which("redis-server"),
                                 reason="redis-server is missing: `make test-deps` installs Debian's package")


def redis_command(port: int, *words: str, timeout: float = 2.0) -> bytes:
    """One command in Redis' inline protocol over a plain socket; the raw reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall((" ".join(words) + "\r\n").encode())
        reply = b""
        while True:
            part = s.recv(65536)
            reply += part
            # Enough for these replies: a simple string or error, or an array whose last item has arrived.
            if not part or (reply.endswith(b"\r\n") and not reply.startswith(b"*")) or \
                    (reply.startswith(b"*") and _array_done(reply)):
                return reply


def _array_done(reply: bytes) -> bool:
    lines = reply.split(b"\r\n")
    try:
        n = int(lines[0][1:])
    except ValueError:
        return False
    return n <= 0 or len(lines) >= 2 * n + 2


class RedisServer:
    def __init__(self, port: int, workdir):
        self.port, self.workdir, self.proc = port, workdir, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                if redis_command(self.port, "PING", timeout=0.5).startswith(b"+PONG"):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"redis-server did not answer PING on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, 5)
