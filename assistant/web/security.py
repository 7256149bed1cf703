"""One access policy for every route of `assistant serve`: hosts, origins, tokens, rate and size limits, headers.

`install(app, settings, users)` puts the layers in front of the app, outermost first:

0. `SignedIn` (web/signin.py): the user the newsroom's sign-in proxy names in `server.trusted_user_header` (or
   the e-mail header) is believed only when the request comes straight from one of `server.trusted_proxies`;
   from anyone else those headers are removed, so no later layer or route can read a forged name.
1. uvicorn's `ProxyHeadersMiddleware`, only when `server.trusted_proxies` lists proxies: X-Forwarded-For is
   believed from those addresses alone (never from 127.0.0.1 by default).
2. Starlette's `TrustedHostMiddleware` (as `TrustedHosts`, web/headers.py, answering in JSON): unknown Host
   headers get 400 (DNS rebinding).
3. `SecurityHeaders` (web/headers.py): CSP (inline scripts allowed by hash only, frame-ancestors from config),
   nosniff, Referrer-Policy.
4. Starlette's `CORSMiddleware`: only the origins some widget token allows, no credentials. Its presence also
   switches off Gradio's own CORS layer, which echoed any Origin.
5. `Guard`: who may call what. The same rules hold on /api/*, the OpenAI-compatible /v1/* (its chat
   completions are asked like /api/ask), Gradio's /gradio_api/*, /config, /openapi.json and the docs: a request
   from a foreign Origin needs a widget token bound to that origin (and may then only ask); the admin token and
   admin users may do everything; readers (a personal key, or a signed-in user with no admin record) may ask and
   read; with `server.require_login` off, no credential is fine from the same origin or outside a browser, with
   it on such a request gets 401 everywhere but /healthz, /widget.js and /signin. /metrics takes the metrics or
   admin token when either is set. Question budgets are `limits` moving windows, in memory or shared through
   Redis (`server.redis_url`), per IP and per token or user (web/rate_limits.py, with the body-size limit).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import socket
from typing import cast
from urllib.parse import urlsplit

import anyio
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant.config import ServerSettings
from assistant.index.users import Role, User, Users, is_personal_key
from assistant.web.errors import error_response
from assistant.web.headers import SecurityHeaders, TrustedHosts
from assistant.web.rate_limits import RateLimiter, _limited, rate_limit_storage
from assistant.web.signin import SIGNIN_PAGE, SignedIn, _client, signed_in_user

log = logging.getLogger(__name__)

ASK_PATHS = ("/api/ask", "/api/ask/stream", "/v1/chat/completions")  # /v1: the OpenAI-compatible model
# Read like an answer, under the same policy as /api/ask: readers, widget tokens from their origins, the same
# question budgets (each request spends one).
QUOTES = "/api/quotes"
# What an OpenAI client reads before it asks (the archive's model name): a widget token may read it too.
MODEL_PATHS = ("/v1/models",)
ARTICLES = "/api/articles"
# Routes only the admin token may use: path prefix -> methods (None = every method). The one list to extend.
ADMIN_ONLY: dict[str, frozenset[str] | None] = {
    ARTICLES: frozenset({"POST", "PUT", "PATCH", "DELETE"}),
    "/api/sources": None,  # the watcher's sources: reading them too (URLs, errors) is for admins
}
# No archive data: the widget script, the widget's no-cors reachability probe, and the sign-in hint page.
SIGNIN = "/signin"
PUBLIC = frozenset({"/widget.js", "/healthz", SIGNIN})
# Prometheus metrics: with an admin or metrics token configured, only those tokens read them (see Guard).
METRICS = "/metrics"
CORS_HEADERS = ("authorization", "content-type", "x-widget-token")
GRADIO = "/gradio_api/"
GRADIO_EVENTS = re.compile(r"^/gradio_api/(queue/join|run/|api/|call/)")  # each POST starts one question
# Gradio routes the chat does not use: file uploads (stored on disk, replies held server paths), files and
# proxies, recordings, the in-browser code editor. They answer 403 for everyone.
GRADIO_OFF = re.compile(r"^/gradio_api/(upload|upload_progress|process_recording|file=|file/|proxy=|"
                        r"vibe-edit|undo-vibe-edit|vibe-code|dev/)")


def fingerprint(token: str) -> str:
    """A short, non-reversible tag for a token, the only form of it that may appear in logs."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:8]


def normalize_origin(origin: str) -> str:
    """scheme://host[:port], lower-cased, no trailing slash: how browsers send the Origin header."""
    return origin.strip().rstrip("/").lower()


def same_origin(origin: str, host: str) -> bool:
    """Whether a browser's Origin is this server as the request's Host names it (host and port; a default port
    may be written or not)."""
    try:
        o, h = urlsplit(origin), urlsplit("//" + host.strip().lower())
        default = {"http": 80, "https": 443}.get(o.scheme)
        return bool(o.hostname) and default is not None and o.hostname == h.hostname and \
            (o.port or default) == (h.port or default)
    except ValueError:  # a port that is not a number
        return False


def admin_only(path: str, method: str) -> bool:
    """Whether only the admin token may call `method path` (see ADMIN_ONLY)."""
    for prefix, methods in ADMIN_ONLY.items():
        if (path == prefix or path.startswith(prefix + "/")) and (methods is None or method in methods):
            return True
    return False


def default_allowed_hosts(bind_host: str) -> list[str]:
    """The Host names to accept when `server.allowed_hosts` is empty: the bound host plus localhost."""
    hosts = {"localhost", "127.0.0.1", "::1", bind_host.strip("[]").lower()}
    if bind_host in ("0.0.0.0", "::", ""):
        # Bound to every interface: the machine's own names are what the newsroom will type.
        hosts.discard(bind_host)
        name = socket.gethostname()
        hosts.update({name.lower(), socket.getfqdn().lower()})
        try:  # and its addresses, for colleagues who type http://10.x.y.z:7860/
            # IPv4/IPv6 (host, port, ...) tuples: the host is a str (typeshed's sockaddr also covers int ones)
            hosts.update(cast(str, info[4][0]) for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    return sorted(h for h in hosts if h)


class Guard:
    """ASGI middleware: decides who may call what before the request reaches a route.

    Roles: the admin token (and an admin user) may do everything; a reader (personal key, or a user the sign-in
    proxy names) may ask and read; a widget token may only ask, and only from its allowed origins; the metrics
    token may only read /metrics; no credential is fine for same-origin or non-browser callers (the Gradio page,
    curl on the server) unless `server.require_login`, never for other websites. Failed authentications count
    against the caller's per-IP question budget, and while that budget is spent no token is even compared (so
    guessing gains nothing). The caller is left in `scope["state"]["actor"]` for the audit trail.
    """

    def __init__(self, app: ASGIApp, settings: ServerSettings, limiter: RateLimiter | None = None,
                 users: Users | None = None):
        self.app = app
        self.admin_token = settings.admin_token or None
        self.metrics_token = settings.metrics_token or None
        self.widget_tokens = {t: {normalize_origin(o) for o in origins}
                              for t, origins in (settings.widget_tokens or {}).items() if t}
        self.limiter = limiter or RateLimiter(settings.rate_limit_per_minute)
        self.max_request = settings.max_request_kb * 1024
        self.max_upload = int(settings.max_upload_mb * 1024 * 1024)
        self.users = users
        self.require_login = settings.login_required()
        self.keyless = not (self.require_login or self.admin_token or self.metrics_token or self.widget_tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in PUBLIC:
            if scope.get("path") == SIGNIN and scope["type"] == "http":
                await HTMLResponse(SIGNIN_PAGE)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope["method"]
        headers = Headers(scope=scope)
        refusal = await self._check(scope, headers, path, method)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if method in ("POST", "PUT", "PATCH") and (path.startswith(("/api/", "/v1/")) or path.startswith(GRADIO)):
            limit = self.max_upload if (path == ARTICLES) else self.max_request
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                await error_response(413, f"the request body is {int(length):,} bytes; the limit is {limit:,}",
                             _size_hint(path))(scope, receive, send)
                return
            receive = _limited(receive, limit)
        await self.app(scope, receive, send)

    async def _key_user(self, token: str) -> User | None:
        """The personal key's user (None: unknown, removed or wrong): one store read, off the event loop."""
        return await anyio.to_thread.run_sync(self.users.verify, token) if self.users is not None else None

    async def _signed_in_user(self, name: str, path: str, method: str) -> User:
        """The signed-in user: a reader, or an admin when the store lists that name as one. The store is asked
        only where the role matters (admin routes, /metrics), not for each of a page's many requests."""
        if self.users is not None and (admin_only(path, method) or path == METRICS):
            known = await anyio.to_thread.run_sync(self.users.get, name)
            if known is not None:
                return User(name, known.role)
        return User(name, Role.READER)

    async def _check(self, scope: Scope, headers: Headers, path: str, method: str) -> Response | None:
        """The refusal for this request (401/403/429), or None when it may proceed."""
        client = _client(scope)
        ip = [f"ip:{client}"]
        token = _bearer(headers) or headers.get("x-widget-token") or None
        signed_in = signed_in_user(headers)
        origin = headers.get("origin")
        norigin = normalize_origin(origin) if origin else None
        foreign = norigin is not None and not same_origin(norigin, headers.get("host") or "")

        if GRADIO_OFF.match(path):
            return error_response(403, "this route is off: the chat takes no files",
                          "ask questions with POST /api/ask or the chat page")
        role, allowed, user = "anonymous", set(), None
        if token:
            wait = self.limiter.spent(ip)
            if wait > 0:  # budget spent (questions or failed guesses): do not even look at the token
                return self._too_many(path, client, token, wait)
            if self.admin_token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
                role = "admin"
            elif self.metrics_token and hmac.compare_digest(token.encode(), self.metrics_token.encode()):
                role = "metrics"
            elif is_personal_key(token):
                user = await self._key_user(token)
                if user is None:
                    log.info("unknown or removed personal key %s on %s", fingerprint(token), path)
                    return self._failed(client, token, path, "unknown or removed personal key",
                                        "ask an admin for a new one (assistant users add NAME)")
                role = user.role.value
            else:
                for candidate, origins in self.widget_tokens.items():
                    if hmac.compare_digest(token.encode(), candidate.encode()):
                        role, allowed = "widget", origins
                        break
                else:
                    if self.keyless and path.startswith("/v1/"):
                        # An OpenAI client must send some key: on an open server with no tokens, any is no key.
                        token = None
                    else:
                        log.info("unknown token %s on %s", fingerprint(token), path)
                        return self._failed(client, token, path, "unknown token",
                                            "check the widget's data-token, your personal key or the admin token")
        elif signed_in:
            user = await self._signed_in_user(signed_in, path, method)
            role = user.role.value
        actor = user.name if user else {"admin": "admin token", "metrics": "metrics token",
                                        "widget": f"widget token {fingerprint(token or '')}"}.get(role)
        if actor:  # for the audit trail (assistant.web.actor); the anonymous are named by their address there
            scope.setdefault("state", {})["actor"] = actor
        if role == "admin":
            return None
        if role == "anonymous" and self.require_login:
            return _login_required(headers)
        if role == "metrics":
            return None if path == METRICS else error_response(403, "the metrics token only reads /metrics",
                                                       "use a widget token or the admin token for this route")
        if path == METRICS and (self.admin_token or self.metrics_token):
            if role in ("widget", "reader"):
                return error_response(403, f"{_whose(role)} cannot read /metrics", "send the metrics or admin token")
            return self._failed(client, None, path, "/metrics needs the metrics token or the admin token",
                                "send Authorization: Bearer <token> (Prometheus: authorization.credentials)")
        if admin_only(path, method):
            if role in ("widget", "reader"):
                return error_response(403, f"{_whose(role)} cannot change the archive or its sources",
                                      "use the admin token or an admin's key for this route")
            hint = ("send Authorization: Bearer <admin token>" if self.admin_token
                    else "set ASSISTANT_SERVER__ADMIN_TOKEN on the server to enable this route")
            return self._failed(client, None, path, "this route needs the admin token", hint)
        if role == "widget":
            if (path not in ASK_PATHS and path != QUOTES
                    and not any(path == p or path.startswith(p + "/") for p in MODEL_PATHS)):
                return error_response(403, "widget tokens can only ask questions", "use POST /api/ask or /api/ask/stream")
            if norigin is not None and norigin not in allowed:
                log.info("a widget token was used from origin %s, not in its allowed origins", norigin)
                return error_response(403, f"this site ({norigin}) is not allowed to use this token",
                              "add the origin to the token's allowed origins (server.widget_tokens)")
        elif foreign:
            # No widget token from another site (or a sandboxed "null" origin): the archive is not for it.
            return self._failed(client, None, path,
                                "a widget token is required to call the assistant from another site",
                                "add data-token=\"...\" to the widget's script tag")
        if ((path in ASK_PATHS and method == "POST") or (path == QUOTES and method == "GET")
                or (method == "POST" and GRADIO_EVENTS.match(path))):
            who = [f"user:{user.name}"] if user else [f"token:{fingerprint(token)}"] if token else []
            wait = self.limiter.hit(ip + who)
            if wait > 0:
                return self._too_many(path, client, token, wait)
        return None

    def _failed(self, client: str, token: str | None, path: str, message: str, hint: str) -> Response:
        """401 for a failed authentication, which spends one of the IP's questions (429 once they are gone)."""
        wait = self.limiter.hit([f"ip:{client}"])
        if wait > 0:
            return self._too_many(path, client, token, wait)
        return error_response(401, message, hint)

    @staticmethod
    def _too_many(path: str, client: str, token: str | None, wait: float) -> Response:
        log.info("rate limit hit on %s from %s (token %s)", path, client, fingerprint(token) if token else "-")
        return error_response(429, "too many questions; slow down", f"try again in {math.ceil(wait)} s",
                      headers={"Retry-After": str(math.ceil(wait))})


def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, credentials = value.partition(" ")
    return (credentials.strip() or None) if scheme.lower() == "bearer" else None


def _whose(role: str) -> str:
    return "widget tokens" if role == "widget" else "a reader's key or sign-in"


def _login_required(headers: Headers) -> Response:
    """401 for a request with no credential on a server that requires one: the sign-in page for a browser."""
    if "text/html" in (headers.get("accept") or ""):
        return HTMLResponse(SIGNIN_PAGE, status_code=401)
    return error_response(401, "this archive needs a sign-in, a personal key or a widget token",
                          f"send Authorization: Bearer <your key>, or open it through the newsroom's sign-in ({SIGNIN})")


def _size_hint(path: str) -> str:
    if path == ARTICLES:
        return "send fewer articles per request (server.max_upload_mb)"
    return "ask a shorter question (server.max_request_kb)"


def install(app, settings: ServerSettings, users: Users | None = None) -> None:
    """Add the layers described in the module docstring to a FastAPI/Starlette `app` (before it starts).

    Raises ConfigError when `server.redis_url` is set and Redis cannot be reached (`rate_limit_storage`).
    """
    limiter = RateLimiter(settings.rate_limit_per_minute, storage=rate_limit_storage(settings))
    app.add_middleware(Guard, settings=settings, limiter=limiter, users=users)
    origins = sorted(set().union(*[{normalize_origin(o) for o in v} for v in settings.widget_tokens.values()]))
    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                       allow_headers=list(CORS_HEADERS), expose_headers=["Retry-After"], allow_credentials=False,
                       max_age=600)
    app.add_middleware(SecurityHeaders, frame_ancestors=settings.frame_ancestors)
    app.add_middleware(TrustedHosts, allowed_hosts=settings.allowed_hosts or default_allowed_hosts(settings.host))
    if settings.trusted_proxies:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    app.add_middleware(SignedIn, settings=settings)  # outermost: it must see the proxy's own address
