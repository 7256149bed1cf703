"""The eval dataset (MultiHop-RAG format: corpus.json + queries.json) and its cached store.

`corpus.json` is a list of articles (title, body, source, author, published_at, url, category) and
`queries.json` a list of questions (query, answer, answers, question_type, question_date, evidence_list of
{title, source, url, published_at, fact}). `null_query` questions have no answer in the corpus.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant.config import Settings
from assistant.errors import CorpusError
from assistant.models import Article

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)
NULL_TYPE = "null_query"


@dataclass
class Query:
    """One benchmark question with its accepted answers and evidence urls."""

    query: str
    answers: list[str]
    question_type: str
    question_date: str | None
    evidence_urls: list[str]

    @property
    def is_null(self) -> bool:
        return self.question_type == NULL_TYPE or not self.answers


@dataclass
class Dataset:
    """A benchmark folder: its articles, its questions, and the corpus file (for the cache key)."""

    path: Path
    corpus_file: Path
    articles: list[Article]
    queries: list[Query]
    sample: int | None = None


def load_dataset(path: str | Path, sample: int | None = None) -> Dataset:
    """Read corpus.json and queries.json from a dataset folder.

    Args:
        sample: keep only the evidence articles plus this many others, picked by URL hash (stable across
            runs and corpus order): a smaller corpus for quick runs. None keeps the whole corpus.
    """
    path = Path(path)
    corpus_file, queries_file = path / "corpus.json", path / "queries.json"
    for f in (corpus_file, queries_file):
        if not f.is_file():
            raise CorpusError(f"{f} not found", "a dataset folder holds corpus.json and queries.json")
    try:
        raw_corpus = json.loads(corpus_file.read_text(encoding="utf-8"))
        raw_queries = json.loads(queries_file.read_text(encoding="utf-8"))
    except ValueError as e:
        raise CorpusError(f"dataset {path} is not valid JSON: {e}") from e
    articles = []
    for i, a in enumerate(raw_corpus):
        body = a.get("body") or a.get("content") or a.get("text") or ""
        if not body.strip():
            continue
        published = (a.get("published_at") or "")[:10] or None
        articles.append(Article(title=a.get("title") or "", body=body, source=a.get("source"),
                                author=a.get("author"), published_at=published, url=a.get("url"),
                                origin=f"{corpus_file}[{i}]"))
    queries = []
    for q in raw_queries:
        answers = [a for a in (q.get("answers") or ([q["answer"]] if q.get("answer") else [])) if a]
        qtype = q.get("question_type") or "unknown"
        if qtype == NULL_TYPE or str(q.get("answer", "")).lower().startswith("insufficient information"):
            answers = []
        queries.append(Query(query=q["query"], answers=answers, question_type=qtype,
                             question_date=(q.get("question_date") or "")[:10] or None,
                             evidence_urls=[e["url"] for e in q.get("evidence_list") or [] if e.get("url")]))
    if sample is not None:
        evidence = {u for q in queries for u in q.evidence_urls}
        others = sorted((a for a in articles if a.url not in evidence),
                        key=lambda a: hashlib.sha1((a.url or a.id).encode()).hexdigest())[:sample]
        keep = {a.id for a in others}
        articles = [a for a in articles if a.url in evidence or a.id in keep]
    return Dataset(path, corpus_file, articles, queries, sample)


def _file_hash(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def store_key(settings: Settings, corpus_file: Path, sample: int | None = None) -> str:
    """Cache key of an eval store: the corpus file plus every setting and code that shapes its chunks."""
    from assistant.index.quotebook import extractor_version
    from assistant.ingest import chunking, decoding
    from assistant.text import cleaning, sentences

    parts = {
        "corpus": _file_hash(corpus_file),
        **({"sample": sample} if sample is not None else {}),
        "chunking": settings.chunking.model_dump(),
        "clean": settings.ingest.clean,
        "embedding": settings.embedding.model,
        # other backends make other vectors (the torch key stays as it was, so cached stores stay valid)
        **({"backend": settings.embedding.backend} if settings.embedding.backend != "torch" else {}),
        # the text normalisation, cleaning, chunking and sentence-splitting code itself: a new rule must not
        # reuse chunks (and their sentence offsets) cut by the old one
        "code": hashlib.sha1("".join(inspect.getsource(m) for m in (decoding, cleaning, chunking, sentences))
                             .encode()).hexdigest(),
        # the quotes kept in the chunks' metadata: a new extractor builds the eval store anew
        "quotes": extractor_version(),
    }
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def eval_settings(settings: Settings, corpus_file: Path, sample: int | None = None) -> Settings:
    """The settings of the dataset's own store: `<data-dir>/eval/<key>`, embedded Chroma."""
    data_dir = settings.data_dir / "eval" / store_key(settings, corpus_file, sample)
    return settings.model_copy(update={"data_dir": data_dir,
                                       "store": settings.store.model_copy(update={"host": None})})


def ensure_store(settings: Settings, dataset: Dataset, progress: Progress | None = None) -> Settings:
    """Ingest the dataset's corpus into its cached store (once per key); returns that store's settings."""
    from assistant.ingest.ingestor import Ingestor

    es = eval_settings(settings, dataset.corpus_file, dataset.sample)
    marker = es.data_dir / "eval-complete.json"
    if marker.exists():
        return es
    es.data_dir.mkdir(parents=True, exist_ok=True)
    report = Ingestor(es).ingest_articles(dataset.articles, progress)
    marker.write_text(json.dumps({"dataset": str(dataset.path), "articles": len(dataset.articles),
                                  "ingest": report.to_json()}))
    log.info("eval store built in %.1fs: %s", report.seconds, es.data_dir)
    return es
