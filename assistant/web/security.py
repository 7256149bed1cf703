"""The guard in front of /api/*: tokens, allowed origins (CORS + server-side check), rate limits, body size.

Gradio's own routes (/gradio_api/*, what the chat page and gradio_client call) get the same rate limit per IP
on the routes that start a question, and the same body-size limit on every POST.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import threading
import time
from collections import OrderedDict, deque
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.config import ServerSettings

log = logging.getLogger(__name__)

ASK_PATHS = ("/api/ask", "/api/ask/stream")
ARTICLES = "/api/articles"
CORS_HEADERS = "authorization, content-type, x-widget-token"
GRADIO = "/gradio_api/"
GRADIO_EVENTS = re.compile(r"^/gradio_api/(queue/join|run/|api/|call/)")  # each POST starts one question


def fingerprint(token: str) -> str:
    """A short, non-reversible tag for a token, the only form of it that may appear in logs."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:8]


def normalize_origin(origin: str) -> str:
    """scheme://host[:port], lower-cased, no trailing slash: how browsers send the Origin header."""
    return origin.strip().rstrip("/").lower()


class RateLimiter:
    """Sliding-window log per key (token or IP), in memory: at most `limit` hits in any `window` seconds."""

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = 50_000):
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, keys: list[str], now: float | None = None) -> float:
        """Count one request against every key; 0 when allowed, else seconds until a slot frees up."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            wait = 0.0
            for key in keys:
                q = self._hits.get(key)
                if q is None:
                    continue
                while q and q[0] <= now - self.window:
                    q.popleft()
                if len(q) >= self.limit:
                    wait = max(wait, q[0] + self.window - now)
            if wait > 0:
                return wait
            for key in keys:
                q = self._hits.setdefault(key, deque())
                q.append(now)
                self._hits.move_to_end(key)
            # Bound memory under a flood of distinct IPs: forget the least recently seen keys.
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
            return 0.0


def _error(status: int, message: str, hint: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body = {"error": message}
    if hint:
        body["hint"] = hint
    return JSONResponse(body, status_code=status, headers=headers)


def _client(scope: Scope) -> str:
    return (scope.get("client") or ("unknown", 0))[0]


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


class Guard:
    """ASGI middleware for /api/*: decides who may call what before the request reaches a route.

    Roles: the admin token may do everything; a widget token may only ask, and only from its allowed
    origins; no token is fine for same-origin or non-browser callers (the Gradio page, curl on the
    server) but not for other websites. Gradio's POST routes get the rate limit (per IP, on the routes that
    start a question) and the body limit; everything else outside /api/ (/docs, /widget.js) passes.
    """

    def __init__(self, app: ASGIApp, settings: ServerSettings):
        self.app = app
        self.admin_token = settings.admin_token or None
        self.widget_tokens = {t: {normalize_origin(o) for o in origins}
                              for t, origins in (settings.widget_tokens or {}).items() if t}
        self.cors_origins = set().union(*self.widget_tokens.values()) if self.widget_tokens else set()
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.max_request = settings.max_request_kb * 1024
        self.max_upload = int(settings.max_upload_mb * 1024 * 1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if path.startswith(GRADIO):
            await self._gradio(scope, receive, send, path)
            return
        if not (path == "/api" or path.startswith("/api/")):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope["method"]
        origin = headers.get("origin")
        norigin = normalize_origin(origin) if origin else None
        # CORS is offered only on the ask routes and only to origins some widget token allows.
        cors = {}
        if path in ASK_PATHS and norigin in self.cors_origins:
            cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                    "Access-Control-Expose-Headers": "Retry-After"}
        if method == "OPTIONS" and "access-control-request-method" in headers:
            if not cors:
                await _error(403, "this origin may not call the assistant API",
                             "add it to a widget token's allowed origins")(scope, receive, send)
                return
            await Response(status_code=204, headers={
                **cors, "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": CORS_HEADERS, "Access-Control-Max-Age": "600"})(scope, receive, send)
            return

        role, token, refusal = self._authorize(headers, path, method, norigin)
        if refusal is not None:
            await _error(*refusal, headers=cors)(scope, receive, send)
            return
        if role != "admin":
            throttled = self._throttle(_client(scope), token, path, cors)
            if throttled is not None:
                await throttled(scope, receive, send)
                return
        limit = self.max_upload if (path == ARTICLES and method == "POST") else self.max_request
        too_big = self._too_big(headers, limit, path, cors)
        if too_big is not None:
            await too_big(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and cors:
                raw = list(message.get("headers", []))
                present = {k.lower() for k, _ in raw}
                for k, v in cors.items():
                    if k.lower().encode() not in present:
                        raw.append((k.lower().encode("latin-1"), v.encode("latin-1")))
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, _limited(receive, limit), send_with_cors)

    async def _gradio(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """Gradio's routes: no tokens (the page is same-origin), but the same rate and size limits."""
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if GRADIO_EVENTS.match(path):
            throttled = self._throttle(_client(scope), None, path, {})
            if throttled is not None:
                await throttled(scope, receive, send)
                return
        too_big = self._too_big(Headers(scope=scope), self.max_request, path, {})
        if too_big is not None:
            await too_big(scope, receive, send)
            return
        await self.app(scope, _limited(receive, self.max_request), send)

    def _throttle(self, client: str, token: str | None, path: str, cors: dict[str, str]) -> Response | None:
        """A 429 response when the client's IP or its token has spent its questions for the window, else None
        (the hit counts against both)."""
        keys = [f"ip:{client}"] + ([f"token:{fingerprint(token)}"] if token else [])
        wait = self.limiter.hit(keys)
        if wait <= 0:
            return None
        log.info("rate limit hit on %s from %s (token %s)", path, client, fingerprint(token) if token else "-")
        return _error(429, "too many questions; slow down", f"try again in {math.ceil(wait)} s",
                      headers={**cors, "Retry-After": str(math.ceil(wait))})

    @staticmethod
    def _too_big(headers: Headers, limit: int, path: str, cors: dict[str, str]) -> Response | None:
        """A 413 response when the declared body is over `limit`, else None (`_limited` counts the rest)."""
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return _error(413, f"the request body is {int(length):,} bytes; the limit is {limit:,}",
                          _size_hint(path), headers=cors)
        return None

    def _authorize(self, headers: Headers, path: str, method: str,
                   origin: str | None) -> tuple[str, str | None, tuple[int, str, str | None] | None]:
        """(role, token, refusal): refusal is None when the request may proceed, else (status, message, hint)."""
        token = _bearer(headers) or headers.get("x-widget-token") or None
        role, allowed = "anonymous", None
        if token:
            if self.admin_token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
                role = "admin"
            else:
                for candidate, origins in self.widget_tokens.items():
                    if hmac.compare_digest(token.encode(), candidate.encode()):
                        role, allowed = "widget", origins
                        break
                else:
                    log.info("unknown token %s on %s", fingerprint(token), path)
                    return role, token, (401, "unknown token",
                                         "check the widget's data-token or the admin token")
        return role, token, self._refusal(role, allowed, path, method, origin, headers)

    def _refusal(self, role: str, allowed: set[str] | None, path: str, method: str, origin: str | None,
                 headers: Headers) -> tuple[int, str, str | None] | None:
        ask = path in ASK_PATHS
        admin_only = path.startswith(ARTICLES) and method not in ("GET", "HEAD")
        if role == "admin":
            return None
        if admin_only:
            if role == "widget":
                return 403, "widget tokens can only ask questions", "use the admin token for this route"
            hint = ("send Authorization: Bearer <admin token>" if self.admin_token
                    else "set ASSISTANT_SERVER__ADMIN_TOKEN on the server to enable this route")
            return 401, "this route needs the admin token", hint
        if role == "widget":
            if not ask:
                return 403, "widget tokens can only ask questions", None
            if origin is not None and origin not in allowed:
                log.info("a widget token was used from origin %s, not in its allowed origins", origin)
                return 403, f"this site ({origin}) is not allowed to use this token", \
                    "add the origin to the token's allowed origins (server.widget_tokens)"
            return None
        # No token: fine from the same origin (the chat page) or outside a browser, never from other sites.
        if origin is not None and urlsplit(origin).netloc != (headers.get("host") or "").lower():
            return 401, "a widget token is required to call the assistant from another site", \
                "add data-token=\"...\" to the widget's script tag"
        return None


def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, credentials = value.partition(" ")
    return (credentials.strip() or None) if scheme.lower() == "bearer" else None


def _size_hint(path: str) -> str:
    if path == ARTICLES:
        return "send fewer articles per request (server.max_upload_mb)"
    return "ask a shorter question (server.max_request_kb)"
