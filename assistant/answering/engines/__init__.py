"""Answer engines by name: extractive (offline, default), openai (any compatible endpoint), ollama.

The names are `assistant.config.EngineName`, listed once; `ENGINES` maps each to its class.
"""

from __future__ import annotations

from assistant.answering.engines.base import Embed, Engine
from assistant.answering.engines.chat import ChatEngine
from assistant.answering.engines.extractive import ExtractiveEngine
from assistant.config import EngineName, Settings
from assistant.errors import ConfigError

ENGINES: dict[EngineName, type[Engine]] = {
    EngineName.EXTRACTIVE: ExtractiveEngine,
    EngineName.OPENAI: ChatEngine,
    EngineName.OLLAMA: ChatEngine,
}


def get_engine(name: str, settings: Settings, embed: Embed) -> Engine:
    """The engine called `name`; `embed` is the store's embedder (the extractive engine scores with it)."""
    try:
        engine = EngineName(name)
    except ValueError:
        raise ConfigError(f"unknown answer engine {name!r}",
                          f"choose one of: {', '.join(EngineName)}") from None
    return ENGINES[engine].from_settings(engine, settings, embed)
