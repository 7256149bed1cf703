"""The Gradio app, served for real on a free port and asked through gradio_client."""

from __future__ import annotations

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
