"""The Gradio app, served for real on a free port and asked through gradio_client."""

from __future__ import annotations

import json
import threading

import uvicorn

from assistant.web.api import create_app
from tests.conftest import free_port, wait_for_port


def test_gradio_answers_with_sources(corpus_assistant):
    app = create_app(corpus_assistant.settings, corpus_assistant)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        from gradio_client import Client

        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        answer, citations = client.predict("Did Russia offer Iran military help?", api_name="/ask")
        citations = json.loads(citations)
        assert "[1]" in answer
        assert citations and citations[0]["title"] == "Russia snubs Iran as Kremlin refuses military help"
        assert citations[0]["quote"] in answer
    finally:
        server.should_exit = True
        thread.join(10)
