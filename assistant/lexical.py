"""The BM25 keyword index over the same chunks as the vector store, persisted beside it."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+(?:[.'’-]\w+)*", re.UNICODE)
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves said says say
also after would could new one two its it's s t don't
""".split())


def _bm25s():
    """bm25s, imported lazily; it sets its own logger to DEBUG on import, which would print on every ingest."""
    import bm25s

    logging.getLogger("bm25s").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    return bm25s


def tokenize(text: str) -> list[str]:
    """Lowercased words and numbers without stopwords; light plural folding keeps names intact."""
    out = []
    for m in _WORD.finditer(text.lower()):
        w = m.group().replace("’", "'")
        if w.endswith("'s"):
            w = w[:-2]
        w = w.replace(".", "") if len(w) <= 6 and "." in w else w  # u.s. -> us, a.m. -> am
        if w in STOPWORDS or not w:
            continue
        if len(w) > 4 and w.endswith("s") and not w.endswith(("ss", "us", "is")) and not w[0].isdigit():
            w = w[:-1]
        out.append(w)
    return out


_SUFFIX = re.compile(r"(ing|ed|ly|es|s)$")
_ORIGIN = re.compile(r"(ese|ian|ean|an|ia|a|i|e)$")  # China/Chinese, Iran/Iranian, Israel/Israeli


def stem(term: str) -> str:
    """A crude stem (suffix cut, then a 6-letter prefix) so 'military'/'militarily', 'offer'/'offered' meet,
    and a place meets its people ('China'/'Chinese', 'Russia'/'Russian', 'Ukraine'/'Ukrainian')."""
    if len(term) <= 4 or term[0].isdigit():
        return term
    t = _SUFFIX.sub("", term)
    cut = _ORIGIN.sub("", t)
    return (cut if len(cut) >= 4 else t)[:6]


# wordfreq's lists by script: a word's information is judged against its own language's frequencies.
_SCRIPTS = (("ru", re.compile(r"[\u0400-\u04FF]")), ("ar", re.compile(r"[\u0600-\u06FF]")),
            ("he", re.compile(r"[\u0590-\u05FF]")), ("el", re.compile(r"[\u0370-\u03FF]")))
MAX_INFORMATION = 7.5  # a word no list knows (a rare name, a code): as informative as a word can be


@functools.lru_cache(maxsize=50_000)
def information(term: str) -> float:
    """How much a word says, from its frequency in general text (wordfreq's Zipf scale, 0 to about 7.5):
    'the' 0.3, 'military' 2.3, 'Peskov' 5.6, an unknown name 7.5; never below 0.5.

    Unlike IDF from the archive, it does not depend on what the archive holds, so a score built on it means
    the same on a one-article archive and on a million-chunk one.
    """
    from wordfreq import zipf_frequency

    lang = next((code for code, script in _SCRIPTS if script.search(term)), "en")
    return max(0.5, MAX_INFORMATION - zipf_frequency(term, lang))


@functools.lru_cache(maxsize=20_000)
def token_set(text: str) -> frozenset[str]:
    """`tokenize` as a set, memoized: reranking and confidence look at the same passages and sentences again
    within a question and across questions."""
    return frozenset(tokenize(text))


class LexicalIndex:
    """bm25s index of chunk texts (title included), rebuilt from a token cache after each ingest.

    Files in `path`: tokens.json (chunk id -> [text hash, tokens, date_int, source]) and the bm25s index.
    A reader reloads when `stamp` changes, so a running server sees new ingests.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self._bm25 = None
        self.ids: list[str] = []
        self.dates = np.zeros(0, dtype=np.int64)
        self.sources: list[str] = []

    # -- writing (ingest holds the ingest lock) ---------------------------------------------
    def load_cache(self) -> dict[str, list[Any]]:
        f = self.path / "tokens.json"
        if not f.exists():
            return {}
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("keyword index cache unreadable; it will be rebuilt from the store")
            return {}

    def rebuild(self, cache: dict[str, list[Any]]) -> None:
        """Write the token cache and a fresh bm25s index atomically (temp folder, then rename)."""
        bm25s = _bm25s()
        tmp = self.path.with_name(self.path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        ids = sorted(cache)
        (tmp / "tokens.json").write_text(json.dumps(cache), encoding="utf-8")
        meta = {"ids": ids, "dates": [cache[i][2] for i in ids], "sources": [cache[i][3] for i in ids]}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if ids:
            bm25 = bm25s.BM25()
            bm25.index([cache[i][1] or ["\x00"] for i in ids], show_progress=False)
            bm25.save(str(tmp / "bm25"), show_progress=False)
        old = self.path.with_name(self.path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.path.exists():
            os.replace(self.path, old)
        os.replace(tmp, self.path)
        shutil.rmtree(old, ignore_errors=True)
        (self.path.parent / f"{self.path.name}.stamp").write_text(str(len(ids)))

    # -- reading -------------------------------------------------------------------------------
    def _current_stamp(self) -> float | None:
        try:
            return (self.path.parent / f"{self.path.name}.stamp").stat().st_mtime_ns
        except OSError:
            return None

    def _ensure_loaded(self) -> None:
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            bm25s = _bm25s()
            try:
                meta = json.loads((self.path / "meta.json").read_text(encoding="utf-8"))
                bm25 = bm25s.BM25.load(str(self.path / "bm25"), show_progress=False) if meta["ids"] else None
            except (OSError, ValueError) as e:
                log.warning("keyword index not readable (%s); keyword search off until the next ingest", e)
                meta, bm25 = {"ids": [], "dates": [], "sources": []}, None
            self._bm25, self.ids = bm25, meta["ids"]
            self.dates = np.array([d or 0 for d in meta["dates"]], dtype=np.int64)
            self.sources = [s or "" for s in meta["sources"]]
            self._stamp = stamp

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self.ids)

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) best first; `mask` (0/1 per chunk) restricts the candidates."""
        self._ensure_loaded()
        tokens = tokenize(query)
        if self._bm25 is None or not tokens:
            return []
        scores = self._bm25.get_scores(tokens)
        if mask is not None:
            scores = scores * mask
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[i], float(scores[i])) for i in top if scores[i] > 0]

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each (already tokenized) term; unseen terms get the maximum."""
        self._ensure_loaded()
        n = len(self.ids)
        top = math.log(1 + (n + 0.5) / 0.5) if n else 1.0
        if self._bm25 is None:
            return {t: top for t in terms}
        vocab, indptr = self._bm25.vocab_dict, self._bm25.scores["indptr"]
        out = {}
        for t in terms:
            i = vocab.get(t)
            df = int(indptr[i + 1] - indptr[i]) if i is not None and i + 1 < len(indptr) else 0
            out[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return out

    def mask(self, date_from: int | None = None, date_to: int | None = None,
             sources: list[str] | None = None) -> np.ndarray | None:
        self._ensure_loaded()
        if date_from is None and date_to is None and not sources:
            return None
        m = np.ones(len(self.ids), dtype=np.float32)
        if date_from is not None:
            m *= self.dates >= date_from
        if date_to is not None:
            m *= (self.dates <= date_to) & (self.dates > 0)
        if sources:
            wanted = [s.lower() for s in sources]
            m *= np.array([any(w in s.lower() for w in wanted) for s in self.sources], dtype=np.float32)
        return m
