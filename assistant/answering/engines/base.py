"""The answer-engine contract: passages and a question in, answer text (with [n] markers) out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from assistant.models import Passage


class Engine(ABC):
    """An answer engine. `stream` yields text deltas; [n] in the text cites passages[n-1]."""

    name: str = "engine"
    generative: bool = True

    @abstractmethod
    def stream(self, question: str, passages: list[Passage],
               history: list[tuple[str, str]] | None = None) -> Iterator[str]:
        """Yield the answer text in pieces."""
