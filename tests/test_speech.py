"""Who said what in answers (issue 24 part 3): "What did X say about Y?" answered from X's stored quotes only,
newest first, each cited with its speaker; a refusal that says whether X is not mentioned, not quoted, or not
quoted about Y. The articles are the fictional ones of tests/data/quotes/ (dated, invented outlets) plus one
written here; the seed article's own figures are asked about as it states them."""

from __future__ import annotations

import pytest

from assistant.answering.chain import Assistant
from assistant.answering.question import analyse
from assistant.ingest.ingestor import Ingestor
from assistant.models import Article
from tests.support.paths import ROOT
from tests.support.quotes import dated_articles

NOT_QUOTED = Article(title="Tolvar harbour reopens", source="Tolvar Ledger", published_at="2025-04-02",
                     url="https://tolvar.example/harbour",
                     body="Harbour master Ida Brenn watched the first ferry leave on Tuesday.\n\n"
                          "The harbour had been closed for repairs since January, the port authority said.")


# the engineer of tests/data/quotes/vellmar-bridge.txt again, a month later and in another outlet
LATER = Article(title="Vellmar bridge work starts", source="Sell Valley Times", published_at="2025-04-20",
                url="https://sell-valley.example/bridge",
                body="Crews began work on the Vellmar bridge piers on Monday, a month after the council closed it.\n\n"
                     "\"The repairs are on schedule and the first pier is already braced,\" city engineer Hanna "
                     "Ostrow said at the site.\n\nTraffic will keep using the ferry until the autumn.")


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    from assistant.config import load_settings

    settings = load_settings(data_dir=str(tmp_path_factory.mktemp("speech")))
    articles = dated_articles()
    a = Assistant(settings)
    Ingestor(settings, a.archive).ingest_articles([*articles, LATER, NOT_QUOTED])
    return a


def test_what_someone_said_is_answered_from_their_quotes_only_newest_first(assistant):
    answer = assistant.ask("What did Ostrow say about the repairs?")
    assert not answer.refused, answer.answer
    assert answer.citations and {c.speaker for c in answer.citations} == {"Hanna Ostrow"}
    # the answer's lines are the cited quotes themselves, verbatim, each after its speaker
    for c in answer.citations:
        assert f"Hanna Ostrow ({c.published_at}, {c.source}): {' '.join(c.quote.split())} [{c.n}]" in answer.answer
    days = [c.published_at for c in answer.citations]
    assert days == sorted(days, reverse=True) and days[0] == "2025-04-20"
    assert all("repair" in c.quote for c in answer.citations)
    assert "Fenn" not in answer.answer  # the mayor's words are not the engineer's


def test_a_question_about_another_speaker_never_shows_a_sentence_about_them_as_their_words(assistant):
    answer = assistant.ask("What did Mayor Lukas Fenn say about the closure?")
    assert not answer.refused, answer.answer
    assert {c.speaker for c in answer.citations} == {"Lukas Fenn"}
    assert all("Safety comes first" in c.quote for c in answer.citations)


def test_the_surfaces_date_and_outlet_filters_hold_for_quotes(assistant):
    answer = assistant.ask("What did Ostrow say about the repairs?", filters={"date_to": "2025-03-31"})
    assert answer.citations and all(c.published_at <= "2025-03-31" for c in answer.citations)
    answer = assistant.ask("What did Ostrow say about the repairs?", filters={"sources": ["Sell Valley Times"]})
    assert answer.citations and {c.source for c in answer.citations} == {"Sell Valley Times"}


def test_a_speaker_quoted_on_other_things_is_refused_naming_the_topic(assistant):
    answer = assistant.ask("What did Fenn say about the cracks?")
    assert answer.refused and answer.citations == []
    assert answer.answer.startswith("The articles quote Fenn, but not about the cracks.")


def test_a_person_mentioned_but_never_quoted_is_refused_as_not_quoted(assistant):
    answer = assistant.ask("What did Ida Brenn say about the ferry?")
    assert answer.refused
    assert answer.answer.startswith("The articles do not quote Ida Brenn.")
    assert "Tolvar harbour reopens" in answer.answer  # the nearest article is shown


def test_a_person_the_archive_never_names_is_refused_as_not_mentioned(assistant):
    answer = assistant.ask("What did Marta Quillon say about the bridge?")
    assert answer.refused and answer.answer.startswith("The articles do not mention Marta Quillon.")


def test_the_seed_answers_what_its_speakers_said_with_their_names(tmp_path):
    from assistant.config import load_settings

    settings = load_settings(data_dir=str(tmp_path / "seed"))
    a = Assistant(settings)
    Ingestor(settings, a.archive).ingest_paths([ROOT / "corpus"])
    answer = a.ask("What did Peskov say about BRICS?")
    assert not answer.refused and {c.speaker for c in answer.citations} == {"Dmitry Peskov"}
    assert any("Membership in BRICS does not imply an obligation" in c.quote for c in answer.citations)
    answer = a.ask("What has Putin said about Khamenei?")
    assert not answer.refused and {c.speaker for c in answer.citations} == {"Vladimir Putin"}
    assert "condolences" in answer.citations[0].quote


def test_who_said_something_names_the_speaker_of_the_matching_quote(assistant):
    answer = assistant.ask("Who said the repairs would cost about four million crowns?")
    assert not answer.refused
    assert answer.answer.startswith("Hanna Ostrow (") and answer.citations[0].speaker == "Hanna Ostrow"
    assert "four million crowns" in answer.citations[0].quote


def test_which_company_questions_are_not_read_as_asking_for_a_speaker(assistant):
    assert analyse("Which body said the old bridge would stay closed?").asks_speaker  # read as about speech...
    # ...but the ordinary engine answers: the reply is article sentences, not "Speaker (date, outlet): ..." lines
    answer = assistant.ask("Which body said the old bridge would stay closed until next autumn?")
    assert not answer.refused and "Vellmar city council said" in answer.answer
    assert not any(answer.answer.startswith(f"{c.speaker} (") for c in answer.citations if c.speaker)


def test_no_claim_that_a_person_is_not_quoted_while_older_articles_await_reindex(assistant, monkeypatch):
    from assistant.index import quotebook
    from assistant.text.quotes import EXTRACTOR_VERSION

    monkeypatch.setattr(quotebook, "extractor_version", lambda: EXTRACTOR_VERSION + 1)  # an upgrade, no reindex
    upgraded = Assistant(assistant.settings)  # a new process's view of the same archive
    assert upgraded.archive.quotes.unread() > 0
    answer = upgraded.ask("What did Ida Brenn say about the ferry?")
    assert "do not quote" not in answer.answer  # the older articles may quote her: no such claim
