"""The Gradio app, served for real on a free port and asked through gradio_client."""

from __future__ import annotations

import html
import json
import re

import pytest

from assistant.models import Answer, Citation, Passage
from assistant.web.api import create_app
from assistant.web.app import _pairs, best_sentence, chat_html, citation_card, sources_html
from tests.support.net import serve_in_thread

QUESTION = "What did Peskov say about BRICS?"
SEED_TITLE = "Russia snubs Iran as Kremlin refuses military help: “BRICS is not a mutual defense pact”"
# Markup in every article field: none of it may reach the page as markup.
HOSTILE = {
    "title": '<img src="http://pixel.example/t.gif" onerror="alert(1)">Harbour <b>news</b>',
    "source": '<a href="http://evil.example">Gazette</a><script>alert(2)</script>',
    "body": 'PORT AVREL — <form action="http://evil.example"><input name=q></form> Ferries stopped. '
            '<svg onload=alert(3)>Crews walked out.',
}


def test_gradio_answers_with_sources(corpus_assistant):
    app = create_app(corpus_assistant.settings, corpus_assistant)
    with serve_in_thread(app) as url:
        from gradio_client import Client

        client = Client(f"{url}/", verbose=False)
        answer, citations = client.predict(QUESTION, api_name="/ask")
        citations = json.loads(citations)
        assert "[1]" in answer
        assert citations and citations[0]["title"] == SEED_TITLE
        assert citations[0]["quote"] in answer


def test_sources_panel_shows_each_passage_once_with_all_its_quotes(corpus_assistant):
    """Quotes from the same passage share one card: its numbers in the title, every quote highlighted."""
    answer = corpus_assistant.ask(QUESTION)
    panel = sources_html(answer, QUESTION)
    cards = re.findall(r'<div class="source-card[^"]*" data-n="([\d ]+)">(.*?)</div></div>', panel, re.S)
    numbers = [int(n) for ns, _ in cards for n in ns.split()]
    assert sorted(numbers) == [c.n for c in answer.citations]  # every citation on exactly one card
    assert len(cards) < len(answer.citations)  # the seed answer quotes one passage more than once
    assert "None" not in panel and "()" not in panel and 'class="meta"' not in panel  # no outlet or date
    assert "<a " not in panel  # no URL: the title is not a dead link
    by_n = {c.n: c for c in answer.citations}
    for ns, body in cards:
        marks = re.findall(r'<mark id="quote-\d+" data-n="\d+">(.*?)</mark>', body, re.S)
        assert len(marks) == len(ns.split())
        for n in ns.split():
            assert f"[{n}]" in body
            assert html.escape(by_n[int(n)].quote) in marks


def test_gradio_routes_share_the_rate_and_size_limits(corpus_assistant):
    """The chat page's own API (/gradio_api/*) cannot be used to get around the limits of /api/*."""
    import httpx
    from gradio_client import Client

    from assistant.config import load_settings

    settings = load_settings(data_dir=str(corpus_assistant.settings.data_dir),
                             **{"server.rate_limit_per_minute": 3, "server.max_request_kb": 1})
    app = create_app(settings, corpus_assistant)
    with serve_in_thread(app) as url:
        assert httpx.get(f"{url}/gradio_api/info").status_code == 200  # reading the page's API is free
        big = httpx.post(f"{url}/gradio_api/call/ask", json={"data": ["x" * 2000]})
        assert big.status_code == 413 and "limit" in big.json()["error"]  # counted as a question (1 of 3)

        client = Client(f"{url}/", verbose=False)
        answer, _ = client.predict(QUESTION, api_name="/ask")
        assert "[1]" in answer  # 2 of 3
        r = httpx.post(f"{url}/gradio_api/call/ask", json={"data": ["And China?"]})
        assert r.status_code == 200 and r.json()["event_id"]
        r = httpx.post(f"{url}/gradio_api/queue/join", json={"data": ["x", []], "fn_index": 0,
                                                              "session_hash": "abc"})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert r.json()["error"] == "too many questions; slow down"


def _hostile_passage(url: str | None) -> Passage:
    body = HOSTILE["body"]
    return Passage("c1", "a1", body, 0, len(body), HOSTILE["title"], HOSTILE["source"], "2025-06-24", url,
                   score=0.4)


def _assert_inert(fragment: str) -> None:
    """No element from article data: only our own tags, with their own attributes."""
    tags = set(re.findall(r"<\s*([a-zA-Z]+)", fragment))
    assert tags <= {"div", "mark", "span", "a", "p", "ul", "li"}, tags
    assert not re.search(r"<[^>]*\son\w+=", fragment)  # no event handler attribute inside a real tag
    for href in re.findall(r'href="([^"]*)"', fragment):
        assert href.startswith(("https://", "#quote-")), href


@pytest.mark.parametrize("url", [None, "javascript:alert(4)", "data:text/html,x", "/relative", "https://gazette.example/a"])
def test_cards_escape_every_article_field_and_link_only_http(url):
    """Finding 2 (server side): title, outlet and body are text in citation and refusal cards; quotes exact."""
    p = _hostile_passage(url)
    quote = "Ferries stopped."
    start = p.text.index(quote)
    cite = Citation(1, "a1", p.title, p.source, p.published_at, url, quote, start, start + len(quote), p.text)
    cited = sources_html(Answer("Ferries stopped. [1]", False, [cite], [p]), "ferries")
    refused = sources_html(Answer("The articles do not cover this.", True, [], [p, _hostile_passage(url)]),
                           "Did the crews walk out?")
    for panel in (cited, refused):
        _assert_inert(panel)
        assert html.escape(HOSTILE["title"].strip()) in panel and html.escape(HOSTILE["source"]) in panel
        assert ("<a href=" in panel) == (url == "https://gazette.example/a")
    # The quote is highlighted exactly, and every character of the body is still there (escaped).
    assert f'<mark id="quote-1" data-n="1">{quote}</mark>' in cited
    assert html.unescape(re.sub(r"<[^>]+>", "", cited)).count(HOSTILE["body"]) == 1
    # A refusal shows each nearest article once, its sentence closest to the question highlighted: here the
    # whole body, one sentence to the splitter (no sentence starts with "<"), escaped.
    assert refused.count('class="source-card nearest"') == 1
    assert re.findall(r"<mark>(.*?)</mark>", refused) == [html.escape(HOSTILE["body"])]
    assert "No article answers this question" in refused


def test_a_refusal_card_highlights_a_whole_sentence_from_the_one_sentence_splitter():
    """A passage stored without sentence offsets is split by assistant.text.sentences, which knows "Mr." ends
    no sentence: the highlighted span is the whole sentence, not the part after the title."""
    text = "Crews walked out at dawn. Mr. Varga said the ferry resumed its timetable. The harbour was calm."
    p = Passage("c1", "a1", text, 0, len(text), "Ferry", None, None, None)
    a, b = best_sentence(p, "Did the ferry resume its timetable?")
    assert text[a:b] == "Mr. Varga said the ferry resumed its timetable."
    assert best_sentence(p, "Who won the regatta?") is None


def test_missing_fields_show_gracefully():
    p = Passage("c1", "a1", "Ferries stopped today.", 0, 22, "", None, None, None, score=0.5)
    c = Citation(1, "a1", "", None, None, None, "Ferries stopped today.", 0, 22, p.text)
    for panel in (citation_card([c], p), sources_html(Answer("x", True, [], [p]), "ferries")):
        assert "(untitled)" in panel and "None" not in panel and "()" not in panel and "<a " not in panel
        assert 'class="meta"' not in panel  # no empty "outlet · date" line


def test_chat_text_is_escaped_and_numbers_link_to_quotes():
    """Finding 2 (chat): the answer (article quotes) and refusals are text; [n] of a citation links to #quote-n;
    a dateline opens its own line instead of running into the previous quote."""
    text = "Crews <img src=x onerror=alert(1)> walked out [1] PORT AVREL — Ferries stopped [2] [9]"
    out = chat_html(text, {1, 2})
    _assert_inert(out)
    assert "&lt;img src=x onerror=alert(1)&gt;" in out
    assert '<a class="ref" href="#quote-1">[1]</a>\nPORT AVREL' in out
    assert "[9]" in out and "#quote-9" not in out  # not a citation: no link
    refusal = 'The nearest articles: “<b>Harbour</b>” (<script>x</script>).'
    assert "<b>" not in chat_html(refusal) and "&lt;script&gt;" in chat_html(refusal)
    # The chat's history goes back to the engine as the text it showed.
    history = [{"role": "user", "content": chat_html("Why <b>?")},
               {"role": "assistant", "content": out}]
    assert _pairs(history) == [("Why <b>?", text.replace("[1] PORT", "[1]\nPORT"))]
