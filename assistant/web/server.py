"""Running the app with uvicorn: the port is bound first (a taken port is one clear error), "Serving ..." is
printed only once the server accepts connections, the access log never shows query strings, and proxy
headers are left to `server.trusted_proxies` (see security.install)."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable

import uvicorn

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


def run(app, host: str, port: int, log_level: str, on_started: Callable[[], None]) -> None:
    """Serve `app` on an already checked host:port until interrupted."""
    sock = listen(host, port)
    config = uvicorn.Config(app, log_level=log_level, log_config=access_log_config(), proxy_headers=False,
                            server_header=False, timeout_graceful_shutdown=5)
    server = _Server(config, on_started)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        sys.exit(1)
