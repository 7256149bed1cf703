"""The ASGI app `assistant serve` runs: REST API, health check, and the Gradio chat at /."""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI

from assistant import __version__
from assistant.chain import Assistant
from assistant.config import Settings
from assistant.web.app import CSS, build_app
from assistant.web.errors import install_error_handlers


def create_app(settings: Settings, assistant: Assistant | None = None) -> FastAPI:
    """FastAPI app with the Gradio UI mounted at /."""
    assistant = assistant or Assistant(settings)
    app = FastAPI(title="Newsroom assistant", version=__version__)
    app.state.assistant = assistant
    install_error_handlers(app)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "chunks": assistant.store.count()}

    return gr.mount_gradio_app(app, build_app(assistant), path="/", css=CSS, footer_links=["api"])
