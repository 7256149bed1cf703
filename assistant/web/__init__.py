"""The web surfaces: Gradio chat (app.py), REST API and widget (api.py and its shapes in schemas.py, widget/),
the OpenAI-compatible /v1 (openai_api.py), the watcher's sources (sources.py), one error body (errors.py)."""
