"""The extractive engine on real retrieval: answering sentences, attribution, several articles, follow-ups."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.chain import Assistant
from assistant.config import load_settings
from assistant.engines.extractive import answer_type, stem
from assistant.ingest import Ingestor
from tests.conftest import CORPUS

QUESTION = "Did Russia offer Iran military help?"
ANSWERS = Path(__file__).parent / "data" / "answers"


def quoted_from_articles(answer, assistant: Assistant) -> None:
    """Every citation quotes its article verbatim at the recorded span, and each [n] appears in the text."""
    for c in answer.citations:
        assert f"[{c.n}]" in answer.answer
        assert c.quote in c.passage and c.quote.strip() == c.quote
        assert c.quote in answer.answer  # the extractive answer is the quotes themselves


def test_seed_question_states_the_refusal_and_the_diplomatic_condemnation(corpus_assistant):
    answer = corpus_assistant.ask(QUESTION)
    assert not answer.refused
    text = answer.answer
    assert "will not intervene militarily" in text or "BRICS is not a military alliance" in text, text
    assert "diplomatic condemnation" in text, text
    sentences = [s for s in text.split("] ") if s.strip()]
    assert 1 <= len(answer.citations) <= 5 and len(sentences) <= 5
    quoted_from_articles(answer, corpus_assistant)
    assert answer.support is not None and answer.support > 0.9 and answer.unsupported == []
    assert all(c.supported for c in answer.citations)


def test_follow_up_carries_the_previous_topic(corpus_assistant):
    first = corpus_assistant.ask(QUESTION)
    answer = corpus_assistant.ask("And China?", [(QUESTION, first.answer)])
    assert not answer.refused
    assert answer.citations[0].title.startswith("China calls for ceasefire")
    assert "China" in answer.answer.split("[1]")[0]
    assert "military support" in answer.answer  # the China article's answer to the carried-over topic
    quoted_from_articles(answer, corpus_assistant)


@pytest.fixture(scope="module")
def two_banks(tmp_path_factory, corpus_assistant):
    data_dir = tmp_path_factory.mktemp("answers-store")
    settings = load_settings(data_dir=str(data_dir))
    report = Ingestor(settings).ingest_paths([CORPUS, ANSWERS])
    assert report.added == 4 and not report.failed
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


def test_near_duplicate_sentences_are_quoted_once(tmp_path, make_settings):
    body = (CORPUS / "russia-snubs-iran.md").read_text(encoding="utf-8")
    copy = body.replace("source: Newsroom Wire", "source: Syndicate Daily").replace(
        "url: https://newsroom.example/world/2025/06/24/russia-snubs-iran-kremlin-refuses-military-help",
        "url: https://syndicate.example/russia-iran")
    (tmp_path / "copy.md").write_text(copy, encoding="utf-8")
    settings = make_settings()
    Ingestor(settings).ingest_paths([CORPUS, tmp_path / "copy.md"])
    answer = Assistant(settings).ask(QUESTION)
    quotes = [c.quote for c in answer.citations]
    assert len(quotes) == len(set(quotes)) >= 2


@pytest.mark.parametrize("question,kind", [
    ("How many people died in the fire?", "number"), ("When did the strike begin?", "date"),
    ("Which chain ended its restroom policy?", "name"), ("Did Russia offer Iran help?", "stance"),
    ("Explain the ceasefire talks", None),
])
def test_answer_type_of_a_question(question, kind):
    assert answer_type(question) == kind


def test_stem_meets_word_forms():
    assert stem("military") == stem("militarily") and stem("offer") == stem("offered")
    assert stem("2025") == "2025"


def test_sentence_pool_embeds_only_the_best_worded_sentences(corpus_assistant):
    """With a pool, the engine embeds the question plus at most `pool` sentences, and the seed answer holds."""
    from assistant.engines.extractive import ExtractiveEngine

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
    assert "will not intervene militarily" in text or "BRICS is not a military alliance" in text, text


def test_sentence_floor_sets_how_far_below_the_best_a_sentence_may_score(corpus_assistant):
    """answer.sentence_floor reaches the engine: a floor of 1 keeps only the best sentence, a low one more."""
    from assistant.engines import get_engine

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
    texts = ["Peskov spoke on Tuesday.", "BRICS is not a military alliance.", "Peskov spoke on Tuesday."]
    np.testing.assert_allclose(emb.embed_memo(texts), emb.embed(texts), atol=1e-6)
    assert "BRICS is not a military alliance." in emb._memo
    old = emb.MEMO_SIZE
    try:
        emb.MEMO_SIZE = 2
        emb.embed_memo(["one more sentence here", "and another one"])
        assert len(emb._memo) == 2 and "Peskov spoke on Tuesday." not in emb._memo
    finally:
        emb.MEMO_SIZE = old
