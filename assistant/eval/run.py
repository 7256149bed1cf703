"""Benchmark a dataset (corpus.json + queries.json) through retrieval and answering; return metrics.

The dataset format is MultiHop-RAG's: `corpus.json` is a list of articles (title, body, source, author,
published_at, url, category) and `queries.json` a list of questions (query, answer, answers, question_type,
question_date, evidence_list of {title, source, url, published_at, fact}).

Relevance (open-domain QA): a retrieved chunk is a hit when it comes from one of the question's evidence
articles (same url; a collapsed syndicated copy counts with each url it stands for) and contains one of the
accepted answers, case-insensitive with whitespace and curly quotes normalized. `null_query` questions (no
answer in the corpus) are left out of retrieval metrics and used for the refusal metrics.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.answering.citations import names
from assistant.config import Settings
from assistant.errors import CorpusError
from assistant.models import Answer, Article, Passage
from assistant.text.words import tokenize

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)
NULL_TYPE = "null_query"
SUMMARY_KEYS = ("hits@1", "hits@4", "hits@10", "mrr@10", "article_hit@10", "answer_accuracy", "refusal_rate",
                "false_refusal_rate", "citation_precision", "queries", "seconds")
TOP = 10  # passages retrieved per question for the retrieval metrics


# ---------------------------------------------------------------- dataset


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
    from assistant.ingest import chunking
    from assistant.text import cleaning, sentences

    parts = {
        "corpus": _file_hash(corpus_file),
        **({"sample": sample} if sample is not None else {}),
        "chunking": settings.chunking.model_dump(),
        "clean": settings.ingest.clean,
        "embedding": settings.embedding.model,
        # other backends make other vectors (the torch key stays as it was, so cached stores stay valid)
        **({"backend": settings.embedding.backend} if settings.embedding.backend != "torch" else {}),
        # the cleaning, chunking and sentence-splitting code itself: a new rule must not reuse chunks (and
        # their sentence offsets) cut by the old one
        "code": hashlib.sha1("".join(inspect.getsource(m) for m in (cleaning, chunking, sentences))
                             .encode()).hexdigest(),
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


# ---------------------------------------------------------------- metrics

_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"',
                         "\u00a0": " "})


def normalize(text: str) -> str:
    """Lowercase, curly quotes straightened, runs of whitespace collapsed to one space."""
    return " ".join((text or "").translate(_QUOTES).lower().split())


def contains_answer(text: str, answers: list[str]) -> bool:
    """Whether the text holds one of the accepted answers (normalized)."""
    t = normalize(text)
    return any(normalize(a) and normalize(a) in t for a in answers)


def is_hit(urls: list[str], text: str, query: Query) -> bool:
    """The dataset's relevance rule: from an evidence article and containing an accepted answer."""
    return bool(set(urls) & set(query.evidence_urls)) and contains_answer(text, query.answers)


def first_hit_rank(hits: list[bool]) -> int | None:
    """1-based rank of the first relevant item, None when there is none."""
    return next((i + 1 for i, h in enumerate(hits) if h), None)


def hits_at(rank: int | None, k: int) -> float:
    """1.0 when the first hit ranks within the top k."""
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int = TOP) -> float:
    """1/rank of the first hit within the top k, else 0 (MRR@k once averaged)."""
    return 1.0 / rank if rank is not None and rank <= k else 0.0


_NUMBER = re.compile(r"\b\d[\d,.:%]*\b")


def key_tokens(sentence: str) -> set[str]:
    """Names (capitalized words not opening the sentence) and numbers, lowercased."""
    s = sentence.strip()
    return {n.lower() for n in names(s)} | {m.group().rstrip(".,:").replace(",", "") for m in _NUMBER.finditer(s)
                                            if m.start() > 0}


def sentence_supported(sentence: str, quotes: list[str], passages: list[str]) -> bool:
    """Whether cited text supports an answer sentence (see `citation_precision`)."""
    s = normalize(re.sub(r"\s*\[\d+(?:\s*,\s*\d+)*\]", "", sentence)).strip(" \"'")
    if not s:
        return False
    if any(s in normalize(p) for p in passages + quotes):
        return True
    cited = " ".join(quotes)
    keys = key_tokens(re.sub(r"\[\d+\]", "", sentence))
    if keys:
        have = {k.lower() for k in re.findall(r"[\w'’-]+|\d[\d,.:%]*", cited)} | {
            m.group().lower().rstrip(".,:").replace(",", "") for m in re.finditer(r"\d[\d,.:%]*", cited)}
        return sum(k in have for k in keys) / len(keys) >= 0.8
    terms = set(tokenize(s))
    return bool(terms) and len(terms & set(tokenize(cited))) / len(terms) >= 0.5


def citation_precision(answer: Answer) -> tuple[int, int]:
    """(supported, total) answer sentences of one answer.

    A sentence is one segment of the answer ending in [n] markers (an uncited tail counts, unsupported).
    It is supported when its text (markers stripped, normalized) appears verbatim in a cited passage, as
    extractive sentences must; otherwise (generated text) when at least 80% of its names (capitalized words
    after the first) and numbers occur in its cited quotes, or, if it has none, when at least half of its
    content words do. Refusals have no sentences.
    """
    from assistant.answering.citations import split_segments

    if answer.refused:
        return 0, 0
    by_n = {c.n: c for c in answer.citations}
    supported = total = 0
    for seg, nums in split_segments(answer.answer):
        if not seg.strip():
            continue
        total += 1
        cits = [by_n[n] for n in nums if n in by_n]
        if cits and sentence_supported(seg, [c.quote for c in cits], [c.passage for c in cits]):
            supported += 1
    return supported, total


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


# ---------------------------------------------------------------- running


@dataclass
class QueryResult:
    """What one system did with one question."""

    query: Query
    retrieved: list[dict[str, Any]]  # {"url", "title", "text", "score", "urls"}
    answer: Answer | None
    latency: float  # retrieval seconds
    confidence: float | None = None

    def rank(self) -> int | None:
        return first_hit_rank([is_hit(r["urls"], r["text"], self.query) for r in self.retrieved[:TOP]])

    def article_hit(self) -> bool:
        return any(set(r["urls"]) & set(self.query.evidence_urls) for r in self.retrieved[:TOP])

    def to_json(self) -> dict[str, Any]:
        a = self.answer
        return {"query": self.query.query, "question_type": self.query.question_type,
                "retrieved": [{k: r[k] for k in ("url", "title", "text", "score")} for r in self.retrieved[:TOP]],
                "answer": a.answer if a else None, "refused": a.refused if a else None,
                "citations": a.to_json()["citations"] if a else []}


def retrieved_from(passages: list[Passage]) -> list[dict[str, Any]]:
    return [{"url": p.url, "title": p.title, "text": p.text, "score": round(float(p.score), 6),
             "urls": [u for u in [p.url] + [c.get("url") for c in p.also_in] if u]} for p in passages]


def summarize(results: list[QueryResult], seconds: float) -> dict[str, Any]:
    """The summary keys (see SUMMARY_KEYS) over results, plus `by_type` with the same per question type."""
    out = _metrics(results, seconds)
    types = sorted({r.query.question_type for r in results})
    out["by_type"] = {t: _metrics([r for r in results if r.query.question_type == t], None) for t in types}
    return out


def _metrics(results: list[QueryResult], seconds: float | None) -> dict[str, Any]:
    answerable = [r for r in results if not r.query.is_null]
    nulls = [r for r in results if r.query.is_null]
    ranks = [r.rank() for r in answerable]
    answered = [r for r in answerable if r.answer is not None]
    with_answer = [r for r in results if r.answer is not None]
    sup = tot = 0
    for r in with_answer:
        s, t = citation_precision(r.answer)
        sup, tot = sup + s, tot + t
    return {
        "hits@1": _mean([hits_at(x, 1) for x in ranks]),
        "hits@4": _mean([hits_at(x, 4) for x in ranks]),
        "hits@10": _mean([hits_at(x, 10) for x in ranks]),
        "mrr@10": _mean([reciprocal_rank(x, TOP) for x in ranks]),
        "article_hit@10": _mean([float(r.article_hit()) for r in answerable]),
        "answer_accuracy": _mean([float(not r.answer.refused and contains_answer(r.answer.answer, r.query.answers))
                                  for r in answered]),
        "refusal_rate": _mean([float(r.answer.refused) for r in nulls if r.answer is not None]),
        "false_refusal_rate": _mean([float(r.answer.refused) for r in answered]),
        "citation_precision": round(sup / tot, 4) if tot else None,
        "queries": len(results),
        "seconds": round(seconds, 2) if seconds is not None else None,
    }


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100, nearest rank)."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q / 100 * len(v)) - 1))]


def distribution(values: list[float]) -> dict[str, float] | None:
    """min / p25 / median / p75 / max of a list of scores."""
    if not values:
        return None
    return {"n": len(values), "min": round(min(values), 3), "p25": round(percentile(values, 25), 3),
            "median": round(statistics.median(values), 3), "p75": round(percentile(values, 75), 3),
            "max": round(max(values), 3)}


@dataclass
class SystemRun:
    """One system's results over the dataset and its wall time."""

    name: str
    results: list[QueryResult]
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.summary = summarize(self.results, self.seconds)

    @property
    def latency_p95_ms(self) -> float | None:
        p = percentile([r.latency for r in self.results], 95)
        return None if p is None else round(1000 * p, 1)

    @property
    def queries_per_second(self) -> float:
        return len(self.results) / self.seconds if self.seconds else 0.0

    def confidence_distributions(self) -> dict[str, Any]:
        """Retrieval confidence of answerable vs null questions (what refusal thresholds)."""
        ans = [r.confidence for r in self.results if not r.query.is_null and r.confidence is not None]
        nul = [r.confidence for r in self.results if r.query.is_null and r.confidence is not None]
        return {"answerable": distribution(ans), "null_query": distribution(nul)}


def run_ours(settings: Settings, dataset: Dataset, limit: int | None = None, answer: bool = True,
             progress: Progress | None = None, name: str = "ours") -> SystemRun:
    """Our pipeline on every question: top-10 retrieval for the metrics, the first k passages answered."""
    from assistant.answering.chain import Assistant
    from assistant.answering.retrieval import Filters, Retrieval

    assistant = Assistant(settings)
    queries = dataset.queries[:limit] if limit else dataset.queries
    k = settings.retrieval.k
    assistant.retriever.retrieve("warm up the model and the indexes")  # load time is not query latency
    results = []
    t0 = time.perf_counter()
    for i, q in enumerate(queries):
        t = time.perf_counter()
        r = assistant.retriever.retrieve(q.query, Filters(today=q.question_date), k=max(TOP, k))
        latency = time.perf_counter() - t
        ans = None
        if answer:
            ans = assistant.answer_retrieval(q.query, Retrieval(r.passages[:k], r.confidence, r.window,
                                                                r.query_vector))
        results.append(QueryResult(q, retrieved_from(r.passages), ans, latency, r.confidence))
        if progress:
            progress(name, i + 1, len(queries))
    return SystemRun(name, results, time.perf_counter() - t0)


def top_chunk_answer(retrieved: list[dict[str, Any]]) -> Answer:
    """The naive engine: the first retrieved chunk, verbatim, as the answer (refuses only when none)."""
    from assistant.models import Citation

    if not retrieved:
        return Answer("", True)
    r = retrieved[0]
    cit = Citation(n=1, article_id="", title=r["title"], source=None, published_at=None, url=r["url"],
                   quote=r["text"], start=0, end=len(r["text"]), passage=r["text"])
    return Answer(" ".join(r["text"].split()) + " [1]", False, [cit])


def with_top_chunk_answers(run: SystemRun, name: str) -> SystemRun:
    """The same retrieval answered by the top-chunk engine."""
    results = [QueryResult(r.query, r.retrieved, top_chunk_answer(r.retrieved), r.latency, r.confidence)
               for r in run.results]
    return SystemRun(name, results, run.seconds)


def run_bm25(settings: Settings, dataset: Dataset, limit: int | None = None,
             progress: Progress | None = None) -> SystemRun:
    """Plain BM25 (the keyword index: tantivy) over our chunks, no filters or reranking; top-chunk answers."""
    from assistant.index.archive import Archive

    archive = Archive(settings)
    store, lexical = archive.store, archive.lexical
    queries = dataset.queries[:limit] if limit else dataset.queries
    lexical.search("warm up", 1)
    results = []
    t0 = time.perf_counter()
    for i, q in enumerate(queries):
        t = time.perf_counter()
        hits = lexical.search(q.query, TOP)
        by_id = store.get_passages([cid for cid, _ in hits])
        passages = []
        for cid, score in hits:
            if cid in by_id:
                by_id[cid].score = score
                passages.append(by_id[cid])
        latency = time.perf_counter() - t
        retrieved = retrieved_from(passages)
        results.append(QueryResult(q, retrieved, top_chunk_answer(retrieved), latency))
        if progress:
            progress("bm25", i + 1, len(queries))
    return SystemRun("bm25", results, time.perf_counter() - t0)


# ---------------------------------------------------------------- the tutorial baseline

NAIVE_CHUNK_SIZE, NAIVE_OVERLAP = 1000, 200


def naive_dir(settings: Settings, corpus_file: Path, sample: int | None = None) -> Path:
    """Cache folder of the tutorial pipeline's own Chroma store."""
    parts = {"corpus": _file_hash(corpus_file), "model": settings.embedding.model,
             "split": [NAIVE_CHUNK_SIZE, NAIVE_OVERLAP], **({"sample": sample} if sample is not None else {})}
    key = hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16]
    return settings.data_dir / "eval" / f"naive-{key}"


class NaivePipeline:
    """The LangChain tutorial: RecursiveCharacterTextSplitter(1000, 200) + HuggingFaceEmbeddings + Chroma top-k.

    Documents are the page text as a web loader would give it (title, blank line, body); the same local
    embedding model as ours; plain `similarity_search_with_score`.
    """

    def __init__(self, settings: Settings, corpus_file: Path, sample: int | None = None):
        from assistant.index.embedder import Embedder

        self.dir = naive_dir(settings, corpus_file, sample)
        self.model_path = Embedder.shared(settings.embedding).path
        self._db = None

    @property
    def db(self):
        if self._db is None:
            try:
                from langchain_chroma import Chroma
                from langchain_huggingface import HuggingFaceEmbeddings
            except ImportError as e:
                raise CorpusError("the naive baseline needs langchain-chroma and langchain-huggingface",
                                  "pip install 'newsroom-assistant[bench]'") from e
            emb = HuggingFaceEmbeddings(model_name=self.model_path, model_kwargs={"device": "cpu"},
                                        encode_kwargs={"normalize_embeddings": True})
            self._db = Chroma(collection_name="naive", embedding_function=emb, persist_directory=str(self.dir),
                              collection_metadata={"hnsw:space": "cosine"})
        return self._db

    def build(self, dataset: Dataset, progress: Progress | None = None) -> None:
        """Split and embed the corpus once (cached)."""
        from langchain_core.documents import Document
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        marker = self.dir / "eval-complete.json"
        if marker.exists():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        splitter = RecursiveCharacterTextSplitter(chunk_size=NAIVE_CHUNK_SIZE, chunk_overlap=NAIVE_OVERLAP)
        docs = [Document(page_content=f"{a.title}\n\n{a.body}", metadata={"url": a.url or "", "title": a.title})
                for a in dataset.articles]
        chunks = splitter.split_documents(docs)
        batch = 256
        for i in range(0, len(chunks), batch):
            self.db.add_documents(chunks[i:i + batch], ids=[f"c{j}" for j in range(i, min(i + batch, len(chunks)))])
            if progress:
                progress("naive ingest", min(i + batch, len(chunks)), len(chunks))
        marker.write_text(json.dumps({"chunks": len(chunks)}))

    def run(self, dataset: Dataset, limit: int | None = None, progress: Progress | None = None) -> SystemRun:
        queries = dataset.queries[:limit] if limit else dataset.queries
        results = []
        self.db.similarity_search("warm up", k=1)
        t0 = time.perf_counter()
        for i, q in enumerate(queries):
            t = time.perf_counter()
            docs = self.db.similarity_search_with_score(q.query, k=TOP)
            latency = time.perf_counter() - t
            retrieved = [{"url": d.metadata.get("url"), "title": d.metadata.get("title", ""), "text": d.page_content,
                          "score": round(1.0 - float(dist), 6), "urls": [d.metadata.get("url")]}
                         for d, dist in docs]
            results.append(QueryResult(q, retrieved, top_chunk_answer(retrieved), latency))
            if progress:
                progress("naive", i + 1, len(queries))
        return SystemRun("naive", results, time.perf_counter() - t0)


# ---------------------------------------------------------------- the whole evaluation


@dataclass
class EvalReport:
    """Our run (answered by the configured engine) and the comparison systems."""

    ours: SystemRun
    others: list[SystemRun]
    seconds: float
    store: str

    def summary(self) -> dict[str, Any]:
        """Exactly the documented keys for our pipeline."""
        s = self.ours.summary
        return {**{k: s[k] for k in SUMMARY_KEYS}, "seconds": round(self.seconds, 2), "by_type": s["by_type"]}


def evaluate(settings: Settings, dataset_path: str | Path, limit: int | None = None,
             baselines: tuple[str, ...] = (), progress: Progress | None = None,
             sample: int | None = None) -> EvalReport:
    """Build (or reuse) the dataset's stores, run our pipeline and the asked baselines."""
    t0 = time.perf_counter()
    dataset = load_dataset(dataset_path, sample)
    es = ensure_store(settings, dataset, progress)
    ours = run_ours(es, dataset, limit, progress=progress, name="ours")
    ours_wall = time.perf_counter() - t0
    others = [with_top_chunk_answers(ours, "ours+top-chunk")]
    for b in baselines:
        if b == "naive":
            naive = NaivePipeline(settings, dataset.corpus_file, dataset.sample)
            naive.build(dataset, progress)
            others.append(naive.run(dataset, limit, progress))
        elif b == "bm25":
            others.append(run_bm25(es, dataset, limit, progress))
        else:
            raise CorpusError(f"unknown baseline {b!r}", "choose naive or bm25")
    return EvalReport(ours, others, ours_wall, str(es.data_dir))


def format_table(report: EvalReport) -> str:
    """The printed comparison: one column per system, then latency and confidence distributions."""
    runs = [report.ours] + report.others
    rows = list(SUMMARY_KEYS[:-2]) + ["queries"]
    head = f"{'metric':<20}" + "".join(f"{r.name:>16}" for r in runs)
    lines = [head, "-" * len(head)]
    for key in rows:
        cells = []
        for r in runs:
            v = r.summary.get(key)
            cells.append(f"{'-' if v is None else (v if isinstance(v, int) else f'{v:.3f}')!s:>16}")
        lines.append(f"{key:<20}" + "".join(cells))
    lines.append(f"{'retrieval p95 ms':<20}" + "".join(f"{r.latency_p95_ms!s:>16}" for r in runs))
    lines.append(f"{'seconds':<20}" + "".join(f"{r.seconds:>16.1f}" for r in runs))
    lines.append(f"{'queries/s':<20}" + "".join(f"{r.queries_per_second:>16.2f}" for r in runs))
    by_type = report.ours.summary["by_type"]
    if len(by_type) > 1:
        lines.append("")
        lines.append("ours by question type: " + "; ".join(
            f"{t}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()
                                 if isinstance(v, float) and k not in ("seconds",))
            for t, m in by_type.items()))
    dist = report.ours.confidence_distributions()
    lines.append("")
    lines.append("retrieval confidence (refusal below answer.min_confidence):")
    for group, d in dist.items():
        lines.append(f"  {group:<11} " + ("-" if d is None else ", ".join(f"{k} {v}" for k, v in d.items())))
    lines.append("")
    lines.append(f"{len(report.ours.results)} questions in {report.seconds:.1f}s "
                 f"({len(report.ours.results) / report.seconds:.2f} queries/s, store ready included); "
                 f"store {report.store}")
    return "\n".join(lines)
