"""Which dev-set articles an ingest skips as copies of others (issue 17: one near-duplicate test).

    python bench/duplicates.py --dataset ../shared/datasets/realtimeqa-news [--data-dir DIR]
    PYTHONPATH=<another checkout> python bench/duplicates.py ...   # the same with that checkout's code

Runs the ingest's copy test (`Ingestor._drop_near_duplicates`, no embedding, nothing written) over the
dataset's articles in the order `assistant eval` ingests them, and prints each skipped article with the one it
copies and the estimated overlap, then the count: two checkouts that skip the same articles build the same
eval store. `--exact` adds, for each skipped article, the exact share of its word 4-grams in the one it copies,
the exact Jaccard index of their word 5-grams (the test before issue 17) and both lengths in words.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from devset import parser  # noqa: E402  (puts this checkout first on the path)

sys.path.insert(0, os.environ.get("PYTHONPATH", "").split(":")[0] or str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--exact", action="store_true")
    args = ap.parse_args()
    from assistant.config import load_settings
    from assistant.eval.run import load_dataset
    from assistant.ingest.ingestor import Ingestor, IngestReport

    dataset = load_dataset(args.dataset, args.sample)
    with tempfile.TemporaryDirectory() as tmp:
        ingestor = Ingestor(load_settings(data_dir=args.data_dir or tmp))
        report = IngestReport()
        t = time.perf_counter()
        kept = ingestor._drop_near_duplicates(list(dataset.articles), {}, report)
        seconds = time.perf_counter() - t
    import assistant

    print(f"code: {Path(assistant.__file__).parent}")
    by_origin = {a.origin: a for a in dataset.articles}
    for s in sorted(report.skipped, key=lambda s: s.path):
        print(f"{s.path}\t{s.reason}")
        if args.exact:
            print("\t" + _exact(by_origin[s.path], by_origin[s.reason.rsplit(", ", 1)[-1].rstrip(")")]))
    print(f"{len(dataset.articles)} articles: {len(report.skipped)} skipped as copies, {len(kept)} kept "
          f"({seconds:.1f} s)")


def _exact(new, old) -> str:
    from assistant.text.duplicates import copied_share, shingles

    a5, b5 = shingles(new.body, 5), shingles(old.body, 5)
    return (f"4-gram share in it {copied_share(shingles(new.body, 4), shingles(old.body, 4)):.2f}, "
            f"5-gram Jaccard {len(a5 & b5) / len(a5 | b5):.2f}, words {len(new.body.split())} vs "
            f"{len(old.body.split())}")


if __name__ == "__main__":
    main()
