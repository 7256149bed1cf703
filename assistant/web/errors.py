"""JSON error bodies for every error the REST API returns: {"message", "hint"?, "detail"?}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from assistant.errors import AssistantError, EngineError, StoreError

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error response of `app`'s own routes a JSON object with a human-readable `message`."""

    @app.exception_handler(AssistantError)
    async def assistant_error(request: Request, exc: AssistantError) -> JSONResponse:
        # the store or a model server being down is the service's problem, not the request's
        status = 503 if isinstance(exc, (StoreError, EngineError)) else 400
        return JSONResponse({"message": exc.message, "hint": exc.hint}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return JSONResponse({"message": message, "detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        message = f"invalid request: {where}: {first.get('msg', 'invalid value')}" if first else "invalid request"
        return JSONResponse({"message": message, "detail": _jsonable(errors)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"message": "internal error; the server log has the details"}, status_code=500)


def _jsonable(errors: list) -> list:
    """Validation errors with their inputs/contexts made JSON-safe (they may hold bytes or exceptions)."""
    out = []
    for e in errors:
        out.append({k: (v if isinstance(v, (str, int, float, bool, type(None), list)) else str(v))
                    for k, v in e.items() if k in ("type", "loc", "msg", "input")})
    return out
