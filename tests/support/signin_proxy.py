"""A sign-in reverse proxy for the tests, as oauth2-proxy or nginx `auth_request` would stand in front of the
assistant: it forwards every request (streamed both ways) to the server, connecting from its own loopback
address (127.0.0.3, the server's one trusted proxy), keeps the Host header, adds X-Forwarded-For and names
the signed-in user in X-Forwarded-User (whatever the client sent in that header is replaced)."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.support.net import serve_in_thread

PROXY_ADDRESS = "127.0.0.3"
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
       "content-length"}


def proxy_app(upstream: str, user: str) -> Starlette:
    client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=PROXY_ADDRESS), timeout=120)

    async def forward(request: Request) -> StreamingResponse:
        headers = [(k, v) for k, v in request.headers.items()
                   if k not in HOP and k not in ("x-forwarded-user", "x-forwarded-email", "x-forwarded-for")]
        headers += [("x-forwarded-user", user), ("x-forwarded-for", request.client.host if request.client else "")]
        url = httpx.URL(upstream + request.url.path, query=request.url.query.encode())
        sent = client.build_request(request.method, url, headers=headers, content=await request.body())
        got = await client.send(sent, stream=True)
        kept = {k: v for k, v in got.headers.items() if k.lower() not in HOP}  # raw bytes: encoding kept
        return StreamingResponse(got.aiter_raw(), status_code=got.status_code, headers=kept,
                                 background=BackgroundTask(got.aclose))

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


def signin_proxy(upstream: str, user: str):
    """A running proxy on 127.0.0.1 in front of `upstream`, signing every request in as `user` (a context
    manager yielding its URL)."""
    return serve_in_thread(proxy_app(upstream, user))
