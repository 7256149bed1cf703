"""The admin API of the watcher's sources: GET/POST/DELETE /api/sources (admin token only, see security.py)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.index.audit import AuditLog
from assistant.live.sources import Source, SourceBook, SourceState
from assistant.web.actor import actor_of


class SourceIn(BaseModel):
    """A feed, sitemap or article page for `assistant watch` to poll."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"url": "https://calder-gazette.example/rss.xml", "kind": "auto", "interval": 900}]})
    url: str = Field(min_length=1, max_length=2000, description="http:// or https:// URL.")
    kind: Literal["auto", "feed", "sitemap", "page"] = Field("auto", description="'auto' detects it.")
    interval: float | None = Field(None, gt=0, le=7 * 86400, description="Seconds between polls "
                                   "(default watch.interval).")


class SourceOut(BaseModel):
    """A source and what the watcher last did with it (times in UTC, ISO 8601; null = never)."""

    id: str
    url: str
    kind: str
    interval: float
    origin: str = Field(description="'config' (settings file: change it there) or 'api'.")
    last_poll: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    articles_added: int = 0
    pages_known: int = 0
    pending: int = Field(0, description="Listed pages left for the next rounds (watch.items_per_round).")


class SourceList(BaseModel):
    sources: list[SourceOut]


def source_out(source: Source, state: SourceState | None) -> dict:
    public = (state or SourceState()).public()
    return {"id": source.id, "url": source.url, "kind": source.kind if source.kind != "auto" else
            public.pop("kind") or "auto", "interval": source.interval, "origin": source.origin,
            **{k: v for k, v in public.items() if k != "kind"}}


def sources_router(settings: Settings, audit: AuditLog | None = None) -> APIRouter:
    """The /api/sources routes over the data dir's sources file (shared with a running `assistant watch`);
    additions and removals go into `audit`, the archive's audit trail."""
    router = APIRouter(prefix="/api/sources", tags=["sources"])
    book = SourceBook(settings)

    @router.get("", response_model=SourceList)
    def list_sources() -> dict:
        """Every source with its last poll, last success, last error and articles added (admin token)."""
        states = book.states()
        return {"sources": [source_out(s, states.get(s.url)) for s in book.sources()]}

    @router.post("", response_model=SourceOut, status_code=201)
    def add_source(req: SourceIn, request: Request) -> dict:
        """Add a source (admin token); `assistant watch` picks it up within a minute."""
        source = book.add(req.url, req.kind, req.interval)
        if audit is not None:
            audit.record(actor_of(request), "source.add", source.url, f"{source.kind}, every {source.interval:g} s")
        return source_out(source, book.states().get(source.url))

    @router.delete("/{source_id}", response_model=SourceOut)
    def delete_source(source_id: str, request: Request) -> dict:
        """Remove a source added through the API, and its state (admin token); its articles stay."""
        try:
            source = book.remove(source_id)
        except ConfigError as e:
            raise HTTPException(409, e.message + f" ({e.hint})") from None
        if source is None:
            raise HTTPException(404, f"no source with id {source_id}")
        if audit is not None:
            audit.record(actor_of(request), "source.remove", source.url, f"id {source.id}")
        return source_out(source, None)

    return router
