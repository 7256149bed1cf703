"""The web surfaces: Gradio chat (app.py), REST API and widget (api.py, widget/)."""
