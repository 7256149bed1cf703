"""Answers that fit the question (issue #24 part 4): the question's reading, typed sentence choice, and the
refusal that names what the articles do not mention, for both engines."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answering.chain import NOT_COVERED, Assistant
from assistant.answering.question import Entity, analyse, coverage, mentions
from assistant.ingest.ingestor import Ingestor
from tests.support.answers import passage_number

TYPED = Path(__file__).parent / "data" / "typed"
ERDOGAN = "What did Erdogan say about the strikes on Iran?"


@pytest.mark.parametrize("question,kind,named,said_by,about,asks_speaker", [
    (ERDOGAN, None, [("Erdogan", "PERSON"), ("Iran", "GPE")], "Erdogan", "the strikes on Iran", False),
    ("What has Putin said about Khamenei?", None, [("Putin", "PERSON"), ("Khamenei", "PERSON")], "Putin",
     "Khamenei", False),
    ("Who condemned the strikes?", "person", [], None, None, True),
    ("Who said that BRICS is not a defence pact?", "person", [("BRICS", "GPE")], None, None, True),
    ("Who was elected president of the International Olympic Committee?", "person",
     [("International Olympic Committee", "ORG")], None, None, False),
    ("When did the Tolvar river bridge reopen?", "date", [("Tolvar", "ORG")], None, None, False),
    ("What year did the bridge close?", "date", [], None, None, False),
    ("How many workers did the repairs need?", "number", [], None, None, False),
    ("How much did the repairs cost?", "amount", [], None, None, False),
    ("Where did the ministers meet?", "place", [], None, None, False),
    ("A capsule splashed down off the coast of which state?", "place", [], None, None, False),
    ("Which company built the Tolvar river bridge?", "organisation", [], None, None, False),
    # words between "which" and its head: the head decides, the last one when two are heads
    ("Which fast-food restaurant chain added a surcharge?", "organisation", [], None, None, False),
    ("Which coastal state was struck by the storm?", "place", [], None, None, False),
    ("Which party leader resigned this week?", "person", [], None, None, False),
    ("What did the company say about the bridge?", None, [], "company", "the bridge", False),
    ("Explain the ceasefire talks", None, [], None, None, False),
])
def test_question_analysis(question, kind, named, said_by, about, asks_speaker):
    asked = analyse(question)
    assert asked.answer_type == kind
    assert [(e.text, e.label) for e in asked.named] == named
    assert (asked.said_by, asked.about, asked.asks_speaker) == (said_by, about, asks_speaker)


def test_question_analysis_reads_the_main_verb_and_yes_no():
    assert analyse("Did Russia offer Iran military help?").yes_no
    assert analyse("Did Russia offer Iran military help?").verb == "offer"
    assert analyse("Who condemned the strikes?").verb == "condemn"
    assert not analyse("Who condemned the strikes?").yes_no


def test_two_part_questions_keep_the_topic_to_its_part():
    asked = analyse("What did Peskov say about BRICS and what did Erdogan say about it?")
    assert (asked.said_by, asked.about) == ("Peskov", "BRICS")
    assert len(asked.parts) == 2
    assert asked.part_of(asked.named[0]) != asked.part_of(asked.named[-1])


@pytest.mark.parametrize("entity,text,found", [
    (Entity("Erdogan", "PERSON", 0, 7), "President Recep Tayyip Erdoğan spoke.", True),
    (Entity("Anouk Verhallen", "PERSON", 0, 15), "Verhallen directed it.", True),  # last name
    (Entity("Anouk Verhallen", "PERSON", 0, 15), "Anouk directed it.", False),
    (Entity("International Olympic Committee", "ORG", 0, 31), "the IOC said", True),  # initials
    (Entity("US", "GPE", 0, 2), "in the United States", True),
    (Entity("US", "GPE", 0, 2), "at U.S. retailers", True),
    (Entity("US", "GPE", 0, 2), "they told us", False),  # the pronoun is not the country
    (Entity("Brennick", "GPE", 0, 8), "Brennickshire farmers", False),  # whole words only
])
def test_mentions(entity, text, found):
    assert mentions(entity, text) is found


def test_coverage_refuses_a_one_part_question_and_answers_a_covered_part():
    texts = ["Peskov said BRICS is no military pact."]
    one = coverage(analyse(ERDOGAN), texts)
    assert one.refuse and one.sentence() == "The articles do not mention Erdogan."  # Iran: the setting
    two = coverage(analyse("What did Peskov say about BRICS and what did Erdogan say?"), texts)
    assert not two.refuse and [e.text for e in two.missing] == ["Erdogan"]
    assert two.sentence() == "The articles do not mention Erdogan."


def test_the_seed_alone_refuses_erdogan_and_says_so(corpus_assistant):
    answer = corpus_assistant.ask(ERDOGAN)
    assert answer.refused and answer.citations == []
    assert answer.answer.startswith("The articles do not mention Erdogan.")
    assert "The nearest articles: “Russia snubs Iran" in answer.answer  # the nearest passages, as before


def test_a_question_about_someone_the_seed_names_is_still_answered(corpus_assistant):
    answer = corpus_assistant.ask("What did Peskov say about BRICS?")
    assert not answer.refused and "do not mention" not in answer.answer
    assert any("Peskov" in c.passage for c in answer.citations)


def test_partial_coverage_answers_the_covered_part_and_names_the_missing_one(corpus_assistant):
    answer = corpus_assistant.ask("What did Peskov say about BRICS and what did Erdogan say about the strikes?")
    assert not answer.refused and answer.citations
    assert answer.answer.endswith("The articles do not mention Erdogan.")
    assert "BRICS" in answer.citations[0].quote
    assert "only part of the question" in (answer.notice or "")


@pytest.fixture(scope="module")
def typed_assistant(tmp_path_factory):
    from assistant.config import load_settings

    settings = load_settings(data_dir=str(tmp_path_factory.mktemp("typed")))
    assert Ingestor(settings).ingest_paths([TYPED]).added == 1
    return Assistant(settings)


@pytest.mark.parametrize("question,answer_text,repeat", [
    ("When did the Tolvar river bridge reopen?", "14 March 2025", "long asked when"),
    ("How many workers did the repairs of the Tolvar river bridge need?", "340", "wondered how many"),
    ("Who led the repairs of the Tolvar river bridge?", "Anouk Verhallen", "often asked who"),
])
def test_a_sentence_with_the_typed_answer_beats_one_repeating_the_question(typed_assistant, question,
                                                                            answer_text, repeat):
    passages = typed_assistant.retriever.retrieve(question).passages
    picks = typed_assistant.extractive.select(question, passages)
    order = [p.text for p in picks]
    first_answer = next(i for i, t in enumerate(order) if answer_text in t)
    first_repeat = next((i for i, t in enumerate(order) if repeat in t), len(order))
    assert first_answer < first_repeat, order
    assert answer_text in typed_assistant.ask(question).answer


def test_generative_reply_citing_passages_that_do_not_name_the_speaker_is_refused(chat_assistant, llm):
    assistant = chat_assistant(**{"answer.min_confidence": 0.0})  # the model is asked, whatever the match
    question = "How did Peskov react to the killing of Khamenei?"  # not a speech question (speech.py)
    n = passage_number(assistant, question, "Khamenei")
    assert "Peskov" not in assistant.retriever.retrieve(question).passages[n - 1].text
    llm.enqueue(f"Peskov said Moscow mourned Ayatollah Ali Khamenei [{n}].")
    answer = assistant.ask(question)
    assert answer.refused and answer.citations == []
    assert answer.answer.startswith("The passages this answer cites do not mention Peskov.")
    assert NOT_COVERED in answer.answer


def test_generative_engine_is_not_asked_when_the_articles_do_not_name_the_person(chat_assistant, llm):
    assistant = chat_assistant()
    answer = assistant.ask(ERDOGAN)
    assert llm.history == []  # refused before any model call: it cannot answer from memory
    assert answer.refused and answer.answer.startswith("The articles do not mention Erdogan.")


def test_generative_sentence_naming_an_entity_its_source_lacks_is_unsupported(chat_assistant, llm):
    assistant = chat_assistant()
    question = "How did Peskov and Putin react to the strikes?"
    peskov = passage_number(assistant, question, "Peskov told reporters")
    putin = passage_number(assistant, question, "Putin said in a telegram")
    llm.enqueue(f"Membership in BRICS does not imply an obligation to provide mutual assistance, Peskov said "
                f"[{peskov}]. Peskov and Putin sent condolences over the assassination [{putin}].")
    assert "Peskov" not in assistant.retriever.retrieve(question).passages[putin - 1].text
    answer = assistant.ask(question)
    assert not answer.refused
    assert any(s.startswith("Peskov and Putin sent condolences") for s in answer.unsupported)
