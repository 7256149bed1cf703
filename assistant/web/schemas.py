"""The request and response shapes of the REST API (/api, /healthz): they make its OpenAPI schema at /docs.
The /v1 (web/openai_api.py) and /api/sources (web/sources.py) routes keep theirs beside them: each is that
router's own protocol."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assistant.answering.chain import MAX_QUESTION_CHARS
from assistant.errors import AssistantError
from assistant.text.timeparse import parse_day


class ErrorOut(BaseModel):
    """Every error: a message for the user and, when there is one, how to fix it."""

    error: str
    hint: str | None = None


class Turn(BaseModel):
    """One earlier exchange of the conversation."""

    question: str = Field(max_length=MAX_QUESTION_CHARS)
    answer: str = Field("", max_length=20_000)


_DAY = "YYYY-MM-DD, or an ISO week date: 2025-W23-2 is that week's Tuesday, 2025-W23 its Monday"


class FiltersIn(BaseModel):
    """Restrict the articles an answer may use."""

    model_config = ConfigDict(extra="forbid")
    date_from: str | None = Field(None, description=f"Published on/after ({_DAY}).")
    date_to: str | None = Field(None, description=f"Published on/before ({_DAY}).")
    sources: list[str] = Field(default_factory=list, max_length=50, description="Only these outlets.")
    today: str | None = Field(None, description=f"The day the question is asked, for 'this week' ({_DAY}; "
                                                "default: today).")

    @field_validator("date_from", "date_to", "today")
    @classmethod
    def _real_day(cls, value: str | None) -> str | None:
        """The one day rule, retrieval's (text/timeparse.parse_day): a day of the calendar, as YYYY-MM-DD."""
        if value is not None:
            try:
                return parse_day(value).isoformat()
            except AssistantError as e:
                raise ValueError(e.message) from None
        return value


class AskIn(BaseModel):
    """A question, optionally with the conversation so far and filters."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"question": "Did Russia offer Iran military help?"}]})
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    history: list[Turn] = Field(default_factory=list, max_length=20, description="Earlier turns, oldest first.")
    filters: FiltersIn | None = None


class CitationOut(BaseModel):
    """A numbered source: an exact quote of an article body, with its character span."""

    n: int
    article_id: str
    title: str
    source: str | None
    published_at: str | None
    url: str | None
    quote: str = Field(description="Exact text of the article body between start and end.")
    start: int
    end: int
    speaker: str | None = Field(None, description="Who said it: the speaker of the article's quote that holds the "
                                                  "cited span (at least half of it), else null (narrative text, "
                                                  "an unnamed speaker).")
    supported: bool | None = Field(None, description="Whether the cited passage supports its sentence (when checked).")
    passage: str = Field("", description="The retrieved passage the quote comes from, for context.")


class AskOut(BaseModel):
    """The answer: text with [n] markers, the citations they refer to, and the support/refusal flags."""

    answer: str
    refused: bool = Field(description="True when the articles do not cover the question.")
    citations: list[CitationOut]
    support: float | None = Field(None, description="Share of the answer supported by its citations (when checked).")
    unsupported: list[str] = Field(default_factory=list, description="Claims or citations that were dropped.")
    notice: str | None = Field(None, description="E.g. the model server is down and the extractive engine answered.")


class ArticleIn(BaseModel):
    """An article to ingest. `content` or `text` may stand in for `body`; dates are normalised to YYYY-MM-DD."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "title": "Ferry strike ends in Port Avrel", "body": "PORT AVREL — Ferry crews on the island of ...",
        "source": "Avrel Harbour Gazette", "published_at": "2025-06-24",
        "url": "https://gazette.example/port-avrel/ferry-strike"}]})
    title: str
    body: str | None = None
    content: str | None = None
    text: str | None = None
    source: str | None = None
    author: str | None = None
    url: str | None = None
    published_at: str | None = None


class ArticleBatch(BaseModel):
    articles: list[ArticleIn]


class FailureOut(BaseModel):
    path: str
    reason: str
    line: int | None = None


class IngestOut(BaseModel):
    """What an ingest did (same fields as `assistant ingest --json`)."""

    added: int
    updated: int
    unchanged: int
    deleted: int
    chunks: int
    failed: list[FailureOut]
    skipped: list[FailureOut]
    resumed: str | None
    seconds: float
    ids: list[str] = Field(default_factory=list, description="Article ids of the accepted articles, in order.")


class ArticleOut(BaseModel):
    id: str
    title: str
    source: str | None
    published_at: str | None
    url: str | None
    chunks: int


class ArticlePage(BaseModel):
    total: int
    offset: int
    limit: int
    articles: list[ArticleOut]


class QuoteOut(BaseModel):
    """One quote of an article: who said it and its exact text, the body between `start` and `end`."""

    speaker: str | None = Field(description="The fullest name the article gives, \"A and B\" for a joint "
                                            "statement, null when the article does not name the speaker.")
    quote: str = Field(description="Exact text of the article body between start and end.")
    kind: str = Field(description="\"direct\" (inside quotation marks) or \"reported\" (said that ...).")
    article_id: str
    title: str
    source: str | None
    published_at: str | None
    url: str | None
    start: int
    end: int


class QuotesOut(BaseModel):
    """The quotes matching every filter given, newest first."""

    quotes: list[QuoteOut]


class DeletedOut(BaseModel):
    id: str
    chunks: int = Field(description="Chunks removed from the store.")


class StoreHealth(BaseModel):
    reachable: bool
    change: int | None = Field(None, description="The store's change head (sequence of its latest write).")


class KeywordIndexHealth(BaseModel):
    reachable: bool = Field(description="Whether this process can read its keyword index.")
    in_step: bool = Field(description="Same change sequence and chunk count as the store.")
    catching_up: bool = Field(False, description="Behind the store for less than the grace a normal sync needs.")
    chunks: int | None = None
    change: int | None = Field(None, description="The store change the index last applied.")


class HealthOut(BaseModel):
    """`ok`: store reachable, keyword index in step or catching up; `degraded`: the store answers but the
    keyword index is unreadable or behind for longer (dense search still answers); `unavailable` (503): the
    store is unreachable."""

    status: str
    chunks: int | None = Field(description="Chunks in the store (None when it is unreachable).")
    store: StoreHealth
    keyword_index: KeywordIndexHealth
    error: str | None = Field(None, description="What is wrong, when something is.")
    hint: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": what} for code, what in {
        400: "Bad question or article", 401: "Missing or unknown token", 403: "Token or origin not allowed",
        413: "Request body too large", 422: "Invalid request fields", 429: "Rate limit; see Retry-After",
        503: "The vector store is unreachable"}.items()}
