"""Errors a user can act on: a message plus a hint naming the fix."""


class AssistantError(Exception):
    """Base error; `cli.py` and `web/` turn it into a one-line message."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(AssistantError):
    """Bad or missing configuration."""


class CorpusError(AssistantError):
    """An input file or article that cannot be read."""


class StoreError(AssistantError):
    """The vector store cannot be opened, written or reached."""


class EngineError(AssistantError):
    """An answer engine (LLM server) failed or is not available."""
