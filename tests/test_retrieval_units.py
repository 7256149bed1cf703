"""Retrieval stages on small data of the test's own: fusion, time and outlet parsing, diversity, duplicates,
page furniture."""

from __future__ import annotations

from datetime import date

import pytest

from assistant.answering.retrieval import collapse_duplicates, diversify, rrf, term_coverage, window_coverage
from assistant.models import Passage
from assistant.text.cleaning import content_regions
from assistant.text.timeparse import parse_sources, parse_time_window


def passage(cid: str, article: str, text: str, url: str | None = None) -> Passage:
    return Passage(chunk_id=cid, article_id=article, text=text, start=0, end=len(text), title="", source=None,
                   published_at=None, url=url or f"https://news.example/{article}")


def test_rrf_rewards_agreement_and_respects_weights():
    dense = ["a", "b", "c"]
    lexical = ["c", "d", "a"]
    fused = rrf([dense, lexical], [1.0, 1.0], k=60)
    order = sorted(fused, key=fused.get, reverse=True)
    # a: 1/61 + 1/63, c: 1/63 + 1/61 (tie, both lists), then b (1/62) before d (1/62)? equal -> a, c first
    assert set(order[:2]) == {"a", "c"} and set(order[2:]) == {"b", "d"}
    assert fused["a"] == fused["c"] and fused["a"] > fused["b"]
    heavy_lexical = rrf([dense, lexical], [0.2, 1.0], k=60)
    assert max(heavy_lexical, key=heavy_lexical.get) == "c"
    assert heavy_lexical["d"] > heavy_lexical["b"]


def test_this_week_is_the_week_before_the_question_date():
    w = parse_time_window("Which city opened a bridge this week?", date(2025, 1, 10))
    assert w.start <= date(2025, 1, 3) and w.end == date(2025, 1, 10)
    assert w.start >= date(2024, 12, 31)
    assert parse_time_window("Which city opened a bridge?", date(2025, 1, 10)) is None


def test_weekday_and_month_windows():
    w = parse_time_window("What did the senate vote on Tuesday?", date(2025, 1, 10))  # a Friday
    assert w.start <= date(2025, 1, 7) <= w.end and w.end <= date(2025, 1, 10)
    jan = parse_time_window("What happened in January?", date(2025, 3, 2))
    assert jan.start == date(2025, 1, 1) and jan.end >= date(2025, 1, 31)
    dec = parse_time_window("What happened in December?", date(2025, 1, 10))  # the last December
    assert dec.start == date(2024, 12, 1)


def test_outlets_named_in_the_question():
    known = ["Lanthorn Wire", "Vellmark Courier", "The Fortnight"]
    assert parse_sources("According to Lanthorn Wire, who won the election?", known) == ["Lanthorn Wire"]
    assert parse_sources("Vellmark Courier reported what about the storm?", known) == ["Vellmark Courier"]
    assert parse_sources("Who won the election?", known) == []


def test_diversify_caps_passages_per_article():
    ps = [passage("a:0", "a", "x"), passage("a:1", "a", "y"), passage("a:2", "a", "z"),
          passage("b:0", "b", "w"), passage("c:0", "c", "v")]
    top = diversify(ps, 4, per_article=2)
    assert [p.chunk_id for p in top] == ["a:0", "a:1", "b:0", "c:0"]
    # too few articles: the cap gives way rather than returning fewer than k
    assert [p.chunk_id for p in diversify(ps[:3], 3, per_article=1)] == ["a:0", "a:1", "a:2"]


def test_syndicated_copies_collapse_and_keep_their_sources():
    story = ("The city of Port Avalon opened the Meridian Bridge on Monday, a 2,140-meter suspension span "
             "that engineers say is the longest in the region.")
    ps = [passage("a:0", "a", story), passage("b:0", "b", "  " + story.replace("Monday,", "Monday ,")),
          passage("c:0", "c", "Mayor Elena Ruiz cut the ribbon before about 3,000 residents on the new bridge.")]
    out = collapse_duplicates(ps, 0.8)
    assert [p.chunk_id for p in out] == ["a:0", "c:0"]
    assert [c["url"] for c in out[0].also_in] == ["https://news.example/b"]


def test_term_coverage_weighs_rare_terms_by_idf():
    terms = ["avalon", "city"]
    idf = {"avalon": 5.0, "city": 1.0}
    assert term_coverage(terms, "Avalon harbor", idf) > term_coverage(terms, "the city", idf)
    assert term_coverage(terms, "Avalon city", idf) == 1.0
    assert term_coverage([], "anything") == 0.0


def test_window_coverage_finds_the_chunk_where_the_terms_meet():
    """Two chunks of one article hold the same words; only one has them in one sentence."""
    terms = ["guild", "president", "elected"]
    together = "The vote took place in Durnholt. Maren Oskvik was elected guild president on Thursday."
    apart = "The guild met in Durnholt. Its president is chosen by members. Members elected a board in 2021."
    a, b = passage("a:0", "a", together), passage("a:1", "a", apart)
    for p in (a, b):  # sentence offsets as the chunker stores them (absolute in the body; here start == 0)
        cuts = [0] + [i + 2 for i, ch in enumerate(p.text) if ch == "." and i + 2 < len(p.text)] + [len(p.text)]
        p.sentences = list(zip(cuts, cuts[1:]))
    assert term_coverage(terms, together) == term_coverage(terms, apart) == 1.0  # whole chunk: a tie
    assert window_coverage(terms, a, width=1) == 1.0
    assert window_coverage(terms, b, width=1) < 0.5
    assert window_coverage(terms, b, width=3) == 1.0  # a window of every sentence is the whole chunk
    assert window_coverage([], a) == 0.0


def test_page_furniture_is_stripped():
    body = ("Vellmark Courier —\n"
            "The orchestra named Tomasz Wielicki its music director on Wednesday.\n"
            "Need a break? Play the Vellmark Courier Daily Crossword Puzzle.\n"
            "Related: Five conductors to watch\n"
            "He will conduct his first concert in March.\n"
            "Sign up for our daily newsletter to get the latest news in your inbox\n"
            "Jamie Holt covers culture for the Vellmark Courier. Reach him at jholt@example.com\n"
            "– Jamie Holt\n"
            "Durnholt: The town plans a new concert hall.")
    kept = "\n".join(body[s:e] for s, e in content_regions(body))
    assert "Wielicki" in kept and "first concert in March" in kept and "Durnholt: The town" in kept
    for furniture in ("Vellmark Courier —", "Crossword", "Related:", "newsletter", "Reach him", "– Jamie Holt"):
        assert furniture not in kept, furniture


def test_outlet_names_are_proper_nouns_not_phrases():
    known = ["Lanthorn Wire", "The Fortnight"]
    assert parse_sources("What did the senate pass in the fortnight before the recess?", known) == []
    assert parse_sources("Which film, according to The Fortnight, led the box office?", known) == ["The Fortnight"]
    assert parse_sources("What did Lanthorn Wire report about the fires? Lanthorn Wire said what?",
                         known) == ["Lanthorn Wire"]


@pytest.mark.subprocess
def test_the_query_path_does_not_import_ingest():
    """Data flows one way: asking (chain, retrieval) needs nothing of the ingest stage."""
    import subprocess
    import sys

    code = "import sys, assistant.answering.chain, assistant.answering.retrieval; print('assistant.ingest.ingestor' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_typo_in_a_fixed_choice_setting_is_a_one_line_config_error(tmp_path, monkeypatch):
    """`retrieval.time_mode = "bost"` used to be accepted and silently turned the date prior off."""
    from click.testing import CliRunner

    from assistant.cli import cli

    monkeypatch.setenv("ASSISTANT_RETRIEVAL__TIME_MODE", "bost")
    result = CliRunner().invoke(cli, ["stats", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: invalid setting: ('retrieval', 'time_mode'): Input should be 'boost' or 'filter' "
        "(hint: see Configuration in README.md)"]
