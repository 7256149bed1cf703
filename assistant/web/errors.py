"""The one error body of every surface of `assistant serve`, and the exception handlers that send it.

Ours is `{"error": message, "hint": how to fix it, "code": ...}` (hint and code only when there is one): the
REST routes, the access policy (web/security.py) and the answer stream's `error` event (which always has both
keys). The one variation is OpenAI's `{"error": {"message", "type", "param", "code", "hint"}}` on /v1
(web/openai_api.py reshapes ours into it), which OpenAI clients show.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from assistant.errors import AssistantError, StoreError

log = logging.getLogger("assistant.web.api")  # the app's logger: crash lines read as before

# An unexpected exception: never its text (it may name files, hosts, data), always this.
INTERNAL_ERROR = "internal error"
INTERNAL_HINT = "the server log has the details"

OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                      404: "not_found_error", 413: "invalid_request_error", 422: "invalid_request_error",
                      429: "rate_limit_error", 503: "service_unavailable"}


def error_body(message: str, hint: str | None = None, code: str | None = None) -> dict[str, Any]:
    """`{"error", "hint", "code"}`, the hint and the code only when given."""
    body: dict[str, Any] = {"error": message}
    if hint:
        body["hint"] = hint
    if code:
        body["code"] = code
    return body


def error_response(status: int, message: str, hint: str | None = None, headers: dict[str, str] | None = None,
                   code: str | None = None) -> JSONResponse:
    """The error body as a JSON response (also an ASGI app: the access policy sends it as its refusal)."""
    return JSONResponse(error_body(message, hint, code), status_code=status, headers=headers)


def described(e: BaseException) -> tuple[str, str | None]:
    """(message, hint) of an error for the user: ours as raised, anything else as the internal error."""
    if isinstance(e, AssistantError):
        return e.message, e.hint
    return INTERNAL_ERROR, INTERNAL_HINT


def stream_error_body(e: BaseException) -> dict[str, Any]:
    """The answer stream's `error` event: `{error, hint}`, both keys always (hint null when there is none)."""
    message, hint = described(e)
    return {"error": message, "hint": hint}


def openai_error_body(status: int, message: str, hint: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, for /v1: the type from the status, the code given or the status itself."""
    error = {"message": message, "type": OPENAI_ERROR_TYPES.get(status, "server_error"), "param": None,
             "code": code or str(status)}
    if hint:
        error["hint"] = hint
    return {"error": error}


async def assistant_error(request: Request, e: AssistantError) -> JSONResponse:
    status = getattr(e, "status", None) or (503 if isinstance(e, StoreError) else 400)
    return error_response(status, e.message, e.hint, code=getattr(e, "code", None))  # code: the /v1 routes'


async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
    first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
    return error_response(422, f"{where}: {first.get('msg')}" if where else str(first.get("msg")),
                          "see the request schema at /docs")


async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
    return error_response(e.status_code, str(e.detail), headers=getattr(e, "headers", None))


async def crash(request: Request, e: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, INTERNAL_ERROR, INTERNAL_HINT)


def install_handlers(app: FastAPI) -> None:
    """Every error of the app's routes answers with the one body."""
    # Starlette types a handler as taking any Exception, though it calls each with its own class only.
    app.add_exception_handler(AssistantError, assistant_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, crash)
