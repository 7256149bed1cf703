"""What every response of `assistant serve` carries and which Host it answers to: `SecurityHeaders` (the
Content-Security-Policy, its inline scripts allowed by SHA-256 hash, nosniff, Referrer-Policy, frame options)
and `TrustedHosts` (unknown Host headers get 400 in our JSON). Placed by web/security.py's `install`."""

from __future__ import annotations

import base64
import hashlib
import logging
import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.web.errors import error_response

log = logging.getLogger("assistant.web.security")  # the access policy's logger: its lines read as before


_INLINE_SCRIPT = re.compile(rb"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)


class SecurityHeaders:
    """nosniff, Referrer-Policy and a Content-Security-Policy on every response.

    HTML pages (the Gradio chat, /docs, /redoc) get a CSP whose script-src allows the page's own files and
    its inline <script> blocks by SHA-256 hash, computed from the page as sent; so no other inline script
    and no inline event handler (an article's `onerror=`) can run, and no page may frame it except
    `server.frame_ancestors`. The chat page (`eval_pages`) also needs 'unsafe-eval': Gradio 6's gr.HTML
    compiles its own template with Function() (the value it shows is passed as an argument, not as code);
    that does not allow inline handlers or injected <script>, which only 'unsafe-inline' would.
    """

    MAX_HTML = 8 * 1024 * 1024

    def __init__(self, app: ASGIApp, frame_ancestors: list[str], eval_pages: tuple[str, ...] = ("/",)):
        self.app = app
        self.eval_pages = eval_pages
        self.frame_ancestors = " ".join(frame_ancestors) or "'none'"
        self.frame_options = {"'self'": "SAMEORIGIN", "'none'": "DENY"}.get(self.frame_ancestors)

    def policy(self, html: bytes | None, path: str = "") -> str:
        if html is None:
            return f"default-src 'none'; frame-ancestors {self.frame_ancestors}"
        evaluate = " 'unsafe-eval'" if path in self.eval_pages else ""
        hashes = " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
            for attrs, body in _INLINE_SCRIPT.findall(html) if b"src=" not in attrs.lower() and body.strip())
        return ("default-src 'self'; "
                f"script-src 'self'{evaluate} {hashes}; "
                "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
                "connect-src 'self'; media-src 'self' blob:; worker-src 'self' blob:; object-src 'none'; "
                f"base-uri 'self'; form-action 'self'; frame-ancestors {self.frame_ancestors}")

    def _headers(self, message: Message, html: bytes | None, path: str = "") -> None:
        headers = MutableHeaders(scope=message)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["Content-Security-Policy"] = self.policy(html, path)
        if self.frame_options:
            headers["X-Frame-Options"] = self.frame_options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                ctype = Headers(raw=message.get("headers", [])).get("content-type", "")
                if ctype.startswith("text/html"):
                    start = message  # held until the whole page is here: its scripts decide the policy
                    return
                self._headers(message, None)
                await send(message)
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body") and sum(map(len, chunks)) < self.MAX_HTML:
                    return
                body = b"".join(chunks)
                self._headers(start, body, scope.get("path", ""))
                await send(start)
                await send({"type": "http.response.body", "body": body, "more_body": message.get("more_body", False)})
                start = None  # anything after MAX_HTML streams through under the policy already sent
                chunks.clear()
            else:
                await send(message)

        await self.app(scope, receive, wrapped)


class TrustedHosts(TrustedHostMiddleware):
    """Starlette's Host check (server.allowed_hosts), refusing in our {error, hint} JSON instead of plain text."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]):
        async def passed(scope: Scope, receive: Receive, send: Send) -> None:
            scope["assistant.host_ok"] = True
            await app(scope, receive, send)

        super().__init__(passed, allowed_hosts=allowed_hosts, www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return

        async def refuse_as_json(message: Message) -> None:
            if scope.get("assistant.host_ok"):
                await send(message)
            elif message["type"] == "http.response.start":  # Starlette's own 400: answer ours instead
                host = Headers(scope=scope).get("host") or "(none)"
                log.info("refused a request for unknown host %s", host)
                await error_response(400, f"this server does not answer to the host name {host}",
                             "use its configured name, or add this one to server.allowed_hosts")(scope, receive, send)

        await super().__call__(scope, receive, refuse_as_json)
