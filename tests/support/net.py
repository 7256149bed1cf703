"""Loopback ports, waiting for a listener, stopping a server process, an ASGI app served in a thread."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Until 127.0.0.1:port accepts a connection (a process we cannot hear from: there is nothing to await)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate a server process, killing it when it does not exit in time."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def serve_forever_in_thread(server, start: bool = True) -> threading.Thread:
    """A socketserver (http.server) serving from a daemon thread, started unless `start` is False; it checks
    for `shutdown()` every 0.05 s, not the library's 0.5 s, so a test's teardown does not wait for it."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    if start:
        thread.start()
    return thread


@contextlib.contextmanager
def serve_in_thread(app):
    """Run an ASGI app with uvicorn on a free loopback port in a thread; yields its base URL once it started."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:  # uvicorn sets it once the socket is bound and the app's startup ran
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)
