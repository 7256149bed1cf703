"""Keyword engines on the dev archive: bm25s (rebuilt whole), SQLite FTS5 and tantivy (both incremental).

    python bench/lexical.py --dataset ../shared/datasets/realtimeqa-news --data-dir DIR [--engines bm25s,fts5,tantivy]

DIR holds the dataset's eval store (`assistant eval` builds it under DIR/eval/<key>; copy the cache first: the
engines' indexes are written under DIR/bench-lexical/). Every engine indexes the same tokens
(`assistant.index.lexical.tokenize` of title + chunk text, read from the store once) and answers every question's
keyword query alone (no dense search, no reranking), scored with the eval's own metrics (hits@k, MRR@10 of a
chunk holding a gold answer). Per engine: full build time, disk, query p50/p95 (top 10 of all chunks; and
with a date filter), and the cost of one more article (a 10-chunk upsert and its commit) on the full index.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from devset import parser

TOP = 10


def disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


class Bm25s:
    """Today's engine before issue 15: bm25s over every chunk, rebuilt and saved whole after each ingest."""

    name = "bm25s"

    def __init__(self, folder: Path):
        import bm25s

        self.bm25s, self.folder = bm25s, folder

    def build(self, rows):
        self.ids = [r[0] for r in rows]
        self.tokens = [r[2].split() or ["\x00"] for r in rows]
        self.dates = __import__("numpy").array([r[3] for r in rows])
        self._index()

    def _index(self):
        shutil.rmtree(self.folder, ignore_errors=True)
        self.bm = self.bm25s.BM25()
        self.bm.index(self.tokens, show_progress=False)
        self.bm.save(str(self.folder), show_progress=False)

    def add(self, rows):  # what an ingest cost: the whole index rebuilt and written again
        self.ids += [r[0] for r in rows]
        self.tokens += [r[2].split() for r in rows]
        self._index()

    def search(self, tokens, k, date_from=None):
        import numpy as np

        scores = self.bm.get_scores(tokens)
        if date_from is not None:
            scores = scores * (self.dates[: len(scores)] >= date_from)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [self.ids[i] for i in top if scores[i] > 0]


class _Synced:
    """A keyword index fed through its change-source interface (the store's rows, read once)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def make(self, folder, source):
        raise NotImplementedError

    def build(self, rows):
        import assistant.index.lexical as lexical

        self.src = _Rows(rows)
        lexical._cache_fields = lambda cid, text, meta: self.src.rows[cid]  # the same tokens as the others
        sys.modules.get("fts5_index", lexical)._cache_fields = lexical._cache_fields
        shutil.rmtree(self.folder, ignore_errors=True)
        self.index = self.make(self.folder, self.src)
        self.index.sync(full=True)
        self.index.source = None  # queries below measure reading only
        self.index.SYNC_SECONDS = 1e9

    def add(self, rows):
        self.src.append(rows)
        self.index.source = self.src
        report = self.index.sync()
        self.index.source = None
        assert report.upserted == len(rows) and not report.rebuilt, report

    def search(self, tokens, k, date_from=None):
        mask = self.index.mask(date_from) if date_from else None
        return [cid for cid, _ in self.index.search(" ".join(tokens), k, mask)]


class Fts5(_Synced):
    """SQLite FTS5 (bench/fts5_index.py): bm25(), WAL readers, filters in SQL."""

    name = "fts5"

    def make(self, folder, source):
        from fts5_index import Fts5Index

        return Fts5Index(folder, source)


class Tantivy(_Synced):
    """tantivy as shipped (assistant.lexical.LexicalIndex): whitespace tokenizer over our tokens."""

    name = "tantivy"

    def make(self, folder, source):
        from assistant.index.lexical import LexicalIndex

        return LexicalIndex(folder, source)


class _Rows:
    """A ChangeSource over rows already read from the store (the benchmark reads the store once)."""

    def __init__(self, rows):
        self.rows = {r[0]: r for r in rows}
        self.head = 1

    def append(self, rows):
        self.head += 1
        self.rows.update({r[0]: (*r[:6], self.head) for r in rows})
        self.changed = {r[0] for r in rows}

    def identity(self):
        return "bench"

    def change_head(self):
        return self.head

    def count(self):
        return len(self.rows)

    def _chunks(self, seq):
        for cid, row in self.rows.items():
            if row[6] > seq:
                yield cid, "", {}

    def iter_chunks(self):
        return self._chunks(-1)

    def changes_since(self, seq):
        return self._chunks(seq)

    def deletions_since(self, seq):
        return []


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--engines", default="bm25s,fts5,tantivy")
    args = ap.parse_args()
    from assistant.config import load_settings
    from assistant.eval.run import QueryResult, ensure_store, load_dataset, retrieved_from, summarize, top_chunk_answer
    from assistant.index.lexical import _cache_fields
    from assistant.index.store import Store
    from assistant.text.words import tokenize

    dataset = load_dataset(args.dataset, args.sample)
    settings = ensure_store(load_settings(data_dir=args.data_dir), dataset)
    store = Store(settings)
    t0 = time.perf_counter()
    chunks = list(store.iter_chunks())
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = [(*_cache_fields(cid, text, meta)[:6], 1) for cid, text, meta in chunks]
    t_tok = time.perf_counter() - t0
    texts = {cid: (text, meta) for cid, text, meta in chunks}
    print(f"{len(rows)} chunks read from the store in {t_read:.1f}s, tokenized in {t_tok:.1f}s", flush=True)
    # one more article: the first 10 chunks again under new ids
    extra = [(f"bench-extra:{i}", *r[1:]) for i, r in enumerate(rows[:10])]
    dates = sorted(r[3] for r in rows if r[3])
    median_date = dates[len(dates) // 2]
    out_dir = Path(args.data_dir) / "bench-lexical"
    queries = [(q, tokenize(q.query)) for q in dataset.queries]
    table = []
    for name in args.engines.split(","):
        engine = {"bm25s": Bm25s, "fts5": Fts5, "tantivy": Tantivy}[name](out_dir / name)
        t0 = time.perf_counter()
        engine.build(rows)
        build = time.perf_counter() - t0
        size = disk(out_dir / name)
        engine.search(["warm"], 1)
        lat, lat_f, results = [], [], []
        for q, toks in queries:
            t = time.perf_counter()
            ids = engine.search(toks, TOP) if toks else []
            lat.append(time.perf_counter() - t)
            t = time.perf_counter()
            if toks:
                engine.search(toks, TOP, median_date)
            lat_f.append(time.perf_counter() - t)
            from assistant.index.store import passage_from

            passages = [passage_from(cid, *texts[cid]) for cid in ids]
            retrieved = retrieved_from(passages)
            results.append(QueryResult(q, retrieved, top_chunk_answer(retrieved), lat[-1]))
        t0 = time.perf_counter()
        engine.add(extra)
        add = time.perf_counter() - t0
        summary = summarize(results, sum(lat))
        q = statistics.quantiles(lat, n=100)
        qf = statistics.quantiles(lat_f, n=100)
        row = (name, summary["hits@1"], summary["hits@10"], summary["mrr@10"], q[49] * 1000, q[94] * 1000,
               qf[94] * 1000, build, size / 1e6, add)
        table.append(row)
        print("| {} | {:.3f} | {:.3f} | {:.3f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.3f} |".format(*row),
              flush=True)
    print("\n| engine | hits@1 | hits@10 | mrr@10 | query p50 ms | query p95 ms | p95 with date filter ms "
          "| build s | disk MB | +1 article (10 chunks) s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in table:
        print("| {} | {:.3f} | {:.3f} | {:.3f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.3f} |".format(*row))
    print(f"\n{len(rows)} chunks, {len(queries)} questions; tokenizing the archive (shared by all): {t_tok:.1f}s")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
