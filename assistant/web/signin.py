"""The newsroom's sign-in: `SignedIn` believes the user the sign-in proxy names only from
`server.trusted_proxies` and passes that name on as USER_HEADER (`signed_in_user` reads it back), and
SIGNIN_PAGE is the hint page a browser without a sign-in gets. Placed and served by web/security.py."""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant.config import ServerSettings

# Where the signed-in user's name travels inside the app (set by SignedIn only; any incoming copy is dropped).
USER_HEADER = "x-assistant-user"


def _client(scope: Scope) -> str:
    return (scope.get("client") or ("unknown", 0))[0]


SIGNIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in: newsroom assistant</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}
code{background:#eee;padding:0 .2em}</style></head><body>
<h1>Sign in to read the archive</h1>
<p>This newsroom assistant answers only people the newsroom knows.</p>
<ul>
<li><strong>In a browser:</strong> open the assistant through the newsroom's sign-in (the address IT gave you,
not this machine's own address).</li>
<li><strong>From a chat client, a script or curl:</strong> send your personal key as
<code>Authorization: Bearer nak_...</code>. An admin makes one with <code>assistant users add NAME</code>.</li>
<li><strong>On a wiki page:</strong> the widget's <code>data-token</code> works as before.</li>
</ul></body></html>
"""


class SignedIn:
    """ASGI middleware, outermost: who the sign-in proxy says is asking, believed from trusted proxies only.

    A request whose peer (the TCP address, before any X-Forwarded-For is applied) is in `server.trusted_proxies`
    carries the user's name in `server.trusted_user_header` (or `trusted_email_header`); it is passed on as
    USER_HEADER. From any other peer both headers, and any USER_HEADER, are removed.
    """

    MAX_NAME = 256

    def __init__(self, app: ASGIApp, settings: ServerSettings):
        self.app = app
        self.names = (settings.trusted_user_header.lower().encode(), settings.trusted_email_header.lower().encode())
        self.strip = {*self.names, USER_HEADER.encode()}
        self.any_proxy = "*" in settings.trusted_proxies
        self.nets, self.literals = [], set()
        for entry in settings.trusted_proxies:
            try:
                self.nets.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                self.literals.add(entry.strip())

    def trusted(self, peer: str) -> bool:
        if self.any_proxy or peer in self.literals:
            return True
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(ip in net for net in self.nets)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            raw = scope.get("headers") or []
            found = {k.lower(): v for k, v in raw if k.lower() in self.names}
            headers = [(k, v) for k, v in raw if k.lower() not in self.strip]
            name = ""
            if found and self.trusted(_client(scope)):
                for header in self.names:  # the user header first, the e-mail header when it is absent
                    value = found.get(header, b"").decode("latin-1").strip()
                    if value:
                        name = "".join(c for c in value if c.isprintable())[:self.MAX_NAME]
                        break
            if name:
                headers.append((USER_HEADER.encode(), name.encode("latin-1", "replace")))
            scope["headers"] = headers  # in place: uvicorn's access log reads this scope object
        await self.app(scope, receive, send)


def signed_in_user(headers: Headers) -> str | None:
    """The name SignedIn passed on for this request (None: nobody signed in through the proxy)."""
    return headers.get(USER_HEADER) or None
