"""The ASGI app `assistant serve` runs: REST API, /widget.js, health check, and the Gradio chat at /."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

import gradio as gr
from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi_offline import FastAPIOffline
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount

from assistant import __version__
from assistant.answering.chain import Assistant, check_question, events_of
from assistant.config import Settings
from assistant.errors import AssistantError, StoreError
from assistant.index.lexical import LexicalIndex
from assistant.ingest.ingestor import Ingestor
from assistant.ingest.loaders import articles_from_records
from assistant.text.timeparse import parse_day
from assistant.web import metrics
from assistant.web.actor import actor_of
from assistant.web.app import CSS, THEME, build_app
from assistant.web.errors import crash, error_response, install_handlers, stream_error_body
from assistant.web.openai_api import OpenAIErrors, openai_router
from assistant.web.schemas import (
    ERRORS,
    ArticleBatch,
    ArticleIn,
    ArticlePage,
    AskIn,
    AskOut,
    DeletedOut,
    HealthOut,
    IngestOut,
    QuotesOut,
)
from assistant.web.security import install
from assistant.web.sources import sources_router

log = logging.getLogger(__name__)

WIDGET_JS = Path(__file__).parent / "widget" / "widget.js"


def _sse(event: str, data: Any) -> str:
    # JSON on one data line: answer text may hold newlines, which would otherwise split the SSE field.
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(settings: Settings, assistant: Assistant | None = None) -> FastAPI:
    """FastAPI app: the REST API under /api, /widget.js, /healthz, docs at /docs, the Gradio UI mounted at /."""
    assistant = assistant or Assistant(settings)
    # Every answer of every surface of this app (REST, stream, /v1, the chat) passes the chain's one end.
    assistant.on_answer = lambda answer: metrics.count_answer(answer.refused, settings.answer.engine)
    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the fastapi-offline package, not a CDN.
    app = FastAPIOffline(title="Newsroom assistant", version=__version__,
                         description="Cited answers from the newsroom's articles. Ask routes take a widget token "
                                     "(or none from the same origin); article writes take the admin token.")
    app.state.assistant = assistant
    app.state.ingestor = None
    install(app, settings.server, users=assistant.archive.users)
    install_handlers(app)
    app.add_middleware(OpenAIErrors)  # outermost: /v1 errors, the access policy's included, in OpenAI's shape

    def ingestor() -> Ingestor:
        if app.state.ingestor is None:
            app.state.ingestor = Ingestor(settings, archive=assistant.archive)
        return app.state.ingestor

    # In this order: the OpenAPI schema lists the paths so, and the /api catch-all comes after every /api route.
    for router in (sources_router(settings, assistant.archive.audit),  # /api/sources: the watcher's feeds (admin token)
                   openai_router(assistant),  # /v1: the archive as an OpenAI-compatible model
                   health_router(assistant),  # /healthz, /metrics
                   ask_router(assistant),  # /api/ask, /api/ask/stream
                   articles_router(assistant, ingestor),  # /api/articles (writes: admin token)
                   quotes_router(assistant),  # /api/quotes: who said what
                   fallback_router()):  # /api/* not found, /widget.js
        app.include_router(router)
    # Mounted last: routes above win over the Gradio app at /.
    # show_error=False: an exception reaches the page as our own message (build_app), never its text.
    app = gr.mount_gradio_app(app, build_app(assistant), path="/", css=CSS, theme=THEME, footer_links=["api"],
                              show_error=False, run_history=False, mcp_server=False)
    # Outermost: every request is counted, the access policy's refusals included, under its route template.
    app.add_middleware(metrics.RequestMetrics, routes_of=app)
    # Gradio's app answers its own crashes (a bad fn_index...) with plain "Internal Server Error": ours is JSON.
    for route in app.routes:
        if isinstance(route, Mount) and isinstance(route.app, Starlette):
            route.app.add_exception_handler(Exception, crash)
    return app


def health_router(assistant: Assistant) -> APIRouter:
    """The probes: /healthz (store and keyword index) and /metrics (Prometheus)."""
    router = APIRouter()
    health = Health(assistant)

    @router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut, "description":
                                                                    "The vector store is unreachable"}})
    def healthz() -> JSONResponse:
        """Whether the store is reachable and this process's keyword index is in step with it (503: store down)."""
        body = HealthOut.model_validate(health.check()).model_dump()  # every key, in every state
        return JSONResponse(body, status_code=503 if body["status"] == "unavailable" else 200)

    @router.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        """Prometheus text format: requests, latencies, answers, refusals, ingests (see assistant.metrics)."""
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)

    return router


def ask_router(assistant: Assistant) -> APIRouter:
    """/api/ask and its Server-Sent Events form /api/ask/stream."""
    router = APIRouter()

    @router.post("/api/ask", response_model=AskOut, responses=ERRORS, tags=["ask"])
    def ask(req: AskIn, request: Request) -> dict:
        """Answer a question from the articles, with numbered citations."""
        assistant.archive.audit.question(actor_of(request), "/api/ask", check_question(req.question))
        return assistant.ask(req.question, _turns(req), _filters(req)).to_json(full=True)

    @router.post("/api/ask/stream", responses={**ERRORS, 200: {
        "content": {"text/event-stream": {}},
        "description": "Server-Sent Events: `delta` {text}... then one `citations` (the AskOut object, whose "
                       "`answer` replaces the streamed text) then `done`; `notice` {notice} when the model server "
                       "failed and the extractive engine answers; `error` {error, hint} on failure."}},
        tags=["ask"])
    async def ask_stream(req: AskIn, request: Request) -> StreamingResponse:
        """The answer as Server-Sent Events, text first, citations at the end."""
        await run_in_threadpool(assistant.archive.audit.question, actor_of(request), "/api/ask/stream",
                                check_question(req.question))
        chunks = assistant.chain.astream({"question": req.question, "history": _turns(req),
                                          "filters": _filters(req)})
        # The first chunk comes after retrieval: pulling it here turns store errors into a proper status.
        # A client that goes away cancels the stream, which stops the model call (chain.iterate_in_thread).
        first = await anext(chunks, None)
        return StreamingResponse(_sse_events(first, chunks), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router


def articles_router(assistant: Assistant, ingestor: Callable[[], Ingestor]) -> APIRouter:
    """The archive's articles: listed by anyone who may ask, added and removed with the admin token
    (web/security.py). `ingestor` makes the app's one Ingestor on the first write."""
    router = APIRouter()

    @router.get("/api/articles", response_model=ArticlePage, responses=ERRORS, tags=["articles"])
    def list_articles(offset: Annotated[int, Query(ge=0)] = 0,
                      limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
        """Stored articles, newest first."""
        manifest = {} if assistant.store.is_empty() else assistant.store.manifest()
        metas = sorted(manifest.values(), key=lambda m: (m.get("published_at") or "", m.get("title") or ""),
                       reverse=True)
        page = metas[offset:offset + limit]
        counts = assistant.store.chunk_counts([m["article_id"] for m in page])
        return {"total": len(metas), "offset": offset, "limit": limit, "articles": [
            {"id": m["article_id"], "title": m.get("title", ""), "source": m.get("source"),
             "published_at": m.get("published_at"), "url": m.get("url"), "chunks": counts[m["article_id"]]}
            for m in page]}

    @router.post("/api/articles", response_model=IngestOut, responses=ERRORS, tags=["articles"])
    def add_articles(payload: Annotated[ArticleIn | list[ArticleIn] | ArticleBatch, Body()], request: Request) -> dict:
        """Ingest one article, a list, or {"articles": [...]} (admin token). Unchanged articles are skipped."""
        items = payload.articles if isinstance(payload, ArticleBatch) else (
            payload if isinstance(payload, list) else [payload])
        if not items:
            raise AssistantError("no articles in the request", 'send one article, a list, or {"articles": [...]}')
        records = [i.model_dump(exclude_none=True) for i in items]
        articles, failures = articles_from_records(records, "request")
        if not articles:
            raise AssistantError(failures[0].reason if len(failures) == 1 else
                                 "; ".join(f.reason for f in failures[:5]), "each article needs a title and a body")
        report = ingestor().ingest_articles(articles)
        report.failed[:0] = failures
        assistant.archive.audit.record(actor_of(request), "ingest", " ".join(a.id for a in articles),
                                       report.summary() + ": " + "; ".join(a.title for a in articles))
        out = report.to_json()
        metrics.count_ingest(out)
        return {**out, "ids": [a.id for a in articles]}

    @router.delete("/api/articles/{article_id}", response_model=DeletedOut, responses=ERRORS, tags=["articles"])
    def delete_article(article_id: str, request: Request) -> dict:
        """Remove an article and its chunks (admin token)."""
        title = assistant.store.manifest([article_id]).get(article_id, {}).get("title", "")
        n = ingestor().delete(article_id)
        if n == 0:
            raise StarletteHTTPException(404, f"no article with id {article_id}")
        assistant.archive.audit.record(actor_of(request), "delete", article_id, f"{title} ({n} chunks)")
        metrics.count_ingest({"deleted": 1})
        return {"id": article_id, "chunks": n}

    return router


def quotes_router(assistant: Assistant) -> APIRouter:
    """/api/quotes: the archive's quotes by speaker, words, date and outlet (the access policy of /api/ask)."""
    router = APIRouter()

    @router.get("/api/quotes", response_model=QuotesOut, responses=ERRORS, tags=["quotes"])
    def list_quotes(speaker: Annotated[str | None, Query(max_length=200, description=
                                                         "That speaker under any of their names.")] = None,
                    about: Annotated[str | None, Query(max_length=500, description=
                                                       "Every word of it in the quote or its sentence.")] = None,
                    since: Annotated[str | None, Query(description="Published on/after (YYYY-MM-DD).")] = None,
                    until: Annotated[str | None, Query(description="Published on/before (YYYY-MM-DD).")] = None,
                    source: Annotated[list[str] | None, Query(max_length=50, description=
                                                              "Outlets whose name contains this.")] = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
        """Who said what: quotes with their speakers and exact spans, newest first."""
        for name, value in (("since", since), ("until", until)):
            if value is not None:
                try:
                    parse_day(value)
                except AssistantError as e:
                    raise AssistantError(f"invalid {name}: {e.message}", e.hint) from None
        found = assistant.archive.quotes.find(speaker=speaker, about=about, since=since, until=until,
                                              source=source or [], limit=limit)
        return {"quotes": [r.to_json() for r in found]}

    return router


def fallback_router() -> APIRouter:
    """An unknown /api path as our JSON 404 (not the Gradio page), and the widget's script."""
    router = APIRouter()

    @router.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def api_not_found(rest: str) -> JSONResponse:
        # Without this, unknown /api paths would fall through to the Gradio app and answer with HTML.
        return error_response(404, f"no API route /api/{rest}", "see /docs")

    @router.get("/widget.js", include_in_schema=False)
    def widget_js() -> FileResponse:
        return FileResponse(WIDGET_JS, media_type="text/javascript; charset=utf-8",
                            headers={"Cache-Control": "public, max-age=300"})

    return router


def _turns(req: AskIn) -> list[tuple[str, str]]:
    return [(t.question, t.answer) for t in req.history]


def _filters(req: AskIn) -> dict[str, Any] | None:
    return req.filters.model_dump() if req.filters else None


async def _sse_events(first: dict | None, chunks: AsyncIterator[dict]) -> AsyncIterator[str]:
    """[notice] delta... citations done; an `error` event replaces the rest when answering fails midway."""
    chunk = first
    try:
        while chunk is not None:
            for ev in events_of(chunk):
                if ev.kind == "delta" and ev.text:
                    yield _sse("delta", {"text": ev.text})
                elif ev.kind == "notice" and ev.text:  # e.g. the model server is down: say so before the fallback
                    yield _sse("notice", {"notice": ev.text})
                elif ev.kind == "answer" and ev.answer is not None:
                    yield _sse("citations", ev.answer.to_json(full=True))
            chunk = await anext(chunks, None)
    except AssistantError as e:
        log.warning("answer stream failed: %s", e)
        yield _sse("error", stream_error_body(e))
    except Exception as e:
        log.exception("answer stream crashed")
        yield _sse("error", stream_error_body(e))
    yield _sse("done", {})


class Health:
    """/healthz's checks: the store (count and change head) and this process's keyword index, through
    `LexicalIndex.status` (what `assistant stats` prints). An index found behind is brought in step in the
    background (its own `sync`, as a query would), so an idle server catches up too; behind for longer than
    GRACE seconds it is `degraded`."""

    GRACE = 15.0  # a sync after an ingest takes well under a second; a first build of 21k chunks about 4 s

    def __init__(self, assistant: Assistant):
        self.assistant = assistant
        self._behind_since: float | None = None
        self._syncing = threading.Lock()
        self._store_down = False
        self._index_broken = False

    def check(self) -> dict[str, Any]:
        index = self.assistant.lexical
        try:
            st = index.status()
        except StoreError as e:
            return self._unavailable(e)
        except Exception as e:  # noqa: BLE001 - the index unreadable (files gone, corrupt): dense still answers
            if not self._index_broken:  # once until it reads again, not once per probe
                log.warning("health: the keyword index cannot be read: %s", e)
                self._index_broken = True
            try:
                count, head = self.assistant.store.count(), self.assistant.store.change_head()
            except StoreError as e2:
                return self._unavailable(e2)
            return {"status": "degraded", "chunks": count, "store": {"reachable": True, "change": head},
                    "keyword_index": {"reachable": False, "in_step": False},
                    "error": "the keyword index cannot be read",
                    "hint": "it is a cache: `assistant reindex` rebuilds it from the store"}
        self._store_down = self._index_broken = False
        in_step = bool(st["in_step"])
        now = time.monotonic()
        if in_step:
            self._behind_since = None
            catching_up = False
        else:
            if self._behind_since is None:
                self._behind_since = now
            self._catch_up(index)
            catching_up = now - self._behind_since < self.GRACE
        body = {"status": "ok" if in_step or catching_up else "degraded", "chunks": st["store_chunks"],
                "store": {"reachable": True, "change": st["store_seq"]},
                "keyword_index": {"reachable": True, "in_step": in_step, "catching_up": catching_up,
                                  "chunks": st["chunks"], "change": st["seq"]}}
        if body["status"] == "degraded":
            body.update(error=f"the keyword index is behind the store ({st['chunks']} of {st['store_chunks']} "
                              f"chunks, change {st['seq']} of {st['store_seq']})",
                        hint="it syncs on its own; if it stays behind, run `assistant reindex`")
        return body

    def _catch_up(self, index: LexicalIndex) -> None:
        """One background sync at a time (a first build can take minutes at a million chunks)."""
        if not self._syncing.acquire(blocking=False):
            return

        def run() -> None:
            try:
                index.sync()
            except Exception as e:  # noqa: BLE001 - reported by the next check
                log.info("health: keyword index sync failed: %s", e)
            finally:
                self._syncing.release()

        threading.Thread(target=run, name="healthz-sync", daemon=True).start()

    def _unavailable(self, e: StoreError) -> dict[str, Any]:
        if not self._store_down:  # once per outage, not once per probe
            log.warning("health: the vector store is unreachable: %s", e)
            self._store_down = True
        try:  # what this process's index holds, without asking the store
            st = self.assistant.lexical.status(against_store=False)
            kw = {"reachable": True, "in_step": False, "chunks": st["chunks"], "change": st["seq"]}
        except Exception:  # noqa: BLE001
            kw = {"reachable": False, "in_step": False}
        # The store's own message names its address: for the log, not for a public route.
        return {"status": "unavailable", "chunks": None, "store": {"reachable": False}, "keyword_index": kw,
                "error": "the vector store (Chroma) is unreachable", "hint": e.hint or "check the Chroma server (store.host)"}
