"""Running the app with uvicorn: the port is bound first (a taken port is one clear error), "Serving ..." is
printed only once the server accepts connections, the access log never shows query strings, and proxy
headers are left to `server.trusted_proxies` (see security.install).

Several workers (`run_workers`) are uvicorn's own supervisor (`uvicorn.supervisors.Multiprocess`): the parent
binds the socket once and starts N spawned worker processes that share it, each building its app from the
same settings through a picklable factory; it pings every worker and replaces one that dies or hangs. A
worker that cannot build its app stops the server when it first starts (uvicorn's exit code 3) and is tried
again every few seconds when it replaces another (`startup_failed`). SIGHUP restarts the workers one by one,
each replacement ready before the worker it replaces is stopped."""

from __future__ import annotations

import errno
import os
import socket
import sys
import time
from collections.abc import Callable

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

from assistant.errors import AssistantError
from assistant.web.accesslog import access_log_config


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; AssistantError (one line, with the fix) when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as e:  # socket.gaierror (unknown host name) included
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise AssistantError(f"port {port} on {host} is already in use",
                                 "choose another with --port N (make run PORT=N)") from None
        raise AssistantError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                             "choose another --host (127.0.0.1, 0.0.0.0 or one of this machine's addresses) "
                             "or --port") from None
    return sock


class FinishingHTTP(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, except that a server shutting down (a worker stopped by a rolling restart, a
    Ctrl-C) gives a connection it has just accepted, whose request has not been read yet, a moment for that
    request instead of closing it unanswered: the client has usually sent it already, and the close would be an
    error in a journalist's browser. A connection between two requests still closes at once."""

    ARRIVAL = 0.5  # seconds a just-accepted connection's request may take to arrive once shutdown began

    def shutdown(self) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is None and not getattr(self, "_waited", False):
            self._waited = True
            self.loop.call_later(self.ARRIVAL, self.shutdown)  # then: finish what it holds, or close
            return
        super().shutdown()


class _Server(uvicorn.Server):
    """uvicorn's server, calling `on_started` once startup (app lifespan included) is done."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]):
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def _config(app, log_level: str, **options) -> uvicorn.Config:
    return uvicorn.Config(app, log_level=log_level, log_config=access_log_config(), proxy_headers=False,
                          server_header=False, timeout_graceful_shutdown=5, http=FinishingHTTP, **options)


def run(app, host: str, port: int, log_level: str, on_started: Callable[[], None]) -> None:
    """Serve `app` on an already checked host:port until interrupted."""
    sock = listen(host, port)
    config = _config(app, log_level)
    server = _Server(config, on_started)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        sys.exit(1)


WORKER_STARTUP = 120  # seconds a new worker of a rolling restart may take to start
RETRY_PAUSE = 5  # seconds a replacement worker that cannot be built waits before it exits and is tried again
RUNNING = "NEWSROOM_ASSISTANT_WORKERS_STARTED"  # set in the supervisor once every worker started; workers inherit it


class _Supervisor(Multiprocess):
    """uvicorn's worker supervisor, calling `on_started` once every worker has finished its startup."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], on_started: Callable[[], None]):
        super().__init__(config, sockets)
        self._on_started = on_started
        self.announced = False

    def restart_all(self) -> None:
        # uvicorn waits `timeout_worker_healthcheck` (5 s) for each new worker of a SIGHUP rolling restart to be
        # ready, less than loading the models takes on a busy machine: the restart would be given up. The ping
        # timeout itself stays short: a ping sent to a worker as it exits goes unanswered for that long, and
        # meanwhile the supervisor watches no other worker.
        ping = self.config.timeout_worker_healthcheck
        self.config.timeout_worker_healthcheck = WORKER_STARTUP
        try:
            super().restart_all()
        finally:
            self.config.timeout_worker_healthcheck = ping

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()  # every 0.5 s: a dead or hung worker is replaced
        if not self.announced and not self.should_exit.is_set() and all(
                p.is_ready(timeout=self.config.timeout_worker_healthcheck) for p in self.processes):
            self.announced = True
            os.environ[RUNNING] = "1"  # workers spawned from now on are replacements
            self._on_started()


def run_workers(factory: Callable[[], object], workers: int, host: str, port: int, log_level: str,
                on_started: Callable[[], None]) -> None:
    """Serve the app `factory` builds in each of `workers` processes on host:port until interrupted.

    Args:
        factory: a picklable callable (a module-level function or a functools.partial of one) that each
            worker calls to build its app; when it cannot, it calls `startup_failed()`.
    """
    sock = listen(host, port)  # bound once, here: the workers inherit it
    config = _config(factory, log_level, factory=True, workers=workers)
    supervisor = _Supervisor(config, [sock], on_started)
    try:
        supervisor.run()
    finally:
        sock.close()
    if not supervisor.announced:
        sys.exit(1)


def startup_failed() -> None:
    """End a worker whose app cannot be built. Before the server first started every worker, with uvicorn's
    STARTUP_FAILURE, so the supervisor stops instead of restarting it forever; a replacement worker of a
    running server (another worker died while, say, Redis was unreachable) with 1, so the supervisor starts
    it again until it can be built, and the other workers keep answering meanwhile."""
    if os.environ.get(RUNNING):
        time.sleep(RETRY_PAUSE)  # a lasting outage costs one attempt every few seconds, not a busy loop
        sys.exit(1)
    sys.exit(STARTUP_FAILURE)
