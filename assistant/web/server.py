"""Running the app with uvicorn: the port is bound first (a taken port is one clear error), "Serving ..." is
printed only once the server accepts connections, the access log never shows query strings, and proxy
headers are left to `server.trusted_proxies` (see security.install).

Several workers (`run_workers`) are uvicorn's own supervisor (`uvicorn.supervisors.Multiprocess`): the parent
binds the socket once and starts N spawned worker processes that share it, each building its app from the
same settings through a picklable factory; it pings every worker and replaces one that dies or hangs, and
stops when a worker fails during startup (uvicorn's exit code 3), instead of restarting it forever. SIGHUP
restarts the workers one by one, each replacement ready before the worker it replaces is stopped."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from assistant.errors import AssistantError
from assistant.web.security import access_log_config


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
                          server_header=False, timeout_graceful_shutdown=5, **options)


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


WORKER_STARTUP = 120  # seconds


class _Supervisor(Multiprocess):
    """uvicorn's worker supervisor, calling `on_started` once every worker has finished its startup."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], on_started: Callable[[], None]):
        super().__init__(config, sockets)
        self._on_started = on_started
        self.announced = False

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()  # every 0.5 s: a dead or hung worker is replaced
        if not self.announced and not self.should_exit.is_set() and all(
                p.is_ready(timeout=self.config.timeout_worker_healthcheck) for p in self.processes):
            self.announced = True
            self._on_started()


def run_workers(factory: Callable[[], object], workers: int, host: str, port: int, log_level: str,
                on_started: Callable[[], None]) -> None:
    """Serve the app `factory` builds in each of `workers` processes on host:port until interrupted.

    Args:
        factory: a picklable callable (a module-level function or a functools.partial of one) that each
            worker calls to build its app; a worker that cannot build it should exit with STARTUP_FAILURE.
    """
    sock = listen(host, port)  # bound once, here: the workers inherit it
    # How long the supervisor waits for a worker's answer to its ping, and for a new worker's startup in a
    # SIGHUP rolling restart (uvicorn's default, 5 s, is less than loading the models takes on a busy machine:
    # the restart would be given up). A worker still loading answers pings from a thread of its own.
    config = _config(factory, log_level, factory=True, workers=workers, timeout_worker_healthcheck=WORKER_STARTUP)
    supervisor = _Supervisor(config, [sock], on_started)
    try:
        supervisor.run()
    finally:
        sock.close()
    if not supervisor.announced:
        sys.exit(1)


def startup_failed() -> None:
    """End a worker whose app cannot be built, so the supervisor stops instead of restarting it."""
    sys.exit(STARTUP_FAILURE)
