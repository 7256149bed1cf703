"""The citation check: one sentence splitter (decimals, abbreviations, initials, quotes) and whole numbers."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.answering.citations import anchors, check_support, cite, has_number, names
from assistant.models import Passage
from assistant.text.sentences import sentences

BODY = ("Engineers in Port Avalon said the 2.4-kilometre bridge had cost 1.8 billion. Traffic rose 12.9 percent "
        "in its first month, the U.S. firm that built it said at 9 a.m. on Monday. The works office at No. 10 "
        "Quay Street, run by J. R. Tolk, agreed. “We are done,” Tolk said. Then the crews left.")


def _passage(body: str = BODY) -> Passage:
    from assistant.text.sentences import split_sentences

    return Passage(chunk_id="a:0", article_id="a", text=body, start=0, end=len(body), title="Bridge opens",
                   source="Harbour Times", published_at="2025-03-06", url="https://harbour.example/bridge",
                   sentences=split_sentences(body))


def same_meaning(texts: list[str]) -> np.ndarray:
    """Every text the same unit vector: isolates the name and number checks from the embedder."""
    return np.ones((len(texts), 4)) / 2.0


@pytest.mark.parametrize("text,expected", [
    ("the 2.4-kilometre bridge had cost 1.8 billion. It opened.",
     ["the 2.4-kilometre bridge had cost 1.8 billion.", "It opened."]),
    ("The U.S. firm said so. It left.", ["The U.S. firm said so.", "It left."]),
    ("It opened at 9 a.m. on Monday. Crowds came.", ["It opened at 9 a.m. on Monday.", "Crowds came."]),
    ("He works at No. 10 Quay Street. It is old.", ["He works at No. 10 Quay Street.", "It is old."]),
    ("Run by J. R. Tolk since May. Fine.", ["Run by J. R. Tolk since May.", "Fine."]),
    ("“We are done,” Tolk said. “Go home.” Then they left.", ["“We are done,” Tolk said.", "“Go home.”",
                                                             "Then they left."]),
])
def test_one_splitter_keeps_decimals_abbreviations_initials_and_quotes(text, expected):
    assert sentences(text) == expected


@pytest.mark.parametrize("claim,stated", [("12.5", "rose 12.5 percent"), ("1.8 billion", "cost 1.8 billion"),
                                          ("12.5 percent", "rose 12.5%"), ("1800", "1,800 people")])
def test_numbers_match_as_whole_values(claim, stated):
    [key] = anchors(f"It was {claim} then")[1]
    assert has_number(stated, key)


@pytest.mark.parametrize("claim,stated", [("12.5", "rose 12.9 percent"), ("12", "rose 12.9 percent"),
                                          ("1.8 billion", "cost 1.8 million"), ("2.4", "a 2.45 km bridge")])
def test_numbers_never_match_part_of_another_value(claim, stated):
    [key] = anchors(f"It was {claim} then")[1]
    assert not has_number(stated, key)


def test_a_verbatim_quote_with_decimals_is_supported_by_construction():
    p = _passage()
    cited = cite("Engineers in Port Avalon said the 2.4-kilometre bridge had cost 1.8 billion. [1]", [p])
    support = check_support(cited, embed=lambda texts: pytest.fail("a verbatim quote needs no embedding"))
    assert support.unsupported == [] and support.score == 1.0
    assert cited.citations[0].supported is True


def test_every_sentence_of_a_verbatim_extractive_answer_is_supported():
    p = _passage()
    picks = sentences(BODY)
    text = " ".join(f"{s} [1]" for s in picks)
    support = check_support(cite(text, [p]), embed=same_meaning)
    assert [s for s, _, _ in support.sentences] == picks  # one item per sentence: none cut at a decimal
    assert support.unsupported == [] and support.score == 1.0


def test_a_wrong_figure_is_flagged_even_when_its_digits_appear_in_another_number():
    p = _passage()
    cited = cite("Traffic rose 12.5 percent in the bridge's first month [1].", [p])
    support = check_support(cited, embed=same_meaning)  # same meaning: only the number can fail it
    assert support.unsupported == ["Traffic rose 12.5 percent in the bridge's first month"]
    assert cited.citations[0].supported is False


def test_a_right_figure_in_a_paraphrase_is_supported():
    p = _passage()
    cited = cite("Traffic went up 12.9 percent in the first month [1].", [p])
    support = check_support(cited, embed=same_meaning)
    assert support.unsupported == [] and cited.citations[0].supported is True


@pytest.mark.parametrize("text,expected", [
    ("Engineers in Port Avalon met Tolk.", ["Port", "Avalon", "Tolk"]),  # the opening word is no name
    ("The U.S. firm and DE.CO staff in Tehran’s office.", ["U.S", "DE.CO", "Tehran’s"]),
    ("It rained. Then Tolk left! Why did Vellmark stay?", ["Tolk", "Vellmark"]),  # 'Then', 'Why' open sentences
    ("“Membership in Norrheim is no pact,” Marrow said.", ["Norrheim", "Marrow"]),  # after an opening quote
    ("a (Quay Street) office", ["Quay", "Street"]),
])
def test_names_are_capitalised_words_that_do_not_open_a_sentence(text, expected):
    assert names(text) == expected


def test_the_engine_the_citation_check_and_the_eval_share_one_name_definition():
    from assistant.answering.engines.extractive import has_answer_type
    from assistant.eval.metrics import key_tokens

    s = "Crews from the U.S. met Tolk in Port Avalon. Then 12 left."
    assert anchors(s)[0] == {"u.s", "tolk", "port", "avalon"}
    assert key_tokens(s) == anchors(s)[0] | {"12"}
    assert has_answer_type("name", s, {"tolk", "port", "avalon"})  # 'U.S' is a name the question lacks
    assert not has_answer_type("name", "Then it was Tolk again.", {"tolk"})
