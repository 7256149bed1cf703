"""Reliability matrix, row 2: the same article twice, and one wire story under several outlets (docs/reliability.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

from assistant.chain import Assistant
from assistant.ingest import Ingestor
from assistant.retrieval import normalized
from assistant.store import Store

WIRE = Path(__file__).parent / "data" / "reliability" / "wire"
QUESTION = "Did Russia offer Iran military help?"


def _titles(settings) -> list[str]:
    return sorted(m["title"] for m in Store(settings).manifest().values())


def _assert_cited_once(answer) -> None:
    """No passage text is cited from two articles, and at most one of the wire copies is cited."""
    by_quote: dict[str, set[str]] = {}
    for c in answer.citations:
        by_quote.setdefault(normalized(c.quote), set()).add(c.article_id)
    assert all(len(ids) == 1 for ids in by_quote.values()), by_quote
    wire_sources = {c.source for c in answer.citations} & {"Reuters Wire", "Daily Courier", "Evening Gazette"}
    assert len(wire_sources) <= 1, wire_sources


def test_same_article_twice_in_one_run_is_stored_once(tmp_path, make_settings):
    folder = tmp_path / "in"
    (folder / "copy").mkdir(parents=True)
    shutil.copy(WIRE / "reuters.md", folder / "reuters.md")
    shutil.copy(WIRE / "reuters.md", folder / "copy" / "reuters-again.md")
    settings = make_settings()
    report = Ingestor(settings).ingest_paths([folder])
    assert report.added == 1
    [skip] = report.skipped
    # folders are read in sorted order: copy/ comes first, so the top-level file is the duplicate
    assert (skip.path, skip.reason) == (str(folder / "reuters.md"),
                                        f"duplicate of {folder / 'copy' / 'reuters-again.md'}")
    assert Store(settings).stats()["articles"] == 1


def test_wire_story_under_three_outlets_is_stored_once_and_cited_once(make_settings):
    settings = make_settings()
    ingestor = Ingestor(settings)
    report = ingestor.ingest_paths([WIRE / "reuters.md", WIRE / "china-calls-for-ceasefire.md", WIRE / "courier.md"])
    assert report.added == 2
    [skip] = report.skipped  # different title, source, dateline, byline and footer: still the same story
    assert skip.path.endswith("courier.md")
    assert "near-duplicate" in skip.reason and "Russia snubs Iran as Kremlin refuses military help" in skip.reason
    assert "Reuters Wire" in skip.reason

    # a later run brings a third copy: caught against the stored signature
    later = ingestor.ingest_paths([WIRE / "gazette.txt"])
    assert later.added == 0 and "near-duplicate" in later.skipped[0].reason
    assert _titles(settings) == ["China calls for ceasefire in Middle East, offers to mediate",
                                 "Russia snubs Iran as Kremlin refuses military help"]

    answer = Assistant(settings).ask(QUESTION)
    assert not answer.refused and answer.citations
    _assert_cited_once(answer)


def test_editing_a_stored_article_is_not_taken_for_a_copy_of_itself(tmp_path, make_settings):
    src = tmp_path / "reuters.md"
    shutil.copy(WIRE / "reuters.md", src)
    settings = make_settings()
    ingestor = Ingestor(settings)
    assert ingestor.ingest_paths([src]).added == 1
    src.write_text(src.read_text().replace("Smagin", "Smagin, of the Carnegie Endowment,"))
    report = ingestor.ingest_paths([src])
    assert (report.updated, report.skipped) == (1, [])


def test_with_ingest_dedupe_off_copies_are_still_cited_once(make_settings):
    """Stored twice (near_duplicate = 0): query-time collapsing must keep one copy per passage."""
    settings = make_settings(**{"ingest.near_duplicate": 0})
    report = Ingestor(settings).ingest_paths([WIRE / "reuters.md", WIRE / "gazette.txt",
                                              WIRE / "china-calls-for-ceasefire.md"])
    assert report.added == 3 and not report.skipped
    answer = Assistant(settings).ask(QUESTION)
    assert not answer.refused
    _assert_cited_once(answer)
