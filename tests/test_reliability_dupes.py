"""Reliability matrix, row 2: the same article twice, and one wire story under several outlets (docs/reliability.md).

The wire copies in tests/data/reliability/wire carry the real seed article's text verbatim under fictional outlets
(another title prefix or suffix, byline or footer line); vellmark-coastguard.md is a fictional unrelated story.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

from assistant.answering.chain import Assistant
from assistant.index.store import Store
from assistant.ingest.ingestor import Ingestor
from assistant.ingest.loaders import load_file
from assistant.text.duplicates import Signature, normalized
from tests.support.paths import SEED

WIRE = Path(__file__).parent / "data" / "reliability" / "wire"
ORIGINAL, COURIER, GAZETTE = WIRE / "lanthorn-wire.md", WIRE / "vellmark-courier.md", WIRE / "durnholt-gazette.txt"
UNRELATED = WIRE / "vellmark-coastguard.md"
OUTLETS = {"Lanthorn Wire", "Vellmark Courier", "Durnholt Gazette"}
QUESTION = "Did Russia offer Iran military help?"


def _load(path: Path):
    articles, failures = load_file(path)
    assert not failures
    return articles[0]


def _titles(settings) -> list[str]:
    return sorted(m["title"] for m in Store(settings).manifest().values())


def _assert_cited_once(answer) -> None:
    """No passage text is cited from two articles, and at most one of the wire copies is cited."""
    by_quote: dict[str, set[str]] = {}
    for c in answer.citations:
        by_quote.setdefault(normalized(c.quote), set()).add(c.article_id)
    assert all(len(ids) == 1 for ids in by_quote.values()), by_quote
    wire_sources = {c.source for c in answer.citations} & OUTLETS
    assert len(wire_sources) <= 1, wire_sources


def test_wire_copies_carry_the_seed_text_verbatim():
    """The copies differ from the seed only outside its text: title, outlet, byline, footer."""
    seed = _load(SEED)
    copies = [_load(p) for p in (ORIGINAL, COURIER, GAZETTE)]
    assert {a.source for a in copies} == OUTLETS
    assert all(urlparse(a.url).hostname.endswith(".example") for a in copies)
    assert copies[0].title == seed.title and copies[0].body == seed.body
    for a in copies[1:]:
        assert seed.title in a.title and a.title != seed.title
        assert seed.body in a.body and a.body != seed.body


def test_same_article_twice_in_one_run_is_stored_once(tmp_path, make_settings):
    folder = tmp_path / "in"
    (folder / "copy").mkdir(parents=True)
    shutil.copy(UNRELATED, folder / "story.md")
    shutil.copy(UNRELATED, folder / "copy" / "story-again.md")
    settings = make_settings()
    report = Ingestor(settings).ingest_paths([folder])
    assert report.added == 1
    [skip] = report.skipped
    # folders are read in sorted order: copy/ comes first, so the top-level file is the duplicate
    assert (skip.path, skip.reason) == (str(folder / "story.md"),
                                        f"duplicate of {folder / 'copy' / 'story-again.md'}")
    assert Store(settings).stats()["articles"] == 1


def test_wire_story_under_three_outlets_is_stored_once_and_cited_once(make_settings):
    settings = make_settings()
    ingestor = Ingestor(settings)
    report = ingestor.ingest_paths([ORIGINAL, UNRELATED, COURIER])
    assert report.added == 2
    [skip] = report.skipped  # different title, source, byline and footer: still the same story
    assert skip.path == str(COURIER)
    assert "near-duplicate" in skip.reason and f"'{_load(ORIGINAL).title}'" in skip.reason
    assert "Lanthorn Wire" in skip.reason

    # a later run brings a third copy: caught against the stored signature
    later = ingestor.ingest_paths([GAZETTE])
    assert later.added == 0 and "near-duplicate" in later.skipped[0].reason
    assert _titles(settings) == sorted([_load(ORIGINAL).title, _load(UNRELATED).title])

    answer = Assistant(settings).ask(QUESTION)
    assert not answer.refused and answer.citations
    _assert_cited_once(answer)


def test_editing_a_stored_article_is_not_taken_for_a_copy_of_itself(tmp_path, make_settings):
    src = tmp_path / "coastguard.md"
    shutil.copy(UNRELATED, src)
    settings = make_settings()
    ingestor = Ingestor(settings)
    assert ingestor.ingest_paths([src]).added == 1
    before = _load(src).body
    src.write_text(src.read_text(encoding="utf-8").replace(
        "Mayor Oskar Lindel said", "Mayor Oskar Lindel, who chairs the harbour board, said"), encoding="utf-8")
    after = _load(src).body
    assert after != before
    # the edit is small enough that the new text is a near-duplicate of the stored one: the case this checks
    overlap = Signature.of(after).share_in(Signature.of(before))
    assert overlap >= settings.ingest.near_duplicate, overlap
    report = ingestor.ingest_paths([src])
    assert (report.added, report.updated, report.skipped) == (0, 1, [])
    stored = [t for _, t, _ in Store(settings).iter_chunks()]
    assert any("Oskar Lindel, who chairs the harbour board" in t for t in stored)
    assert not any("Mayor Oskar Lindel said" in t for t in stored)  # the old chunks are replaced


def test_with_ingest_dedupe_off_copies_are_still_cited_once(make_settings):
    """Stored twice (near_duplicate = 0): query-time collapsing must keep one copy per passage."""
    settings = make_settings(**{"ingest.near_duplicate": 0})
    report = Ingestor(settings).ingest_paths([ORIGINAL, GAZETTE, UNRELATED])
    assert report.added == 3 and not report.skipped
    answer = Assistant(settings).ask(QUESTION)
    assert not answer.refused
    _assert_cited_once(answer)


def _words(n: int, seed: str) -> str:
    return " ".join(f"{seed}{i}" for i in range(n))


def test_the_copy_test_asks_whether_the_new_text_is_already_there():
    """One test for articles, passages and sentences: the new text's word 4-grams mostly inside the other's."""
    from assistant.text.duplicates import copied_share, is_copy, shingles

    story = _words(200, "w")
    trimmed, extended = _words(150, "w"), story + " " + _words(100, "local")
    assert is_copy(shingles(trimmed), shingles(story))  # a cut copy lies inside the full story
    assert not is_copy(shingles(extended), shingles(story))  # a version adding its own third is not a copy ...
    assert is_copy(shingles(story), shingles(extended))  # ... but the story lies inside it
    assert copied_share(shingles(_words(200, "v")), shingles(story)) == 0.0
    # the archive-scale estimate agrees with the exact share within MinHash's error
    for new, seen in ((trimmed, story), (extended, story), (story, extended)):
        exact = copied_share(shingles(new), shingles(seen))
        assert abs(Signature.of(new).share_in(Signature.of(seen)) - exact) < 0.15, (exact,)


def test_a_longer_version_is_stored_and_a_trimmed_copy_is_not(tmp_path, make_settings):
    body = " ".join(f"Sentence {i} of the Norrheim harbour report names pier {i} and crane {i}." for i in range(40))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "full.txt").write_text("Norrheim harbour report\n\n" + body, encoding="utf-8")
    settings = make_settings()
    ingestor = Ingestor(settings)
    assert ingestor.ingest_paths([tmp_path / "a"]).added == 1
    cut = body.rsplit(" Sentence 30", 1)[0]
    (tmp_path / "trimmed.txt").write_text("Harbour report, short\n\n" + cut, encoding="utf-8")
    (tmp_path / "longer.txt").write_text("Harbour report with the Vellmark annex\n\n" + body + " " + " ".join(
        f"Annex line {i} lists the Vellmark berth {i} and its tug {i}." for i in range(25)), encoding="utf-8")
    report = ingestor.ingest_paths([tmp_path / "trimmed.txt", tmp_path / "longer.txt"])
    assert report.added == 1 and [s.path for s in report.skipped] == [str(tmp_path / "trimmed.txt")]
    assert "Harbour report with the Vellmark annex" in _titles(settings)


def test_signatures_stored_before_counts_still_catch_copies():
    """Archives written before the shingle count was kept hold 5-gram Jaccard signatures: still compared."""
    from assistant.text.duplicates import CopyIndex, _minhash, stable_shingles

    story = _words(120, "w")
    old = Signature(_minhash(stable_shingles(story, 5)), None)  # as ingest stored it then
    index = CopyIndex()
    index.add("old", Signature.from_meta({"minhash": __import__("json").dumps(list(old.minhash))}), {})
    assert index.copied_from(Signature.of(story))[0] == "old"
    assert index.copied_from(Signature.of(_words(120, "v"))) is None


def test_a_copy_is_caught_from_another_data_dir_and_forgotten_with_its_original(make_settings, tmp_path,
                                                                                  chroma_server):
    """Two ingest hosts on one Chroma server: the second (own data dir, no keyword index yet) finds the copy
    through the bands its index builds from the store; once the original is deleted the copy is stored."""
    host, port = chroma_server
    on_server = {"store.host": host, "store.port": port}
    first, second = Ingestor(make_settings(tmp_path / "one", **on_server)), Ingestor(make_settings(tmp_path / "two",
                                                                                                  **on_server))
    assert first.ingest_paths([ORIGINAL]).added == 1
    report = second.ingest_paths([COURIER])
    assert report.added == 0 and "near-duplicate" in report.skipped[0].reason and "Lanthorn Wire" in \
        report.skipped[0].reason
    first.delete(_load(ORIGINAL).id)
    assert second.ingest_paths([COURIER]).added == 1


def test_an_archive_with_old_signatures_still_catches_copies_at_ingest(make_settings):
    """A manifest row holding an old-kind signature (5-gram Jaccard, no shingle count) is found through its
    bands in the rebuilt keyword index, and the copy is skipped."""
    import json

    from assistant.text.duplicates import _minhash, stable_shingles

    settings = make_settings()
    ingestor = Ingestor(settings)
    original = _load(ORIGINAL)
    assert ingestor.ingest_articles([original]).added == 1
    ingestor.store.collection().update(ids=[f"{original.id}:0"], metadatas=[{
        "minhash": json.dumps(list(_minhash(stable_shingles(original.body, 5)))), "shingles": None}])
    assert ingestor.store.manifest([original.id])[original.id].get("shingles") is None
    ingestor.lexical.sync(full=True)  # what `assistant reindex` (or the schema upgrade) does
    report = ingestor.ingest_paths([GAZETTE])
    assert report.added == 0 and "near-duplicate" in report.skipped[0].reason


def test_signatures_are_those_earlier_versions_stored():
    """Stored MinHash signatures stay comparable across versions: the seed article's signature is the one
    the code of session 5 (f0dd7d5) computed, both kinds (a change of shingle hash would miss every copy)."""
    sig = Signature.of(SEED.read_text(encoding="utf-8"))
    assert sig.minhash[:6] == (7239698, 3861083, 4650810, 4813217, 3349391, 6562913) and sig.count == 399
    assert sig.legacy.minhash[:3] == (13551797, 31698688, 9143506)
