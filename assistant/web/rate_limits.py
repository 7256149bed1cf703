"""The limits of `assistant serve`: question budgets (`RateLimiter`, the `limits` library's moving windows, in
memory or in the Redis `server.redis_url` names: `rate_limit_storage`) and the request-body size limit on a
body that streams in (`_limited`). Applied by web/security.py's `Guard`."""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from assistant.config import ServerSettings
from assistant.errors import ConfigError

log = logging.getLogger("assistant.web.security")  # the access policy's logger: its lines read as before


class RateLimiter:
    """At most `limit` hits per key (token or IP) in any `window` seconds: the `limits` library's moving window.

    On `MemoryStorage` (this process) by default; given a shared storage (Redis, `server.redis_url`), every
    worker and machine using it counts against one budget. Should that storage fail at run time, this process
    counts on its own in memory meanwhile (a warning at most once a minute) and tries the shared storage
    again every RETRY_SECONDS: an outage of the rate-limit store neither stops the answers nor lifts the limit.
    """

    RETRY_SECONDS = 5.0
    WARN_SECONDS = 60.0

    def __init__(self, limit: int, window: int = 60, storage=None):
        from limits import RateLimitItemPerSecond
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self.limit = limit
        self.window = int(window)
        self.item = RateLimitItemPerSecond(max(limit, 1), self.window, namespace="newsroom-assistant")
        self.shared = storage is not None
        self._primary = MovingWindowRateLimiter(storage if storage is not None else MemoryStorage())
        self._local = MovingWindowRateLimiter(MemoryStorage()) if storage is not None else None
        self._down_until = 0.0
        self._warned = float("-inf")
        self._lock = threading.Lock()  # the keys of one request are tested and hit together

    def _run(self, fn):
        """fn(strategy) on the shared storage, or on this process's memory while the shared one is down."""
        from limits.errors import StorageError

        now = time.monotonic()
        if self._local is not None and now < self._down_until:
            return fn(self._local)
        try:
            return fn(self._primary)
        except StorageError as e:
            if self._local is None:
                raise
            self._down_until = now + self.RETRY_SECONDS
            if now - self._warned >= self.WARN_SECONDS:
                self._warned = now
                log.warning("the shared rate-limit store is unreachable (%s); each process limits on its own "
                            "until it is back", e.__cause__ or e)
            return fn(self._local)

    def _wait(self, strategy, keys: list[str]) -> float:
        wait = 0.0
        for key in keys:
            if not strategy.test(self.item, key):
                reset = strategy.get_window_stats(self.item, key).reset_time
                wait = max(wait, reset - time.time(), 0.001)
        return wait

    def spent(self, keys: list[str]) -> float:
        """Seconds until one of `keys` has a free slot (0 when all have one), without counting a hit."""
        if self.limit <= 0:
            return 0.0
        return self._run(lambda strategy: self._wait(strategy, keys))

    def hit(self, keys: list[str]) -> float:
        """Count one request against every key; 0 when allowed, else seconds until a slot frees up."""
        if self.limit <= 0:
            return 0.0

        def hit(strategy) -> float:
            wait = self._wait(strategy, keys)
            if wait > 0:
                return wait
            for key in keys:
                # Another worker may have taken the last slot since the test: that key's hit fails (atomic in
                # the storage) and this request is refused like any other over the limit.
                if not strategy.hit(self.item, key):
                    return self._wait(strategy, [key]) or 1.0
            return 0.0

        with self._lock:
            return self._run(hit)


def rate_limit_storage(settings: ServerSettings):
    """The `limits` storage `server.redis_url` names (None: unset, each process counts in memory).

    Raises ConfigError when it cannot be reached: `serve` (and each of its workers) stops at startup rather
    than run with limits it cannot share. `serve --workers N` may call this in the parent first.
    """
    if not settings.redis_url:
        return None
    from limits.storage import storage_from_string

    where = _redis_location(settings.redis_url)
    try:
        # Short timeouts: a stalled Redis costs a question half a second, then the local fallback takes over.
        storage = storage_from_string(settings.redis_url, wrap_exceptions=True, key_prefix="newsroom-assistant",
                                      socket_connect_timeout=0.5, socket_timeout=0.5)
        reachable = storage.check()
    except Exception as e:  # noqa: BLE001 - a bad URL or a missing server, in many forms
        raise ConfigError(f"the rate-limit store {where} cannot be used: {e}",
                          "check server.redis_url, or unset it for per-process limits") from e
    if not reachable:
        raise ConfigError(f"the rate-limit store {where} is unreachable",
                          "start redis-server (or fix server.redis_url), or unset it for per-process limits")
    return storage


def _redis_location(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive` that stops a body without (or lying about) Content-Length once it passes `limit` bytes."""
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                # FastAPI re-raises HTTPException from body reading, so the JSON handler answers 413.
                raise HTTPException(413, f"the request body is larger than {limit:,} bytes")
        return message

    return limited_receive
