"""The sources the watcher polls (settings file + admin API) and what it knows of each, kept in the data dir.

`<data-dir>/sources.json` holds the sources added through the admin API and, per source, the last poll,
success and error, the articles added, the feed's validators (ETag / Last-Modified) and what it knows of each
listed page (its marker, validators and when it was checked). Writes are read-modify-write under a lock file
and land atomically (temp file + rename), so the watcher and the API server can share it and a kill never
leaves half a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from assistant.config import Settings
from assistant.errors import ConfigError, StoreError
from assistant.live.addresses import check_url, link_local
from assistant.live.errors import FetchError

log = logging.getLogger(__name__)

KINDS = ("auto", "feed", "sitemap", "page")


def source_id(url: str) -> str:
    """A short stable id for a source URL (the admin API's DELETE /api/sources/{id})."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:12]


@dataclass
class Source:
    """One URL to poll: a feed, a sitemap or a page; `origin` says who configured it."""

    url: str
    kind: str = "auto"
    interval: float = 900.0
    origin: str = "config"  # "config" (settings file) or "api"

    @property
    def id(self) -> str:
        return source_id(self.url)


@dataclass
class PageState:
    """What the watcher knows of one listed page: the listing's marker for it (its lastmod or date), the
    page's validators, when it was last checked, the article it became, and failed attempts."""

    marker: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    checked: float = 0.0
    id: str | None = None
    url: str | None = None
    fails: int = 0
    error: str | None = None
    redirects: list[str] | None = None

    _KEYS = {"marker": "m", "last_modified": "lm"}  # the short names sources.json has always used

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PageState:
        names = {cls._KEYS.get(f, f): f for f in cls.__dataclass_fields__}
        return cls(**{names[k]: v for k, v in d.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        return {self._KEYS.get(k, k): v for k, v in asdict(self).items() if v is not None}


@dataclass
class SourceState:
    """What the watcher knows of a source; `items` maps each listed URL to what it knows of that page."""

    last_poll: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    articles_added: int = 0
    kind: str | None = None  # detected kind
    etag: str | None = None
    last_modified: str | None = None
    pending: int = 0  # listed pages left for the next rounds (the per-round cap)
    items: dict[str, PageState] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SourceState:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        items = known.get("items")
        if not isinstance(items, dict):
            items = {}
        known["items"] = {url: PageState.from_json(it) for url, it in items.items() if isinstance(it, dict)}
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "items": {url: it.to_json() for url, it in self.items.items()}}

    def public(self) -> dict[str, Any]:
        """The fields the API and `stats` show (no validators, no per-page detail)."""
        return {"last_poll": _iso(self.last_poll), "last_success": _iso(self.last_success),
                "last_error": self.last_error, "articles_added": self.articles_added, "kind": self.kind,
                "pages_known": len(self.items), "pending": self.pending}


def _iso(t: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else None


def validate_source(url: str, kind: str = "auto") -> str:
    """The URL if it may be a source (absolute http/https, a known kind); ConfigError otherwise."""
    try:
        url = check_url(url)
    except FetchError as e:
        raise ConfigError(f"source {url!r}: {e.reason}", "a source is an http:// or https:// URL") from None
    if link_local(urlsplit(url).hostname or "", resolve=False):
        raise ConfigError(f"source {url}: a link-local or cloud metadata address",
                          "sources are news sites; such addresses are never fetched")
    if kind not in KINDS:
        raise ConfigError(f"source {url}: unknown kind {kind!r}", f"use one of {', '.join(KINDS)}")
    return url


class SourceBook:
    """The configured sources and their state, persisted in `<data-dir>/sources.json`."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.path = settings.data_dir / "sources.json"
        self._lock_path = settings.data_dir / "sources.lock"

    # ------------------------------------------------------------ sources

    def sources(self) -> list[Source]:
        """Settings-file sources first, then those added through the API (a URL in both counts once)."""
        default = self.settings.watch.interval
        out: dict[str, Source] = {}
        for s in self.settings.sources:
            url = validate_source(s.url, s.kind)
            out.setdefault(url, Source(url, s.kind, s.interval or default, "config"))
        for s in self._read().get("added", []):
            if isinstance(s, dict) and isinstance(s.get("url"), str) and s["url"] not in out:
                out[s["url"]] = Source(s["url"], s.get("kind") or "auto", float(s.get("interval") or default), "api")
        return list(out.values())

    def add(self, url: str, kind: str = "auto", interval: float | None = None) -> Source:
        """Add a source (admin API); adding a known URL updates its kind and interval."""
        url = validate_source(url, kind)
        if any(s.url == url for s in self.settings.sources):
            raise ConfigError(f"{url} is already a source in the settings file", "change it there")
        if interval is not None and interval <= 0:
            raise ConfigError("interval must be positive (seconds)")
        with self._edit() as data:
            added = [s for s in data.get("added", []) if isinstance(s, dict) and s.get("url") != url]
            added.append({"url": url, "kind": kind, "interval": interval})
            data["added"] = added
        return Source(url, kind, interval or self.settings.watch.interval, "api")

    def remove(self, sid: str) -> Source | None:
        """Remove an API-added source by id, with its state; None if there is none (settings-file sources
        raise ConfigError: they are removed from the file)."""
        for s in self.settings.sources:
            if source_id(s.url.strip()) == sid:
                raise ConfigError(f"{s.url} is configured in the settings file", "remove it from [[sources]] there")
        with self._edit() as data:
            for s in data.get("added", []):
                if isinstance(s, dict) and source_id(s.get("url", "")) == sid:
                    data["added"].remove(s)
                    data.get("state", {}).pop(s["url"], None)
                    return Source(s["url"], s.get("kind") or "auto",
                                  float(s.get("interval") or self.settings.watch.interval), "api")
        return None

    # ------------------------------------------------------------ state

    def states(self) -> dict[str, SourceState]:
        raw = self._read().get("state", {})
        return {url: SourceState.from_json(d) for url, d in raw.items() if isinstance(d, dict)}

    def state(self, url: str) -> SourceState:
        return self.states().get(url) or SourceState()

    def save_states(self, states: dict[str, SourceState]) -> None:
        """Write these sources' states (others untouched); states of sources no longer configured are dropped."""
        known = {s.url for s in self.sources()}
        with self._edit() as data:
            current = data.setdefault("state", {})
            for url, st in states.items():
                if url in known:
                    current[url] = st.to_json()
            for url in [u for u in current if u not in known]:
                del current[url]

    def url_states(self) -> dict[str, SourceState]:
        """What `assistant ingest URL` learnt of the URLs it was given (validators, listed pages), so a second
        run of the same URLs downloads nothing unchanged; kept apart from the configured sources' states."""
        raw = self._read().get("urls", {})
        return {url: SourceState.from_json(d) for url, d in raw.items() if isinstance(d, dict)}

    def save_url_states(self, states: dict[str, SourceState]) -> None:
        with self._edit() as data:
            current = data.setdefault("urls", {})
            for url, st in states.items():
                current[url] = st.to_json()

    # ------------------------------------------------------------ file

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.warning("cannot read %s (%s); starting from no source state", self.path, e)
            return {}
        return data if isinstance(data, dict) else {}

    @contextmanager
    def _edit(self) -> Iterator[dict[str, Any]]:
        try:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            fh = open(self._lock_path, "a+")
        except OSError as e:
            raise StoreError(f"cannot write to the data dir {self.settings.data_dir}: {e}",
                             "choose a writable --data-dir") from e
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                data = self._read()
                yield data
                _write_atomic(self.path, data)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")  # ASCII: any str is writable
    os.replace(tmp, path)

