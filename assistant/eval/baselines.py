"""The baselines beside our pipeline: plain BM25 over our chunks, and the LangChain-tutorial pipeline
(naive), both answered by the top-chunk engine."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.errors import CorpusError
from assistant.eval.dataset import Dataset, Progress, _file_hash
from assistant.eval.metrics import TOP, QueryResult, SystemRun, retrieved_from
from assistant.models import Answer

log = logging.getLogger(__name__)


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
        self._db: Any = None  # a langchain_chroma.Chroma (the bench extra), made on first use

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
