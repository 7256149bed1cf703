"""The Gradio app, served for real on a free port and asked through gradio_client."""

from __future__ import annotations

import html
import json

from assistant.web.api import create_app
from tests.conftest import serve_in_thread


def test_gradio_answers_with_sources(corpus_assistant):
    app = create_app(corpus_assistant.settings, corpus_assistant)
    with serve_in_thread(app) as url:
        from gradio_client import Client

        client = Client(f"{url}/", verbose=False)
        answer, citations = client.predict("Did Russia offer Iran military help?", api_name="/ask")
        citations = json.loads(citations)
        assert "[1]" in answer
        assert citations and citations[0]["title"] == "Russia snubs Iran as Kremlin refuses military help"
        assert citations[0]["quote"] in answer


def test_sources_panel_shows_each_passage_once_with_all_its_quotes(corpus_assistant):
    """Quotes from the same passage share one card: its numbers in the title, every quote highlighted."""
    import re

    from assistant.web.app import sources_html

    answer = corpus_assistant.ask("Did Russia offer Iran military help?")
    panel = sources_html(answer)
    cards = re.findall(r'<div class="source-card[^"]*" data-n="([\d ]+)">(.*?)</div></div>', panel, re.S)
    numbers = [int(n) for ns, _ in cards for n in ns.split()]
    assert sorted(numbers) == [c.n for c in answer.citations]  # every citation on exactly one card
    assert len(cards) < len(answer.citations)  # the seed answer quotes one passage more than once
    by_n = {c.n: c for c in answer.citations}
    for ns, body in cards:
        marks = re.findall(r"<mark>(.*?)</mark>", body, re.S)
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
        answer, _ = client.predict("Did Russia offer Iran military help?", api_name="/ask")
        assert "[1]" in answer  # 2 of 3
        r = httpx.post(f"{url}/gradio_api/call/ask", json={"data": ["And China?"]})
        assert r.status_code == 200 and r.json()["event_id"]
        r = httpx.post(f"{url}/gradio_api/queue/join", json={"data": ["x", []], "fn_index": 0,
                                                              "session_hash": "abc"})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert r.json()["error"] == "too many questions; slow down"
