"""Who made a request, as the audit trail names them (assistant.index.audit)."""

from __future__ import annotations

from typing import Any


def actor_of(request: Any) -> str:
    """`request.state.actor` when the access policy set it (a user's name, "admin token"), else
    "anonymous (<client address>)". Takes a Starlette request or a Gradio `gr.Request` (which passes `state`
    and `client` through to the request it wraps)."""
    actor = getattr(getattr(request, "state", None), "actor", None)
    if isinstance(actor, str) and actor.strip():
        return actor.strip()
    host = getattr(getattr(request, "client", None), "host", None)
    return f"anonymous ({host or 'unknown'})"
