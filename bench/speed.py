"""Speed and scale (issue #7): ingest vs the naive LangChain pipeline, embedder, query latency, 100k chunks, users.

    python -m bench speed --quick                  # reduced, under a minute; prints one JSON object last
    python -m bench speed [--keep DIR]             # full run (the whole dev archive, 100k chunks, 10/20/50 users)
    python -m bench speed --only 100k --keep DIR   # the 100k-chunk part alone, grown from DIR/ours

Each measured pipeline runs in its own subprocess (`python -m bench speed --stage NAME`) so peak RSS is its
own; the summary (one JSON line) goes to stdout last, the whole result before it to stderr. --only 100k
re-uses DIR/ours when an earlier `--keep DIR` run left it (else the ours stage builds it first, measured):
synthetic growth to --chunks, the benchmark's questions on it, 20 users over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import DATASET, ROOT, add_dataset, free_port, pct


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_embedding(embedder) -> list[float]:
    """Wrap `embedder.embed` so the seconds spent in it add up in the returned one-item list."""
    inner, spent = embedder.embed, [0.0]

    def timed(texts, batch_size=None):
        t = time.perf_counter()
        try:
            return inner(texts, batch_size)
        finally:
            spent[0] += time.perf_counter() - t

    embedder.embed = timed
    return spent


def load_articles(n: int | None, dataset: Path = DATASET):
    """The first n articles of the dataset's corpus.json (all: None)."""
    from assistant.models import Article

    records = json.loads((Path(dataset) / "corpus.json").read_text(encoding="utf-8"))
    records = records[:n] if n else records
    return [Article(title=r["title"], body=r["body"], source=r.get("source"), author=r.get("author"),
                    published_at=r.get("published_at"), url=r.get("url")) for r in records]


# ------------------------------------------------------------------ stages (run in subprocesses)

def stage_ours(args) -> dict:
    """Our ingest on the first N articles: wall time, time inside the embedder, re-ingest time."""
    from assistant.config import load_settings
    from assistant.ingest.ingestor import Ingestor

    articles = load_articles(args.articles, args.dataset)
    settings = load_settings(data_dir=args.data_dir)
    ingestor = Ingestor(settings)
    embedder = ingestor.store.embedder
    embedder.embed(["warm up"])  # model load is not ingest throughput
    inner = embedder.embed
    spent = {"s": 0.0, "texts": 0, "tokens": 0, "texts_list": []}

    def timed(texts, batch_size=None):
        t = time.perf_counter()
        out = inner(texts, batch_size)
        spent["s"] += time.perf_counter() - t
        spent["texts"] += len(texts)
        spent["texts_list"].append(texts)
        return out

    embedder.embed = timed
    t0 = time.perf_counter()
    report = ingestor.ingest_articles(articles)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    again = ingestor.ingest_articles(articles)
    reingest = time.perf_counter() - t1
    tok = embedder.tokenizer
    tokens = sum(min(len(ids), embedder.max_seq_length) for texts in spent["texts_list"]
                 for ids in tok(texts, add_special_tokens=True)["input_ids"])
    chars = sum(len(a.body) for a in articles)
    assert again.unchanged + len(again.skipped) == len(articles) and not again.added, again  # near-dups skip again
    return {"articles": len(articles), "chars": chars, "chunks": report.chunks, "seconds": total,
            "embed_seconds": spent["s"], "tokens": tokens, "reingest_seconds": reingest,
            "peak_rss_mb": peak_rss_mb()}


def stage_naive(args) -> dict:
    """The tutorial pipeline: RecursiveCharacterTextSplitter(1000, 200) + HuggingFaceEmbeddings + Chroma."""
    import chromadb
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from assistant.index.embedder import _resolve_model

    articles = load_articles(args.articles, args.dataset)
    embeddings = HuggingFaceEmbeddings(model_name=_resolve_model("")[0])
    embeddings.embed_query("warm up")
    t0 = time.perf_counter()
    docs = [Document(page_content=a.body, metadata={"title": a.title, "url": a.url or ""}) for a in articles]
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
    client = chromadb.PersistentClient(path=args.data_dir, settings=chromadb.Settings(anonymized_telemetry=False))
    Chroma.from_documents(chunks, embeddings, client=client, collection_name="naive")
    total = time.perf_counter() - t0
    return {"articles": len(articles), "chars": sum(len(a.body) for a in articles), "chunks": len(chunks),
            "seconds": total, "peak_rss_mb": peak_rss_mb()}


def chunk_texts(embedder, settings, n_articles: int | None, dataset: Path) -> list[str]:
    """The texts our pipeline embeds for the first N articles (title + chunk), cut by its own chunker."""
    from assistant.ingest.chunking import Chunker

    chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, settings.chunking.chunk_tokens,
                      settings.chunking.overlap_tokens)
    texts = []
    for a in load_articles(n_articles, dataset):
        title = chunker.embed_title(a.title)
        texts += [chunker.embedding_text(title, c.text) for c in chunker.split(a)]
    return texts


def stage_embedder(args) -> dict:
    """The embedder alone at the pipeline's batch shapes: tokens/s on this CPU."""
    from assistant.config import load_settings
    from assistant.index.embedder import Embedder

    settings = load_settings(data_dir=args.data_dir)
    emb = Embedder.shared(settings.embedding)  # as Store picks it
    texts = chunk_texts(emb, settings, args.articles, args.dataset)
    emb.embed(texts[:64])
    tokens = sum(min(len(i), emb.max_seq_length) for i in emb.tokenizer(texts)["input_ids"])
    t0 = time.perf_counter()
    emb.embed(texts)
    s = time.perf_counter() - t0
    return {"texts": len(texts), "tokens": tokens, "seconds": s, "tokens_per_s": tokens / s,
            "batch_size": settings.embedding.batch_size}


def stage_backends(args) -> dict:
    """torch vs onnx vs onnx-int8 in one process on the same chunk texts, in alternating rounds (a shared,
    loaded machine drifts: interleaving gives each backend the same conditions); tokens/s and ratios."""
    from assistant.config import EmbeddingSettings, load_settings
    from assistant.index.embedder import Embedder

    settings = load_settings(data_dir=args.data_dir)
    names = ("torch", "onnx", "onnx-int8")
    embs = {b: Embedder(EmbeddingSettings(**{**settings.embedding.model_dump(), "backend": b})) for b in names}
    ref = embs["torch"]
    texts = chunk_texts(ref, settings, args.articles, args.dataset)
    tokens = sum(min(len(i), ref.max_seq_length) for i in ref.tokenizer(texts)["input_ids"])
    vecs = {}
    for b, e in embs.items():  # load (and export, first time) outside the timing
        vecs[b] = e.embed(texts[:64])
    cos = {b: float((vecs["torch"] * vecs[b]).sum(axis=1).min()) for b in names[1:]}
    times: dict[str, list[float]] = {b: [] for b in names}
    for r in range(args.rounds):
        for b in names[r % 3:] + names[:r % 3]:  # rotate the order each round
            t = time.perf_counter()
            embs[b].embed(texts)
            times[b].append(time.perf_counter() - t)
    tps = {b: tokens / statistics.median(times[b]) for b in names}
    return {"texts": len(texts), "tokens": tokens, "rounds": args.rounds,
            "batch_size": settings.embedding.batch_size,
            "seconds": {b: [round(x, 2) for x in times[b]] for b in names},
            "tokens_per_s": {b: round(v) for b, v in tps.items()},
            "onnx_vs_torch": round(tps["onnx"] / tps["torch"], 3),
            "int8_vs_torch": round(tps["onnx-int8"] / tps["torch"], 3),
            "min_cosine_vs_torch": {b: round(v, 5) for b, v in cos.items()}}


def stage_query(args) -> dict:
    """Retrieval and end-to-end extractive answer latency over the benchmark's questions."""
    from assistant.answering.chain import Assistant
    from assistant.answering.retrieval import Filters
    from assistant.config import load_settings

    queries = json.loads((Path(args.dataset) / "queries.json").read_text(encoding="utf-8"))
    if args.synthetic_questions:
        random.Random(7).shuffle(queries)
    queries = (queries * 4)[: args.queries]
    assistant = Assistant(load_settings(data_dir=args.data_dir))
    assistant.ask(queries[0]["query"])  # warm up: model load, index load
    retr, answer = [], []
    for q in queries:
        f = Filters(today=q.get("question_date"))
        t = time.perf_counter()
        assistant.retriever.retrieve(q["query"], f)
        retr.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        assistant.ask(q["query"], filters={"today": q.get("question_date")})
        answer.append(1000 * (time.perf_counter() - t))
    return {"queries": len(queries), "chunks": assistant.store.count(),
            "retrieval_p50_ms": pct(retr, 50), "retrieval_p95_ms": pct(retr, 95),
            "answer_p50_ms": pct(answer, 50), "answer_p95_ms": pct(answer, 95), "peak_rss_mb": peak_rss_mb()}


def stage_synthetic(args) -> dict:
    """Grow a store to N chunks by recombining real chunks: text = halves of two real chunks, vector =
    the normalized sum of their stored vectors (no re-embedding; vocabulary and vector geometry stay real)."""
    import numpy as np

    from assistant.config import load_settings
    from assistant.ingest.ingestor import Ingestor

    settings = load_settings(data_dir=args.data_dir)
    ing = Ingestor(settings)
    col = ing.store.collection()
    real = col.get(include=["documents", "metadatas", "embeddings"])
    n_real = len(real["ids"])
    rng = random.Random(11)
    need = args.chunks - n_real
    seq = (ing.store.change_head() or 0) + 1  # the synthetic chunks are one write, as an ingest's batch is
    t0 = time.perf_counter()
    batch = 2000
    made = 0
    while made < need:
        ids, docs, metas, vecs = [], [], [], []
        for _ in range(min(batch, need - made)):
            i, j = rng.randrange(n_real), rng.randrange(n_real)
            a, b = real["documents"][i], real["documents"][j]
            text = a[: len(a) // 2] + " " + b[len(b) // 2:]
            v = np.asarray(real["embeddings"][i]) + np.asarray(real["embeddings"][j])
            meta = dict(real["metadatas"][i])
            meta.update(article_id=f"syn{made}", chunk_index=0, start=0, end=len(text), title=meta["title"],
                        hash=f"syn{made}", sentences="[]", seq=seq)
            ids.append(f"syn{made}:0")
            docs.append(text)
            metas.append(meta)
            vecs.append(v / np.linalg.norm(v))
            made += 1
        col.add(ids=ids, documents=docs, metadatas=metas, embeddings=np.vstack(vecs))
    ing.store.record_change(at_least=seq)  # the change log's head, written last, as Store.write does
    t1 = time.perf_counter()
    synced = ing.lexical.sync()  # the keyword index follows the store's changes, as after an ingest
    index_s = time.perf_counter() - t1
    chunks = ing.store.count()  # (the raw collection handle is stale once the store has reopened its files)
    assert len(ing.lexical) == chunks, (len(ing.lexical), chunks, synced)  # every chunk keyword-searchable
    size = sum(f.stat().st_size for f in Path(args.data_dir).rglob("*") if f.is_file())
    return {"chunks": chunks, "seconds": time.perf_counter() - t0, "keyword_sync_seconds": index_s,
            "store_mb": size / 1e6}


def stage(name: str, dataset: Path, **kw) -> dict:
    """One stage in its own process: `python -m bench speed --stage NAME ...`; its last stdout line, parsed."""
    kw["dataset"] = dataset
    cmd = [sys.executable, "-m", "bench", "speed", "--stage", name] + [
        f"--{k.replace('_', '-')}={v}" for k, v in kw.items() if v is not None and v is not False]
    cmd += [f"--{k.replace('_', '-')}" for k, v in kw.items() if v is True]
    cmd = [c for c in cmd if not c.endswith("=True")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"stage {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ HTTP load

async def _load(url: str, users: int, per_user: int, questions: list[str], timeout: float) -> dict:
    import httpx

    lat, errors = [], 0
    deadline = time.perf_counter() + timeout

    async def user(uid: int, client) -> None:
        nonlocal errors
        for i in range(per_user):
            if time.perf_counter() > deadline:
                return
            t = time.perf_counter()
            try:
                r = await client.post(url, json={"question": questions[(uid * per_user + i) % len(questions)]})
                if r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(user(u, client) for u in range(users)))
    wall = time.perf_counter() - t0
    return {"users": users, "requests": len(lat), "errors": errors, "throughput_rps": len(lat) / wall,
            "p50_ms": 1000 * pct(lat, 50), "p95_ms": 1000 * pct(lat, 95)}


def load_test(data_dir: str, user_counts: list[int], per_user: int, dataset: Path) -> list[dict]:
    """Start `assistant serve` on a free loopback port; N concurrent clients POST /api/ask."""
    port = free_port()
    env = dict(os.environ, ASSISTANT_SERVER__RATE_LIMIT_PER_MINUTE="100000")
    server = subprocess.Popen([sys.executable, "-m", "assistant", "--data-dir", data_dir, "serve", "--port",
                               str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        queries = [q["query"] for q in json.loads((Path(dataset) / "queries.json").read_text(encoding="utf-8"))]
        url = f"http://127.0.0.1:{port}/api/ask"
        httpx.post(url, json={"question": queries[0]}, timeout=120)  # warm up: model and index load
        results = []
        for users in user_counts:
            r = asyncio.run(_load(url, users, per_user, queries, timeout=120))
            r["serve_rss_mb"] = _rss_mb(server.pid)
            results.append(r)
        return results
    finally:
        server.terminate()
        server.wait(10)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ------------------------------------------------------------------ command line

STAGES = {"ours": stage_ours, "naive": stage_naive, "embedder": stage_embedder, "query": stage_query,
          "synthetic": stage_synthetic, "backends": stage_backends}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--quick", action="store_true", help="reduced run, under a minute")
    ap.add_argument("--only", choices=["100k"], help="100k: only the 100k-chunk part, grown from --keep DIR/ours")
    ap.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    add_dataset(ap)
    ap.add_argument("--articles", type=int, default=None, help="the first N articles (default: all; --quick: 30)")
    ap.add_argument("--queries", type=int, default=156, help=argparse.SUPPRESS)  # a query stage's (set by the run)
    ap.add_argument("--chunks", type=int, default=100_000, help="size the synthetic store grows to")
    ap.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)  # a stage's store (set by the run)
    ap.add_argument("--synthetic-questions", action="store_true", help=argparse.SUPPRESS)  # a query stage's: shuffled
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of the backend comparison")
    ap.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None,
                    help="embedding.backend for our pipeline's stages (default: the configured one)")
    ap.add_argument("--keep", help="keep the stores in this folder (--only 100k re-uses its ours/)")


def run(args: argparse.Namespace) -> None:
    if args.stage:
        print(json.dumps(STAGES[args.stage](args)))
        return

    quick = args.quick
    if args.backend:
        os.environ["ASSISTANT_EMBEDDING__BACKEND"] = args.backend  # inherited by the stage subprocesses
    n_articles = args.articles or (30 if quick else None)
    work = Path(args.keep or tempfile.mkdtemp(prefix="assistant-bench-"))
    out: dict = {"machine": f"{os.cpu_count()} cores, {os.uname().machine}", "quick": quick}
    t0 = time.perf_counter()
    if args.only == "100k":
        out.update(only="100k", **big_part(work, args.chunks, args.dataset, articles=args.articles))
        summary = {"chunks": out["synthetic"]["chunks"],
                   "retrieval_p95_ms_100k": round(out["query_100k"]["retrieval_p95_ms"], 1),
                   "answer_p95_ms_100k": round(out["query_100k"]["answer_p95_ms"], 1),
                   "load_100k_errors": sum(r["errors"] for r in out["load_100k"]),
                   "load_100k_p95_ms": round(max(r["p95_ms"] for r in out["load_100k"]), 1),
                   "serve_rss_mb_100k": round(max(r["serve_rss_mb"] for r in out["load_100k"]))}
        finish(args, work, out, summary, t0)
        return
    shutil.rmtree(work / "ours", ignore_errors=True)
    shutil.rmtree(work / "naive", ignore_errors=True)
    ours = stage("ours", args.dataset, articles=n_articles, data_dir=str(work / "ours"))
    naive = stage("naive", args.dataset, articles=n_articles, data_dir=str(work / "naive"))
    emb = stage("embedder", args.dataset, articles=min(n_articles or 200, 200), data_dir=str(work / "ours"))
    query = stage("query", args.dataset, queries=60 if quick else 156, data_dir=str(work / "ours"))
    out.update(ours=ours, naive=naive, embedder=emb, query=query)
    if not quick:
        out["backends"] = stage("backends", args.dataset, articles=40, rounds=args.rounds,
                                data_dir=str(work / "backends"))
        out.update(big_part(work, args.chunks, args.dataset))
    out["load"] = load_test(str(work / "ours"), [10] if quick else [10, 20, 50], 2 if quick else 10, args.dataset)
    ours_cps = ours["chars"] / ours["seconds"]
    naive_cps = naive["chars"] / naive["seconds"]
    summary = {
        "ingest_chars_per_s": round(ours_cps),
        "naive_chars_per_s": round(naive_cps),
        "ingest_ratio_vs_naive": round(ours_cps / naive_cps, 3),
        "embedder_share": round(ours["embed_seconds"] / ours["seconds"], 3),
        "reingest_speedup": round(ours["seconds"] / max(ours["reingest_seconds"], 1e-9), 1),
        "retrieval_p95_ms": round(query["retrieval_p95_ms"], 1),
        "answer_p95_ms": round(query["answer_p95_ms"], 1),
        "load_errors": sum(r["errors"] for r in out["load"]),
        "load_p95_ms": round(max(r["p95_ms"] for r in out["load"]), 1),
    }
    if "backends" in out:
        summary.update(onnx_vs_torch=out["backends"]["onnx_vs_torch"],
                       int8_vs_torch=out["backends"]["int8_vs_torch"])
    finish(args, work, out, summary, t0)


def big_part(work: Path, chunks: int, dataset: Path, articles: int | None = None) -> dict:
    """The 100k-chunk part: a copy of work/ours grown to `chunks`, the benchmark's questions, 20 users.
    A finished work/ours (an ingest removes its journal last) is used as it is, else the ours stage builds it."""
    out: dict = {}
    ours = work / "ours"
    if (ours / "chroma").is_dir() and not (ours / "ingest.journal").exists():
        out["base"] = str(ours)
    else:
        shutil.rmtree(ours, ignore_errors=True)
        out["base"] = stage("ours", dataset, articles=articles, data_dir=str(ours))
    big = work / "big"
    shutil.rmtree(big, ignore_errors=True)
    shutil.copytree(ours, big)
    out["synthetic"] = stage("synthetic", dataset, chunks=chunks, data_dir=str(big))
    out["query_100k"] = stage("query", dataset, queries=156, data_dir=str(big))
    out["load_100k"] = load_test(str(big), [20], 5, dataset)
    return out


def finish(args: argparse.Namespace, work: Path, out: dict, summary: dict, t0: float) -> None:
    from assistant.config import load_settings

    summary["backend"] = load_settings().embedding.backend  # --backend, ASSISTANT_EMBEDDING__BACKEND or default
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1), file=sys.stderr)
    print(json.dumps(summary))
