"""Eval metric functions against hand-computed values, on data of the test's own."""

from __future__ import annotations

import pytest

from assistant.eval.dataset import Query
from assistant.eval.metrics import (
    QueryResult,
    citation_precision,
    contains_answer,
    distribution,
    first_hit_rank,
    hits_at,
    is_hit,
    normalize,
    percentile,
    reciprocal_rank,
    summarize,
)
from assistant.models import Answer, Citation

URL_A, URL_B, URL_X = "https://a.example/1", "https://b.example/2", "https://x.example/9"


def q(answers, urls=(URL_A,), qtype="current_affairs"):
    return Query("question?", list(answers), qtype, "2025-01-10", list(urls))


def doc(url, text):
    return {"url": url, "title": "t", "text": text, "score": 0.0, "urls": [url]}


def test_normalize_straightens_curly_quotes_and_whitespace():
    assert normalize("  O’Brien  said\n“no”\u00a0again ") == "o'brien said \"no\" again"
    assert contains_answer("Officials met with Sean O’Brien on Monday", ["sean o'brien"])
    assert not contains_answer("Officials met on Monday", ["O'Brien"])


def test_hit_needs_evidence_url_and_answer():
    query = q(["Port Avalon"], [URL_A, URL_B])
    assert is_hit([URL_B], "the city of PORT  avalon opened", query)
    assert not is_hit([URL_X], "the city of Port Avalon opened", query)  # right text, wrong article
    assert not is_hit([URL_A], "the city opened a bridge", query)  # right article, no answer
    assert is_hit([URL_X, URL_A], "Port Avalon", query)  # a collapsed copy counts with each url


def test_rank_metrics_by_hand():
    assert first_hit_rank([False, False, True, True]) == 3
    assert first_hit_rank([False] * 5) is None
    assert (hits_at(3, 1), hits_at(3, 4), hits_at(3, 10)) == (0.0, 1.0, 1.0)
    assert reciprocal_rank(4) == pytest.approx(0.25)
    assert reciprocal_rank(11) == 0.0 and reciprocal_rank(None) == 0.0


def test_summary_by_hand():
    answerable1 = QueryResult(q(["Norland"]), [doc(URL_X, "Norland"), doc(URL_A, "in Norland")],
                              Answer("Norland voted [1].", False, []), 0.01, 0.8)  # first hit at rank 2
    answerable2 = QueryResult(q(["21"]), [doc(URL_A, "it returned 21 statues")],
                              Answer("It returned 21 statues [1].", False, []), 0.02, 0.7)  # rank 1
    answerable3 = QueryResult(q(["Chebet"]), [doc(URL_A, "the race")] * 12, Answer("no", True), 0.03, 0.2)
    null1 = QueryResult(q([], [], "null_query"), [doc(URL_X, "x")], Answer("not covered", True), 0.01, 0.1)
    null2 = QueryResult(q([], [], "null_query"), [doc(URL_X, "x")], Answer("Maybe [1].", False), 0.01, 0.5)
    s = summarize([answerable1, answerable2, answerable3, null1, null2], 2.0)
    assert s["hits@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["hits@4"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["mrr@10"] == pytest.approx((0.5 + 1.0 + 0.0) / 3, abs=1e-4)
    assert s["article_hit@10"] == pytest.approx(1.0)
    assert s["answer_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["false_refusal_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["refusal_rate"] == pytest.approx(0.5)
    assert s["queries"] == 5 and s["seconds"] == 2.0
    assert s["by_type"]["null_query"]["hits@1"] is None
    assert s["by_type"]["null_query"]["refusal_rate"] == pytest.approx(0.5)
    assert s["by_type"]["current_affairs"]["hits@4"] == pytest.approx(2 / 3, abs=1e-4)


def _cit(n, quote, passage):
    return Citation(n=n, article_id="a", title="t", source=None, published_at=None, url=None, quote=quote,
                    start=0, end=len(quote), passage=passage)


def test_citation_precision_verbatim_and_lexical():
    passage = "The city opened the Meridian Bridge on Monday. It cost $1.2 billion."
    answer = Answer(
        "The city opened the Meridian Bridge on Monday. [1] The bridge cost Port Avalon 1.2 billion dollars. [1]"
        " Mayor Ruiz called it historic. [2] An uncited claim.",
        False, [_cit(1, "It cost $1.2 billion.", passage), _cit(2, "Ruiz cut the ribbon.", "Ruiz cut the ribbon.")])
    # 1: verbatim in passage -> supported; 2: names Port Avalon missing from the quote (1 of 3 keys) -> not;
    # 3: key "Ruiz" present -> supported ("Mayor" opens the sentence); 4: no citation -> not.
    assert citation_precision(answer) == (2, 4)
    assert citation_precision(Answer("not covered", True)) == (0, 0)


def test_percentile_and_distribution():
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert percentile(values, 95) == 1.0
    assert percentile(values, 50) == 0.5
    d = distribution(values)
    assert d["n"] == 10 and d["min"] == 0.1 and d["max"] == 1.0 and d["median"] == pytest.approx(0.55)
