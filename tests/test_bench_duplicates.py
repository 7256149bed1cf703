"""The near-duplicate study (once bench/duplicates.py), on the project's own fictional data: which articles an
ingest skips as copies of others, pinned.

The study runs the ingest's copy test (`Ingestor._drop_near_duplicates`: no embedding, nothing written) over a
set of articles in the order an ingest sees them and lists each skipped article with the one it copies and the
estimated overlap. Two checkouts that skip the same articles build the same store; a change to the copy test,
its signatures or its threshold that skips another article, or stops skipping one, fails here and is a
decision to make on purpose (bench/RESULTS.md, "Issue 17: one name definition and one copy test").
The data: tests/data/eval (the fictional eval set, read as `assistant eval` reads a dataset) and the seed
with its three wire copies (tests/data/reliability/wire), never the realtimeqa dataset (evaluation only).
"""

from __future__ import annotations

from pathlib import Path

from assistant.eval.run import load_dataset
from assistant.ingest.ingestor import Ingestor, IngestReport
from assistant.ingest.loaders import load_paths
from assistant.text.duplicates import copied_share, shingles

ROOT = Path(__file__).resolve().parent.parent
SEED_TITLE = "Russia snubs Iran as Kremlin refuses military help: “BRICS is not a mutual defense pact”"


def study(settings, articles) -> tuple[list[tuple[str, str]], int]:
    """([(skipped article, why)] in origin order, articles kept), origins relative to the repo root."""
    report = IngestReport()
    kept = Ingestor(settings)._drop_near_duplicates(list(articles), {}, report)
    rel = lambda text: text.replace(f"{ROOT}/", "")  # noqa: E731
    return sorted((rel(s.path), rel(s.reason)) for s in report.skipped), len(kept)


def test_the_eval_fixture_skips_its_one_copied_story(make_settings):
    dataset = load_dataset(ROOT / "tests" / "data" / "eval")
    skipped, kept = study(make_settings(), dataset.articles)
    assert skipped == [
        ("tests/data/eval/corpus.json[1]",
         "near-duplicate (100% overlap) of 'Harbor city opens longest suspension bridge in the region' "
         "(Newsroom Wire, tests/data/eval/corpus.json[0])"),
    ]
    assert (len(dataset.articles), kept) == (12, 11)
    # the estimate agrees with the exact count: the copy's word 4-grams are all in the story it copies
    by_origin = {a.origin: a for a in dataset.articles}
    new, old = (by_origin[f"{ROOT}/tests/data/eval/corpus.json[{i}]"] for i in (1, 0))
    assert copied_share(shingles(new.body, 4), shingles(old.body, 4)) >= 0.8


def test_the_seed_and_its_wire_copies_keep_the_seed_only(make_settings):
    loaded = load_paths([ROOT / "corpus", ROOT / "tests" / "data" / "reliability" / "wire"])
    assert not loaded.failures
    skipped, kept = study(make_settings(), loaded.articles)
    copy_of_seed = f"of '{SEED_TITLE}' (corpus/russia-snubs-iran.txt)"
    assert skipped == [
        ("tests/data/reliability/wire/durnholt-gazette.txt", f"near-duplicate (98% overlap) {copy_of_seed}"),
        ("tests/data/reliability/wire/lanthorn-wire.md", f"near-duplicate (100% overlap) {copy_of_seed}"),
        ("tests/data/reliability/wire/vellmark-courier.md", f"near-duplicate (97% overlap) {copy_of_seed}"),
    ]
    assert (len(loaded.articles), kept) == (5, 2)  # kept: the seed and the unrelated coastguard story
