"""The extractive engine on real retrieval: answering sentences, attribution, several articles, follow-ups."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answering.chain import Assistant
from assistant.answering.question import analyse
from assistant.config import load_settings
from assistant.ingest.ingestor import Ingestor
from assistant.ingest.loaders import load_file
from assistant.text.words import stem
from tests.support.paths import CORPUS, SEED

QUESTION = "Did Russia offer Iran military help?"
DATA = Path(__file__).parent / "data"
ANSWERS = DATA / "answers"
FOLLOWUPS = DATA / "followups"
WIRE = DATA / "reliability" / "wire"


def quoted_from_articles(answer, assistant: Assistant) -> None:
    """Every citation quotes its article verbatim at the recorded span, and each [n] appears in the text."""
    for c in answer.citations:
        assert f"[{c.n}]" in answer.answer
        assert c.quote in c.passage and c.quote.strip() == c.quote
        assert " ".join(c.quote.split()) in answer.answer  # the extractive answer is the quotes themselves


def cited(answer, text: str) -> list:
    return [c for c in answer.citations if text in c.quote]


def test_seed_question_is_answered_from_the_real_seed_with_the_three_points(corpus_assistant):
    answer = corpus_assistant.ask(QUESTION)
    assert not answer.refused and answer.notice is None, answer.notice
    text = answer.answer
    # Moscow will not intervene militarily; Peskov's BRICS statement; no concrete support beyond condemnation
    assert "Moscow has made clear it will not intervene militarily on Iran’s behalf" in text, text
    assert "Membership in BRICS does not imply an obligation to provide mutual assistance" in text, text
    assert "beyond diplomatic condemnation, no concrete support has been offered" in text, text
    [brics] = cited(answer, "Membership in BRICS does not imply")
    assert brics.quote.startswith("“Membership") and "Peskov told reporters" in brics.quote  # quote and speaker
    assert 1 <= len(answer.citations) <= 5
    quoted_from_articles(answer, corpus_assistant)
    [seed], _ = load_file(SEED)
    body = seed.body
    for c in answer.citations:
        assert body[c.start:c.end] == c.quote  # offsets into the body, the file's first line being the title
    assert answer.support == 1.0 and answer.unsupported == []  # verbatim quotes: supported by construction
    assert all(c.supported for c in answer.citations)


def test_what_peskov_said_about_brics_is_quoted_with_his_attribution(corpus_assistant):
    answer = corpus_assistant.ask("What did Peskov say about BRICS?")
    assert not answer.refused
    quotes = [c.quote for c in answer.citations]
    assert any(q.startswith("“Membership in BRICS") and "Peskov told reporters" in q for q in quotes), quotes
    assert any("Kremlin spokesman Dmitry Peskov said on Monday" in q for q in quotes), quotes
    quoted_from_articles(answer, corpus_assistant)


@pytest.mark.parametrize("question", ["What did the Pope say about the Brazilian election?",
                                      "Who won the 2022 World Cup?"])
def test_questions_the_seed_does_not_cover_are_refused(corpus_assistant, question):
    answer = corpus_assistant.ask(question)
    assert answer.refused and answer.citations == []
    # the nearest article is named without the metadata the seed does not state: no "()", no "None"
    assert answer.answer.endswith("The nearest articles: “Russia snubs Iran as Kremlin refuses military help: "
                                  "“BRICS is not a mutual defense pact””.")
    assert "()" not in answer.answer and "None" not in answer.answer


def test_follow_up_about_china_brings_the_joint_condemnation(corpus_assistant):
    first = corpus_assistant.ask(QUESTION)
    answer = corpus_assistant.ask("And China?", [(QUESTION, first.answer)])
    assert not answer.refused
    assert cited(answer, "Russian Foreign Minister Sergei Lavrov and Chinese Foreign Minister Wang Yi condemned"), \
        answer.answer
    quoted_from_articles(answer, corpus_assistant)


@pytest.fixture(scope="module")
def two_stories(tmp_path_factory):
    """Two fictional stories from one region: herring quotas in Norrheim, a library in Durnholt."""
    settings = load_settings(data_dir=str(tmp_path_factory.mktemp("follow-ups")))
    report = Ingestor(settings).ingest_paths([FOLLOWUPS])
    assert report.added == 2 and not report.failed
    return Assistant(settings)


def test_follow_up_whose_own_words_find_nothing_is_refused_not_answered_with_the_previous_story(two_stories):
    first_q = "Why did Norrheim cut the herring quota?"
    first = two_stories.ask(first_q)
    assert not first.refused and "18 percent" in first.answer
    alone = two_stories.ask("What is the capital of Norrheim?")
    assert alone.refused  # on its own: nothing in the archive says
    follow = two_stories.ask("What is the capital of Norrheim?", [(first_q, first.answer)])
    assert follow.refused and follow.citations == [], follow.answer
    # the carried topic still helps a follow-up whose own words are there
    skippers = two_stories.ask("And the skippers?", [(first_q, first.answer)])
    assert not skippers.refused and "Vellmark" in skippers.answer, skippers.answer


def test_a_short_question_about_a_code_is_answered_on_a_small_archive(make_settings):
    """A clause number and a name are what journalists ask about: the refusal score must not sink because a
    small archive makes every other word of the question rare (issue #13: "Who wrote clause 6305?")."""
    settings = make_settings()
    report = Ingestor(settings).ingest_paths([ANSWERS, FOLLOWUPS, DATA / "codes", WIRE / "vellmark-coastguard.md"])
    assert report.added == 6 and not report.failed
    answer = Assistant(settings).ask("Who wrote clause 6305?")
    assert not answer.refused, answer.answer
    assert "Clause 6305" in answer.answer and "Hedda Lunn" in answer.answer
    assert Assistant(settings).ask("Who wrote clause 7110?").refused  # a code the archive does not hold


@pytest.fixture(scope="module")
def two_banks(tmp_path_factory, corpus_assistant):
    data_dir = tmp_path_factory.mktemp("answers-store")
    settings = load_settings(data_dir=str(data_dir))
    report = Ingestor(settings).ingest_paths([CORPUS, ANSWERS])
    assert report.added == 3 and not report.failed
    return Assistant(settings)


def test_answer_spanning_two_articles_quotes_both(two_banks):
    answer = two_banks.ask("What did the Northvale and Southmere central banks decide about interest rates?")
    assert not answer.refused
    titles = {c.title for c in answer.citations}
    assert "Northvale central bank raises rates to fight inflation" in titles
    assert "Southmere holds rates steady as growth slows" in titles
    assert "4.5 percent" in answer.answer and "unchanged at 3 percent" in answer.answer
    quoted_from_articles(answer, two_banks)


def test_quote_keeps_its_speaker(two_banks):
    answer = two_banks.ask("What did the Northvale governor promise to do about inflation?")
    assert not answer.refused
    quote = next(c.quote for c in answer.citations if "whatever it takes" in c.quote or "what it takes" in c.quote)
    assert "Marrow told reporters" in quote  # the quote's attribution travels with it


def test_near_duplicate_sentences_are_quoted_once(make_settings):
    """The seed stored twice (a syndicated copy under a fictional outlet, ingest dedupe off): each sentence
    is quoted once."""
    settings = make_settings(**{"ingest.near_duplicate": 0})
    report = Ingestor(settings).ingest_paths([CORPUS, WIRE / "lanthorn-wire.md"])
    assert report.added == 2
    answer = Assistant(settings).ask(QUESTION)
    quotes = [" ".join(c.quote.split()) for c in answer.citations]
    assert len(quotes) == len(set(quotes)) >= 2


@pytest.mark.parametrize("question,kind,yes_no", [
    ("How many people died in the fire?", "number", False), ("When did the strike begin?", "date", False),
    ("Which chain ended its restroom policy?", "organisation", False), ("Did Russia offer Iran help?", None, True),
    ("Explain the ceasefire talks", None, False),
])
def test_answer_type_of_a_question(question, kind, yes_no):
    # One place decides the type now (assistant/answering/question.py); "which chain" asks for an organisation.
    asked = analyse(question)
    assert (asked.answer_type, asked.yes_no) == (kind, yes_no)


def test_stem_meets_word_forms():
    assert stem("military") == stem("militarily") and stem("offer") == stem("offered")
    assert stem("china") == stem("chinese") and stem("ukraine") == stem("ukrainian") and stem("iran") == stem("iranian")
    assert stem("2025") == "2025" and stem("ocean") != stem("oc")


def test_sentence_pool_embeds_only_the_best_worded_sentences(corpus_assistant):
    """With a pool, the engine embeds the question plus at most `pool` sentences, and the seed answer holds."""
    from assistant.answering.engines.extractive import ExtractiveEngine

    embedded: list[int] = []

    def counting_embed(texts):
        embedded.append(len(texts))
        return corpus_assistant.store.embedder.embed(texts)

    retrieval = corpus_assistant.retriever.retrieve(QUESTION)
    everything = ExtractiveEngine(counting_embed, 4, pool=0)
    everything.select(QUESTION, retrieval.passages)
    n_all = embedded[-1] - 1
    pooled = ExtractiveEngine(counting_embed, 4, pool=5)
    picks = pooled.select(QUESTION, retrieval.passages)
    assert n_all > 5 and embedded[-1] == 1 + 5
    text = " ".join(p.text for p in picks)
    assert "will not intervene militarily" in text or "Membership in BRICS" in text, text


def test_sentence_floor_sets_how_far_below_the_best_a_sentence_may_score(corpus_assistant):
    """answer.sentence_floor reaches the engine: a floor of 1 keeps only the best sentence, a low one more."""
    from assistant.answering.engines import get_engine

    retrieval = corpus_assistant.retriever.retrieve(QUESTION)
    picks = {}
    for floor in (1.0, 0.75, 0.3):
        settings = load_settings(data_dir=str(corpus_assistant.settings.data_dir),
                                 **{"answer.sentence_floor": floor, "answer.max_sentences": 5})
        engine = get_engine("extractive", settings, corpus_assistant.store.embedder.embed)
        picks[floor] = engine.select(QUESTION, retrieval.passages)
        assert all(p.score >= floor * picks[floor][0].score - 1e-9 for p in picks[floor])
    assert len(picks[1.0]) == 1
    assert len(picks[1.0]) < len(picks[0.75]) <= len(picks[0.3]) <= 5
    assert picks[0.3][0].text == picks[1.0][0].text  # the best sentence leads whatever the floor


def test_embed_memo_returns_the_embedders_vectors_and_forgets_the_oldest(corpus_assistant):
    import numpy as np

    emb = corpus_assistant.store.embedder
    texts = ["Marrow spoke on Tuesday.", "The bank raised its rate.", "Marrow spoke on Tuesday."]
    emb._memo.clear()
    np.testing.assert_allclose(emb.embed_memo(texts), emb.embed(texts, batch_size=1), atol=1e-6)
    # each text is embedded alone: its memoized vector does not depend on what it was embedded beside
    emb._memo.clear()
    beside = emb.embed_memo(["The bank raised its rate.", "A much longer sentence about herring quotas, ferries, "
                             "harbour budgets and the council's plans for the lifeboat station next spring."])[0]
    emb._memo.clear()
    np.testing.assert_array_equal(beside, emb.embed_memo(["The bank raised its rate."])[0])
    assert "The bank raised its rate." in emb._memo
    old = emb.settings
    try:
        emb.settings = old.model_copy(update={"memo_size": 2})  # embedding.memo_size
        emb.embed_memo(["one more sentence here", "and another one"])
        assert len(emb._memo) == 2 and "Marrow spoke on Tuesday." not in emb._memo
    finally:
        emb.settings = old
