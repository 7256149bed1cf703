"""The keyword index alone at larger archive sizes: the dev archive's chunks repeated under new ids.

    cd bench && python lexical_scale.py --dataset ../../shared/datasets/realtimeqa-news --data-dir DIR \
        [--sizes 100000,1000000] [--engines tantivy,fts5]

DIR holds the dataset's eval store (as for bench/lexical.py; indexes are written under DIR/bench-lexical-scale/).
For each size: a full build from the change source (what `assistant reindex` does after reading the store,
store reading not included), disk, the 156 questions' keyword query p50/p95 (top 10 of all chunks), and one
more article (10 chunks) synced incrementally. Repeated chunks keep every word's document frequency in
proportion (the same IDF) and make posting lists as long as a real archive of that size would; they do not
make a realistic vocabulary (a larger archive has more distinct words), so this measures the engine's cost
per matching document, not ranking quality.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

from devset import parser
from lexical import Fts5, Tantivy, disk


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--engines", default="tantivy,fts5")
    args = ap.parse_args()
    from assistant.config import load_settings
    from assistant.eval.run import ensure_store, load_dataset
    from assistant.index.lexical import _cache_fields
    from assistant.index.store import Store
    from assistant.text.words import tokenize

    dataset = load_dataset(args.dataset, args.sample)
    store = Store(ensure_store(load_settings(data_dir=args.data_dir), dataset))
    base = [(*_cache_fields(cid, text, meta)[:6], 1) for cid, text, meta in store.iter_chunks()]
    queries = [tokenize(q.query) for q in dataset.queries]
    queries = [q for q in queries if q]
    out_dir = Path(args.data_dir) / "bench-lexical-scale"
    print("| engine | chunks | build s | disk MB | query p50 ms | query p95 ms | +1 article (10 chunks) s |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        rows = [(f"{r[0]}~{i // len(base)}", *r[1:]) for i, r in zip(range(size), _cycle(base, size))]
        extra = [(f"bench-extra:{i}", *r[1:]) for i, r in enumerate(base[:10])]
        for name in args.engines.split(","):
            engine = {"fts5": Fts5, "tantivy": Tantivy}[name](out_dir / name)
            t0 = time.perf_counter()
            engine.build(rows)
            build = time.perf_counter() - t0
            size_mb = disk(out_dir / name) / 1e6
            engine.search(["warm"], 1)
            lat = []
            for toks in queries:
                t = time.perf_counter()
                engine.search(toks, 10)
                lat.append(time.perf_counter() - t)
            t0 = time.perf_counter()
            engine.add(extra)
            add = time.perf_counter() - t0
            q = statistics.quantiles(lat, n=100)
            print(f"| {name} | {size:,} | {build:.1f} | {size_mb:.1f} | {q[49] * 1000:.1f} | {q[94] * 1000:.1f} "
                  f"| {add:.3f} |", flush=True)
            shutil.rmtree(out_dir / name, ignore_errors=True)


def _cycle(rows, n):
    i = 0
    while i < n:
        yield rows[i % len(rows)]
        i += 1


if __name__ == "__main__":
    main()
