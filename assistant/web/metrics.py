"""Prometheus metrics of `assistant serve` (the one module that imports prometheus_client).

Requests per route template, method and status, their latency, answers and refusals per engine, and the
articles the admin API ingests. One process keeps them in memory; the workers of one `serve --workers N`
add theirs up through prometheus_client's multiprocess mode (`prepare_multiprocess`). prometheus_client is
imported on first use, never at import time: its mode is fixed when it is first imported.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds; answers take up to llm.timeout (60 s by default) when a model writes them.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OTHER_ROUTE = "(other)"  # a path no route matches: one label, not one per path a scanner tries

_lock = threading.Lock()
_metrics: _Metrics | None = None


def prepare_multiprocess(directory: str | os.PathLike) -> Path:
    """Make the metrics of several worker processes of one `serve` add up. Call it once, in the parent
    process, before the workers start: it empties `directory` (a previous run's counts would otherwise be
    added in), creates it, and sets PROMETHEUS_MULTIPROC_DIR, which the workers inherit so prometheus_client
    writes each worker's values to a file there and /metrics, in whichever worker answers, sums them all.

    The variable must be set before prometheus_client is first imported in a worker (this module imports it
    lazily, so importing assistant.* is fine); workers started with `spawn` (uvicorn's default) or forked
    after this call qualify. Counts of a worker that exits stay in the sum, as Prometheus expects of counters.

    Args:
        directory: a folder private to this `serve` (e.g. under its data dir), on a local disk.

    Returns the folder.
    """
    path = Path(directory)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[ENV] = str(path)
    return path


def multiprocess() -> bool:
    """Whether this process writes its metrics for a multiprocess `serve` (PROMETHEUS_MULTIPROC_DIR is set)."""
    return bool(os.environ.get(ENV))


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.requests = Counter("assistant_http_requests", "HTTP requests answered, by route template, method "
                                "and status.", ["route", "method", "status"])
        self.latency = Histogram("assistant_http_request_duration_seconds", "Time from a request's arrival to "
                                 "the last byte of its response (a stream's whole length), by route template and "
                                 "method.", ["route", "method"], buckets=LATENCY_BUCKETS)
        self.answers = Counter("assistant_answers", "Questions answered over HTTP (API, /v1, chat), by the "
                               "configured answer engine and outcome (answered or refused).", ["engine", "outcome"])
        self.ingested = Counter("assistant_ingest_articles", "Articles sent to the admin API, by outcome (added, "
                                "updated, unchanged, skipped as near-duplicates, failed, deleted).", ["outcome"])


def metrics() -> _Metrics:
    """This process's metrics (made on first use)."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = _Metrics()
        return _metrics


def count_answer(refused: bool, engine: str) -> None:
    """One question answered (or refused) through a surface of the server."""
    metrics().answers.labels(engine=engine, outcome="refused" if refused else "answered").inc()


def count_ingest(report: dict[str, Any]) -> None:
    """What one admin-API ingest did: the `ingest --json` summary (`added`, `updated`, ... counts or lists)."""
    m = metrics()
    for outcome in ("added", "updated", "unchanged", "skipped", "failed", "deleted"):
        value = report.get(outcome) or 0
        n = len(value) if isinstance(value, list) else int(value)
        if n:
            m.ingested.labels(outcome=outcome).inc(n)


def render() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format and its content type: this process's, or (multiprocess) the sum
    over every worker of this `serve`."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    metrics()  # every series is declared even before its first count
    if multiprocess():
        from prometheus_client import multiprocess as mp

        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def _template(routes, scope: dict[str, Any], prefix: str = "") -> str | None:
    """The path template of the route that takes `scope` (`/api/articles/{article_id}`), mounts followed."""
    return _find(routes, scope, prefix)[0]


def _find(routes, scope: dict[str, Any], prefix: str) -> tuple[str | None, bool]:
    """(template, full match) as Starlette routes: the first full match, in included routers too, else the
    first route whose path is right but not its method."""
    partial = None
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router() entry: its routes
        if included is not None:
            extra = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            path = scope["path"]
            if path.startswith(extra):
                inner, full = _find(included.routes, {**scope, "path": path[len(extra):] or "/"}, prefix + extra)
                if full:
                    return inner, True
                partial = partial or inner
            continue
        match, child = route.matches(scope)
        if match == Match.NONE:
            continue
        if isinstance(route, Mount):
            if not route.routes:  # an app without routes (static files): the mount names it
                return prefix + route.path + "/{path:path}", True
            inner, _ = _find(route.routes, {**scope, **child}, prefix + route.path)
            if inner is not None:  # the mount takes the request: its route names it, method right or not
                return inner, True
            continue
        if match == Match.FULL:
            return prefix + getattr(route, "path", ""), True
        partial = partial or prefix + getattr(route, "path", "")  # the path is right, the method is not
    return partial, False


class RequestMetrics:
    """ASGI middleware, outermost: counts every HTTP request by route template, method and status and times
    it to its last byte. Refusals of the access policy (401/403/429) count on the route they were for."""

    def __init__(self, app: ASGIApp, routes_of: ASGIApp | None = None):
        self.app = app
        self.routes_of = routes_of  # the app whose routes name the templates (set once it is built)

        @lru_cache(maxsize=4096)
        def route(method: str, path: str) -> str:
            scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
            found = _template(getattr(self.routes_of, "routes", []), scope)
            return found if found is not None else OTHER_ROUTE

        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500
        done = False

        async def timed(message: Message) -> None:
            nonlocal status, done
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and not done:
                done = True
                self._record(scope, status, start)

        try:
            await self.app(scope, receive, timed)
        finally:
            if not done:  # a crash, or a client that left mid-stream
                done = True
                self._record(scope, status, start)

    def _record(self, scope: Scope, status: int, start: float) -> None:
        route, method = self.route(scope["method"], scope.get("path", "")), scope["method"]
        m = metrics()
        m.requests.labels(route=route, method=method, status=str(status)).inc()
        m.latency.labels(route=route, method=method).observe(time.perf_counter() - start)
