"""A million chunks on a Chroma server (issue 15, "Measured"): build, ingest latency, query cost, 50 users.

Every subcommand that needs Chroma starts its own `chroma run --path DIR/chroma --host 127.0.0.1 --port P`
(the `chroma` beside this Python, i.e. .venv/bin/chroma) and stops it at the end; serve workers are `python -m assistant serve` subprocesses
against it. SRC is a COPY of the dev-set eval store (the dataset is for evaluation only: never point this at
the product's data dir, never write into a cache you keep):

    cp -a <eval cache>/eval/6c83473ce76b47cc /tmp/scale/src
    cd /work/main   # the repo root; the dataset is --dataset's default (../shared/datasets/realtimeqa-news)
    .venv/bin/python -m bench scale build   --src /tmp/scale/src --out /tmp/scale/s1m  --chunks 1000000
    .venv/bin/python -m bench scale build   --src /tmp/scale/src --out /tmp/scale/s100k --chunks 100000
    .venv/bin/python -m bench scale build   --src /tmp/scale/src --out /tmp/scale/s1k  --chunks 1000
    .venv/bin/python -m bench scale reindex --out /tmp/scale/s1m           # timed `assistant reindex`
    .venv/bin/python -m bench scale ingest  --out /tmp/scale/s1k --n 7     # POST /api/articles, median
    .venv/bin/python -m bench scale query   --out /tmp/scale/s1m
    .venv/bin/python -m bench scale load    --out /tmp/scale/s1m --users 50 --workers 2 --seconds 120
    # where the time goes, and the what-ifs of bench/RESULTS.md ("Issue 15: a million chunks"):
    .venv/bin/python -m bench scale ingest  --out /tmp/scale/s1m --n 2 --profile
    .venv/bin/python -m bench scale query   --out /tmp/scale/s1m --profile
    .venv/bin/python -m bench scale query   --out /tmp/scale/s1m --cached-count
    .venv/bin/python -m bench scale load    --out /tmp/scale/s1m --users 50 --workers 2 --seconds 120 \
        [--think 10] [--memo 2000] [--mode processes [--cached-count]]

Each prints one JSON line last (`build:`, `reindex:`, `ingest:`, `query:`, `load:`); build writes OUT/build.json.

build: the dev store's chunks repeated under new chunk and article ids (`<article id>-r<rep>`), each copy
with its real text, metadata (title, outlet, date, url, minhash), exact sentence offsets and embedding; copies
after the first get a tiny deterministic perturbation of the embedding (Gaussian noise of norm 0.02, seeded
by the repetition, renormalized: cosine about 0.9998 to the original) so HNSW is not fed exact duplicates.
Whole articles only: the store stops at the first article boundary at or after --chunks. The collection is
made by the project's `Store` (cosine HNSW, the embedding model in its metadata); chunks are upserted through
Chroma's HttpClient with the metadata `Store.write` gives (`seq` = repetition + 1) and, after each
repetition, the change log's head is written through `Store` (`_log`): that head is the checkpoint, a
restarted build resumes at the repetition after it (upserts by id: redoing a partial one duplicates nothing).
Limits: the vocabulary, the dates and the questions' answers do not grow with the archive (every dev chunk
exists ~47 times at 1M), so latency and memory are those of an archive of that size, ranking quality is not.

reindex: `python -m assistant --data-dir OUT/serve0 reindex` with store.host set (the keyword index rebuilt
from the store over HTTP), timed. The other subcommands run it first if OUT/serve0 has no keyword index yet,
and copy that index to the data dirs of further serve processes (--mode processes).

ingest: one `assistant serve` with an admin token; --n fictional one-article POST /api/articles (invented
town, people and outlet, .example URL), each timed from request to response; prints each and the median.
--profile runs the same ingests in this process under cProfile instead (the library's Ingestor on the same
server), printing where the time goes.

query: in this process through the library (`assistant.answering.chain.Assistant` on the Chroma server, extractive
engine): for each dev question, keyword search alone (`Retriever`'s LexicalIndex.search), whole retrieval
(`retriever.retrieve`) and the whole answer (`Assistant.ask`), p50/p95 (--profile: the answers under cProfile,
its top functions printed; --cached-count: a what-if with the store's count() answered from memory, no
Chroma call, as a fix would do); Chroma's count() alone timed (median of 10); RSS of this process (/proc VmRSS and
VmHWM) after the run, which is what one serve worker holds.

load: `assistant serve --workers N` (--mode workers, the default: uvicorn's supervisor, one data dir) or N
separate serve processes (--mode processes: one data dir each, the keyword index copied, consecutive ports)
against the one Chroma server, server.rate_limit_per_minute set to 1,000,000 for the benchmark;
--users concurrent HTTP clients (httpx, asyncio) spread round-robin over the workers, each POSTing /api/ask
with the dev questions in turn until --seconds have passed (--think S: a pause between a user's questions,
user i starting after S * i / users so they do not ask in waves);
errors (non-200 or transport errors), p50/p95, RSS of every serve process, and the CPU each side used per
answer (`cpu_ms_per_answer`: the Chroma server, the serve workers, this load client; /proc/PID/stat). --mode processes --cached-count:
a what-if with servers whose store count() is answered from memory (the `serve-cached` subcommand: the same
app as `assistant serve`), to size the fix of Chroma's count at 1M.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .common import ROOT, add_dataset, pct

CHROMA = Path(sys.executable).parent / "chroma"  # the venv's, whichever checkout runs it
PORTS = {"s1k": 8411, "s100k": 8412, "s1m": 8413}  # a fixed port per store folder name, else --port


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


def rss_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/PID/stat), 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def port_of(args) -> int:
    return args.port or PORTS.get(Path(args.out).name, 8419)


def settings_for(data_dir: Path, port: int, **extra):
    from assistant.config import load_settings

    return load_settings(data_dir=str(data_dir), **{"store.host": "127.0.0.1", "store.port": port, **extra})


def wait_http(url: str, deadline_s: float, proc: subprocess.Popen | None = None) -> None:
    import httpx

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {deadline_s:.0f} s")


@contextmanager
def chroma_server(out: Path, port: int):
    """`chroma run` on OUT/chroma, loopback; stopped (SIGTERM, then SIGKILL) on exit."""
    (out / "chroma").mkdir(parents=True, exist_ok=True)
    logf = open(out / "chroma-server.log", "ab")
    proc = subprocess.Popen([str(CHROMA), "run", "--path", str(out / "chroma"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=logf, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", 600, proc)
        yield proc
    finally:
        proc.terminate()
        _reap(proc, 60)
        logf.close()


def _reap(proc: subprocess.Popen, timeout: float) -> None:
    """Wait for a terminated process; kill it if it takes longer than `timeout`."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# ------------------------------------------------------------------ build

def read_source(src: Path):
    """The dev store's chunks grouped by article (article order, then chunk order): ids, docs, metas, vectors."""
    import chromadb
    import numpy as np

    client = chromadb.PersistentClient(path=str(src / "chroma"), settings=chromadb.Settings(anonymized_telemetry=False))
    got = client.get_collection("articles").get(include=["documents", "metadatas", "embeddings"])
    order = sorted(range(len(got["ids"])), key=lambda i: (got["metadatas"][i]["article_id"],
                                                          int(got["metadatas"][i]["chunk_index"])))
    docs = [got["documents"][i] for i in order]
    metas = [got["metadatas"][i] for i in order]
    vecs = np.asarray(got["embeddings"], dtype=np.float32)[order]
    return docs, metas, vecs


def cmd_build(args) -> None:
    import numpy as np

    from assistant.index.store import Store

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    docs, metas, vecs = read_source(Path(args.src))
    n = len(docs)
    # article boundaries: the chunk indexes where a new article starts
    starts = [i for i in range(n) if i == 0 or metas[i]["article_id"] != metas[i - 1]["article_id"]] + [n]
    log(f"source: {n} chunks, {len(starts) - 1} articles")
    with chroma_server(out, port_of(args)):
        store = Store(settings_for(out / "serve0", port_of(args)))
        col = store.collection()
        batch = min(args.batch, store.client.get_max_batch_size())
        done_rep = store.change_head() or 0
        total = done_rep * n
        t_start = time.perf_counter()
        rep = done_rep
        while total < args.chunks:
            rng = np.random.default_rng(1000 + rep)
            if rep == 0:
                rv = vecs
            else:
                noise = rng.standard_normal(vecs.shape).astype(np.float32)
                noise *= 0.02 / np.linalg.norm(noise, axis=1, keepdims=True)
                rv = vecs + noise
                rv /= np.linalg.norm(rv, axis=1, keepdims=True)
            # how many chunks of this repetition: all, or up to the first article boundary at or after the goal
            need = args.chunks - total
            take = n if need >= n else next(s for s in starts if s >= need)
            t0 = time.perf_counter()
            for i in range(0, take, batch):
                j = min(take, i + batch)
                ids, m = [], []
                for k in range(i, j):
                    meta = dict(metas[k])
                    meta["article_id"] = f"{meta['article_id']}-r{rep}"
                    meta["seq"] = rep + 1
                    ids.append(f"{meta['article_id']}:{meta['chunk_index']}")
                    m.append(meta)
                col.upsert(ids=ids, documents=docs[i:j], metadatas=m, embeddings=rv[i:j])
            store.log.record(rep + 1, [])  # the change log's head: the checkpoint of this repetition
            total += take
            rep += 1
            el = time.perf_counter() - t0
            log(f"repetition {rep}: {take} chunks in {el:.1f} s ({take / el:.0f}/s); {total} stored")
            if take < n:
                break
        count = store.count()
        build_s = time.perf_counter() - t_start
    info = {"chunks": count, "repetitions": rep, "seconds_this_run": round(build_s, 1),
            "chroma_mb": round(disk_mb(out / "chroma"), 1)}
    prev = out / "build.json"
    if prev.exists():  # a resumed build: keep the seconds of the earlier runs
        old = json.loads(prev.read_text())
        info["seconds_total"] = round(old.get("seconds_total", old["seconds_this_run"]) + build_s, 1)
    else:
        info["seconds_total"] = info["seconds_this_run"]
    prev.write_text(json.dumps(info))
    log("build: " + json.dumps(info))


# ------------------------------------------------------------------ keyword index, serve workers

def lexical_dir(data_dir: Path) -> Path:
    return data_dir / "lexical"


def cmd_reindex(args) -> None:
    """`assistant reindex` against the Chroma server, timed; the built index is copied to the other workers."""
    out = Path(args.out)
    port = port_of(args)
    with chroma_server(out, port):
        info = reindex(out, port)
    log("reindex: " + json.dumps(info))
    (out / "reindex.json").write_text(json.dumps(info))


def reindex(out: Path, port: int) -> dict:
    data = out / "serve0"
    cmd = [sys.executable, "-m", "assistant", "--data-dir", str(data), "reindex"]
    env = dict(os.environ, ASSISTANT_STORE__HOST="127.0.0.1", ASSISTANT_STORE__PORT=str(port))
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"reindex failed: {done.stderr[-2000:]}")
    return {"command": " ".join(["ASSISTANT_STORE__HOST=127.0.0.1", f"ASSISTANT_STORE__PORT={port}", ".venv/bin/python"] + cmd[1:]),
            "wall_s": round(wall, 1), "output": done.stdout.strip(),
            "index_mb": round(disk_mb(lexical_dir(data)), 1)}


def ensure_index(out: Path, port: int, workers: int) -> None:
    """Every worker's data dir holds the keyword index (built once in serve0, copied to the others)."""
    if not lexical_dir(out / "serve0").exists():
        log("no keyword index yet: " + json.dumps(reindex(out, port)))
    for w in range(1, workers):
        if not lexical_dir(out / f"serve{w}").exists():
            shutil.copytree(lexical_dir(out / "serve0"), lexical_dir(out / f"serve{w}"))


ADMIN = "scale-bench-admin-token"


def children(pid: int) -> list[int]:
    """Every descendant process of pid (from /proc: the workers `serve --workers N` spawned)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


@contextmanager
def serve_workers(out: Path, chroma_port: int, workers: int, first_port: int, workers_flag: int = 1,
                  cached_count: bool = False, memo: int | None = None):
    """`assistant serve` processes, one data dir each, against the Chroma server; yields [(url, Popen)].
    workers_flag > 1: each process is `serve --workers N` (uvicorn's supervisor and N worker processes);
    memo: their embedding.memo_size."""
    env = dict(os.environ, ASSISTANT_STORE__HOST="127.0.0.1", ASSISTANT_STORE__PORT=str(chroma_port),
               ASSISTANT_SERVER__ADMIN_TOKEN=ADMIN, ASSISTANT_SERVER__RATE_LIMIT_PER_MINUTE="1000000",
               **({"ASSISTANT_EMBEDDING__MEMO_SIZE": str(memo)} if memo is not None else {}))
    procs = []
    try:
        for w in range(workers):
            port = first_port + w
            logf = open(out / f"serve{w}.log", "ab")
            cmd = [sys.executable, "-m", "assistant", "--data-dir", str(out / f"serve{w}"), "serve", "--port", str(port),
                   *(["--workers", str(workers_flag)] if workers_flag > 1 else [])]
            if cached_count:  # the what-if server: `bench scale serve-cached`, one process per data dir
                cmd = [sys.executable, "-m", "bench", "scale", "serve-cached", "--data-dir", str(out / f"serve{w}"),
                       "--port", str(port)]
            p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
            procs.append((f"http://127.0.0.1:{port}", p, logf))
        for url, p, _ in procs:
            wait_http(url + "/healthz", 900, p)
        yield [(url, p) for url, p, _ in procs]
    finally:
        for _, p, _ in procs:
            p.terminate()
        for _, p, logf in procs:
            _reap(p, 30)
            logf.close()


# ------------------------------------------------------------------ one-article ingest

TOWNS = ["Quellan", "Marrowick", "Ostenby", "Pellham", "Varnook", "Tressel", "Hobbard", "Lunmere", "Ulvenquay",
         "Brisquell", "Zennorby", "Quarrowdeep"]
PEOPLE = ["Wenna Dolsk", "Arlo Pemberfine", "Ysolde Marrin", "Teodor Quill", "Bryn Hallowgate", "Maelis Orrow",
          "Corwin Tasselby", "Idra Venholm"]
THINGS = ["ferry timetable", "library roof", "harbour crane", "tram depot", "school kitchen", "flood barrier",
          "bridge toll", "market hall"]


def fictional_article(i: int, nonce: str) -> dict:
    """An obviously invented article: invented town, people and outlet, a .example URL; varied enough that
    no two are near-duplicates of each other."""
    import random

    r = random.Random(f"{nonce}-{i}")
    town, other = r.sample(TOWNS, 2)
    who, second = r.sample(PEOPLE, 2)
    thing = r.choice(THINGS)
    n1, n2, n3 = r.randint(3, 97), r.randint(100, 999), r.randint(1900, 2024)
    body = (f"The council of {town} voted {n1} to {100 - n1} on Tuesday to repair the {thing}, first opened in "
            f"{n3}. {who}, who chairs the works committee, said the repair would cost {n2} thousand crowns and "
            f"take {r.randint(2, 30)} weeks. Residents of {other} asked whether their own {r.choice(THINGS)} "
            f"would wait longer. {second} of the {town} ratepayers' circle called the vote overdue and asked "
            f"for monthly reports. Work starts on the {r.randint(1, 28)}th, weather permitting, and the "
            f"{r.choice(THINGS)} stays open meanwhile. Nonce {nonce}-{i}.")
    return {"title": f"{town} council votes to repair the {thing} ({nonce}-{i})", "source": "Tidewater Note",
            "author": who, "published_at": f"2025-07-{1 + i % 28:02d}",
            "url": f"https://tidewater-note.example/{nonce}/{i}", "body": body}


def cmd_ingest(args) -> None:
    import httpx

    out = Path(args.out)
    port = port_of(args)
    nonce = f"{Path(args.out).name}-{int(time.time())}"
    with chroma_server(out, port):
        ensure_index(out, port, 1)
        if args.profile:
            return profile_ingest(out, port, args.n, nonce)
        with serve_workers(out, port, 1, args.serve_port) as workers:
            url, proc = workers[0]
            chunks = httpx.get(url + "/healthz", timeout=60).json()["chunks"]
            times = []
            with httpx.Client(timeout=600, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
                for i in range(args.n + 1):  # the first one warms the embedder up and is not counted
                    t = time.perf_counter()
                    r = client.post(url + "/api/articles", json=fictional_article(i, nonce))
                    el = time.perf_counter() - t
                    body = r.json()
                    if r.status_code != 200 or body.get("added") != 1:
                        raise SystemExit(f"ingest {i} failed: {r.status_code} {body}")
                    if i:
                        times.append(el)
                    log(f"ingest {i}: {el:.3f} s ({body.get('chunks')} chunks; server says {body.get('seconds'):.3f} s)")
            info = {"store_chunks": chunks, "n": len(times), "seconds": [round(t, 3) for t in times],
                    "median_s": round(statistics.median(times), 3), "serve_rss_mb": rss_mb(proc.pid)}
    log("ingest: " + json.dumps(info))


def profile_ingest(out: Path, port: int, n: int, nonce: str) -> None:
    """The same ingests in this process (the library's Ingestor on the Chroma server): seconds per step."""
    import cProfile
    import pstats

    from assistant.ingest.ingestor import Ingestor
    from assistant.ingest.loaders import articles_from_records

    ing = Ingestor(settings_for(out / "serve0", port))
    ing.store.embedder.embed(["warm"])
    spent: dict[str, float] = {}

    def timed(obj, name, label):
        inner = getattr(obj, name)

        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t
        setattr(obj, name, wrapper)

    timed(ing.store, "manifest", "store.manifest (the incoming articles' rows, by id)")
    timed(ing, "_drop_near_duplicates", "near-duplicate check (candidates from the keyword index, their rows by id)")
    timed(ing.store.embedder, "embed", "embedding")
    timed(ing.store, "write", "store.write (upsert + change log)")
    timed(ing.lexical, "sync", "keyword index sync")
    timed(ing.store.lease, "take", "write lease (take/renew, 0.1 s settle)")
    timed(ing.store.lease, "release", "write lease release")
    prof = cProfile.Profile()
    totals = []
    for i in range(n + 1):
        articles, _ = articles_from_records([fictional_article(i, nonce)], "bench")
        if i == 0:
            ing.ingest_articles(articles)
            spent.clear()
            continue
        t = time.perf_counter()
        prof.enable()
        report = ing.ingest_articles(articles)
        prof.disable()
        totals.append(time.perf_counter() - t)
        assert report.added == 1, report
    total = sum(totals)
    log(f"profile: {n} ingests, median {statistics.median(totals):.3f} s; seconds per ingest by step:")
    for label, s in sorted(spent.items(), key=lambda x: -x[1]):
        print(f"  {s / n:8.3f} s  {100 * s / total:5.1f}%  {label}")
    print(f"  {(total - sum(spent.values())) / n:8.3f} s          the rest")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


# ------------------------------------------------------------------ query cost per worker

def cmd_query(args) -> None:
    from assistant.answering.chain import Assistant
    from assistant.answering.retrieval import Filters
    from assistant.eval.dataset import load_dataset

    out = Path(args.out)
    port = port_of(args)
    questions = load_dataset(args.dataset).queries
    with chroma_server(out, port) as chroma:
        ensure_index(out, port, 1)
        settings = settings_for(out / "serve0", port)
        t0 = time.perf_counter()
        a = Assistant(settings)
        a.ask(questions[0].query, filters={"today": questions[0].question_date})  # warm: models, index
        warm = time.perf_counter() - t0
        k = settings.retrieval.lexical_k
        counts = []
        for _ in range(10):  # Chroma's count() alone: an answer calls it twice (chain._prepare, dense_search)
            t = time.perf_counter()
            n_chunks = a.store.count()
            counts.append(1000 * (time.perf_counter() - t))
        if args.cached_count:  # what-if: every count answered from the first one, no Chroma call
            inner = a.store._call

            def call(what, method, **kw):
                return n_chunks if method == "count" and not kw.get("log_collection") else inner(what, method, **kw)
            a.store._call = call
        kw, retr, ans, refused = [], [], [], 0
        prof = None
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
        for q in questions:
            t = time.perf_counter()
            a.lexical.search(q.query, k)
            kw.append(1000 * (time.perf_counter() - t))
            t = time.perf_counter()
            a.retriever.retrieve(q.query, Filters(today=q.question_date))
            retr.append(1000 * (time.perf_counter() - t))
            t = time.perf_counter()
            if prof is not None:
                prof.enable()
            answer = a.ask(q.query, filters={"today": q.question_date})
            if prof is not None:
                prof.disable()
            ans.append(1000 * (time.perf_counter() - t))
            refused += bool(answer.refused)
        info = {"store_chunks": n_chunks, "questions": len(questions), "warm_s": round(warm, 1),
                "cached_count": args.cached_count, "count_median_ms": round(statistics.median(counts), 1),
                "keyword_p50_ms": round(pct(kw, 50), 1), "keyword_p95_ms": round(pct(kw, 95), 1),
                "retrieval_p50_ms": round(pct(retr, 50), 1), "retrieval_p95_ms": round(pct(retr, 95), 1),
                "answer_p50_ms": round(pct(ans, 50), 1), "answer_p95_ms": round(pct(ans, 95), 1),
                "refused": refused, "worker_rss_mb": rss_mb(os.getpid()), "chroma_rss_mb": rss_mb(chroma.pid)}
    log("query: " + json.dumps(info))
    if prof is not None:  # where the answers' time goes: the project's own functions, by cumulative time
        import pstats

        pstats.Stats(prof).sort_stats("cumulative").print_stats(r"assistant/|chromadb/api/fastapi|tantivy", 40)


# ------------------------------------------------------------------ many users over HTTP

async def _users(urls: list[str], users: int, questions: list, seconds: float, think: float) -> dict:
    import asyncio

    import httpx

    lat, errors, kinds = [], 0, {}
    deadline = time.perf_counter() + seconds

    async def user(uid: int, client) -> None:
        nonlocal errors
        i = uid * 7
        url = urls[uid % len(urls)] + "/api/ask"
        if think:  # staggered starts: with pauses, users who all began at once would keep asking in waves
            await asyncio.sleep(think * uid / users)
        while time.perf_counter() < deadline:
            q = questions[i % len(questions)]
            i += 1
            t = time.perf_counter()
            try:
                r = await client.post(url, json={"question": q.query, "filters": {"today": q.question_date}})
                if r.status_code != 200:
                    errors += 1
                    kinds[str(r.status_code)] = kinds.get(str(r.status_code), 0) + 1
            except httpx.HTTPError as e:
                errors += 1
                kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
            lat.append(time.perf_counter() - t)
            if think:
                await asyncio.sleep(think)

    t0 = time.perf_counter()
    limits = httpx.Limits(max_connections=users + 10, max_keepalive_connections=users + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(user(u, client) for u in range(users)))
    wall = time.perf_counter() - t0
    return {"users": users, "requests": len(lat), "errors": errors, "error_kinds": kinds,
            "throughput_rps": round(len(lat) / wall, 2), "p50_ms": round(1000 * pct(lat, 50)),
            "p95_ms": round(1000 * pct(lat, 95)), "max_ms": round(1000 * max(lat)) if lat else 0,
            "wall_s": round(wall, 1)}


def cmd_load(args) -> None:
    import asyncio

    import httpx

    from assistant.eval.dataset import load_dataset

    out = Path(args.out)
    port = port_of(args)
    questions = [q for q in load_dataset(args.dataset).queries if q.query.strip()]
    with chroma_server(out, port) as chroma:
        if args.mode == "workers":  # one `assistant serve --workers N`: uvicorn's supervisor, one data dir
            ensure_index(out, port, 1)
            ctx = serve_workers(out, port, 1, args.serve_port, workers_flag=args.workers, memo=args.memo)
        else:  # N separate `assistant serve` processes (or --cached-count what-if servers), one data dir each
            ensure_index(out, port, args.workers)
            ctx = serve_workers(out, port, args.workers, args.serve_port, cached_count=args.cached_count,
                                memo=args.memo)
        with ctx as served:
            urls = [u for u, _ in served]
            for _ in range(2 * args.workers):  # warm every worker: models, keyword index, first Chroma query
                for u in urls:
                    httpx.post(u + "/api/ask", json={"question": questions[0].query}, timeout=300)
            pids = [pid for _, p in served for pid in [p.pid, *children(p.pid)]]
            chroma_pids = [chroma.pid, *children(chroma.pid)]
            before = {pid: cpu_s(pid) for pid in pids + chroma_pids}
            me = os.times()
            info = asyncio.run(_users(urls, args.users, questions, args.seconds, args.think))
            spent = {pid: cpu_s(pid) - t for pid, t in before.items()}
            answers = max(1, info["requests"])
            info["cpu_ms_per_answer"] = {  # where the two cores go: Chroma, the serve workers, this load client
                "chroma": round(1000 * sum(spent[p] for p in chroma_pids) / answers, 1),
                "workers": round(1000 * sum(spent[p] for p in pids) / answers, 1),
                "load_client": round(1000 * (os.times().user - me.user + os.times().system - me.system) / answers, 1)}
            info.update(mode=args.mode, workers=args.workers, think_s=args.think, cached_count=args.cached_count,
                        memo_size=args.memo,
                        store_chunks=httpx.get(urls[0] + "/healthz", timeout=60).json()["chunks"],
                        process_rss_mb={str(pid): rss_mb(pid) for pid in pids}, chroma_rss_mb=rss_mb(chroma.pid))
    log("load: " + json.dumps(info))

def cmd_serve_cached(args) -> None:
    """What-if server (load --mode processes --cached-count): `assistant serve`'s app (create_app, the same
    settings from the environment, one embedder thread) with the store's count() answered from memory."""
    from assistant.answering.chain import Assistant
    from assistant.config import load_settings
    from assistant.web import server
    from assistant.web.api import create_app

    settings = load_settings(data_dir=args.data_dir, **{"server.port": args.port})
    if settings.embedding.threads == 0:
        settings = settings.model_copy(update={"embedding": settings.embedding.model_copy(update={"threads": 1})})
    a = Assistant(settings)
    n_chunks = a.store.count()
    inner = a.store._call

    def call(what, method, **kw):
        return n_chunks if method == "count" and not kw.get("log_collection") else inner(what, method, **kw)
    a.store._call = call
    server.run(create_app(settings, a), "127.0.0.1", args.port, "warning", on_started=lambda: None)


# ------------------------------------------------------------------ command line

ACTIONS = {"build": cmd_build, "reindex": cmd_reindex, "ingest": cmd_ingest, "query": cmd_query,
           "load": cmd_load, "serve-cached": cmd_serve_cached}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    sub = ap.add_subparsers(dest="action", required=True, metavar="action")
    b = sub.add_parser("build", help="the dev store's chunks repeated up to --chunks on a Chroma server")
    b.add_argument("--src", required=True, help="a COPY of the dev-set eval store's data dir")
    b.add_argument("--chunks", type=int, required=True)
    b.add_argument("--batch", type=int, default=2000)
    r = sub.add_parser("reindex", help="timed `assistant reindex` against the Chroma server")
    i = sub.add_parser("ingest", help="one-article POST /api/articles on a running server, median")
    i.add_argument("--n", type=int, default=7)
    i.add_argument("--profile", action="store_true", help="in this process under cProfile, seconds per step")
    q = sub.add_parser("query", help="keyword search, retrieval and answer p50/p95 through the library")
    add_dataset(q)
    q.add_argument("--profile", action="store_true", help="cProfile the answers (Assistant.ask) and print the top")
    q.add_argument("--cached-count", action="store_true",
                   help="what-if: the store's count() answered from memory instead of a Chroma call")
    ld = sub.add_parser("load", help="concurrent users over HTTP against serve workers")
    add_dataset(ld)
    ld.add_argument("--users", type=int, default=50)
    ld.add_argument("--workers", type=int, default=2)
    ld.add_argument("--seconds", type=float, default=120)
    ld.add_argument("--think", type=float, default=0.0, help="seconds a user waits between questions (0: none)")
    ld.add_argument("--mode", choices=["workers", "processes"], default="workers",
                    help="workers: one `serve --workers N`; processes: N `serve` processes, own data dirs")
    ld.add_argument("--cached-count", action="store_true",
                    help="what-if (with --mode processes): servers whose store count() is answered from memory")
    ld.add_argument("--memo", type=int, default=None,
                    help="embedding.memo_size of the workers (default: theirs, 50,000); 2000 holds the questions "
                         "under way but not one pass of the dev questions' sentences: never-seen questions")
    sc = sub.add_parser("serve-cached", help="(used by load --cached-count) the what-if server")
    sc.add_argument("--data-dir", required=True)
    sc.add_argument("--port", type=int, required=True)
    for p in (i, ld):
        p.add_argument("--serve-port", type=int, default=7961, help="first serve worker's port (then +1, ...)")
    for p in (b, r, i, q, ld):
        p.add_argument("--out", required=True)
        p.add_argument("--port", type=int, help="the Chroma server's port (default: one per store folder name)")


def run(args: argparse.Namespace) -> None:
    ACTIONS[args.action](args)
