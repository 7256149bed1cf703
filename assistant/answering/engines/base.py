"""The answer-engine contract: passages and a question in, answer text (with [n] markers) out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import numpy as np

from assistant.config import EngineName, Settings
from assistant.models import Passage

Embed = Callable[[list[str]], np.ndarray]  # texts -> unit vectors (the store's embedder)


class Engine(ABC):
    """An answer engine. `stream` yields text deltas; [n] in the text cites passages[n-1]."""

    name: str = "engine"
    generative: bool = True

    @classmethod
    def from_settings(cls, name: EngineName, settings: Settings, embed: Embed) -> Engine:
        """The engine `answer.engine = name` means, configured from the settings (the registry calls this)."""
        raise NotImplementedError(f"{cls.__name__} is not in the engine registry")

    @abstractmethod
    def stream(self, question: str, passages: list[Passage],
               history: list[tuple[str, str]] | None = None) -> Iterator[str]:
        """Yield the answer text in pieces."""

    def condense(self, question: str, history: list[tuple[str, str]]) -> str | None:
        """A follow-up rewritten as a standalone question, or None: this engine does not rewrite, and the
        chain keeps its rule-based rewrite."""
        return None
