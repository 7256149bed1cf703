"""Answer engines by name: extractive (offline, default), openai (any compatible endpoint), ollama."""

from __future__ import annotations

from collections.abc import Callable

from assistant.answering.engines.base import Engine
from assistant.config import Settings
from assistant.errors import ConfigError

ENGINES = ("extractive", "openai", "ollama")


def get_engine(name: str, settings: Settings, embed: Callable) -> Engine:
    """The configured engine; `embed` is the store's embedder (the extractive engine scores with it)."""
    if name == "extractive":
        from assistant.answering.engines.extractive import ExtractiveEngine, SentenceWeights

        return ExtractiveEngine(embed, settings.answer.max_sentences, pool=settings.answer.sentence_pool,
                                weights=SentenceWeights(floor=settings.answer.sentence_floor), title_context=True)
    if name in ("openai", "ollama"):
        from assistant.answering.engines.chat import ChatEngine

        return ChatEngine(name, settings)
    raise ConfigError(f"unknown answer engine {name!r}", f"choose one of: {', '.join(ENGINES)}")
