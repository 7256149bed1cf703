"""Reading answers: the events of an SSE stream, the number the chain gives a retrieved passage."""

from __future__ import annotations

import json


def sse_events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


def passage_number(assistant, question: str, needle: str) -> int:
    """1-based number of the retrieved passage containing `needle` (what the chain will send)."""
    passages = assistant.retriever.retrieve(question).passages
    return next(i for i, p in enumerate(passages, 1) if needle in p.text)
