"""Newsroom question-answering assistant: cited answers from collected articles.

The library interface (stable):

    from assistant import load_chain, load_retriever

    chain = load_chain(data_dir="~/newsroom")          # a LangChain Runnable
    out = chain.invoke({"question": "Did Russia offer Iran military help?"})
    out["answer"], out["refused"], out["citations"]    # the `ask --json` fields

    retriever = load_retriever(data_dir="~/newsroom")  # a langchain_core BaseRetriever
    docs = retriever.invoke("Kremlin BRICS")            # Documents: metadata title, source, url, start, end...

Settings are keyword arguments: `data_dir`, `config` (a TOML file), `settings` (a ready `Settings`), a
section as a dict (`answer={"engine": "openai"}`) or dotted keys (`**{"llm.model": "qwen2.5"}`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # imported lazily: `import assistant` stays light for the CLI
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import Runnable

    from assistant.answering.chain import Assistant
    from assistant.config import Settings

__all__ = ["load_assistant", "load_chain", "load_retriever"]


def _settings(settings: Settings | None = None, config: str | None = None, **overrides: Any) -> Settings:
    from assistant.config import load_settings

    if settings is not None:
        if config or overrides:
            raise TypeError("pass either settings= or config/overrides, not both")
        return settings
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict) and "." not in key:  # answer={"engine": "openai"}
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = os.path.expanduser(str(value)) if key == "data_dir" else value
    return load_settings(config, **flat)


def load_assistant(**settings: Any) -> Assistant:
    """The Assistant (store, retriever, engines and `chain`) for these settings."""
    from assistant.answering.chain import Assistant

    return Assistant(_settings(**settings))


def load_chain(**settings: Any) -> Runnable:
    """The answer chain: a Runnable over {"question", "history"?, "filters"?}.

    `invoke` returns the `ask --json` fields (`answer`, `refused`, `citations`) plus `support`,
    `unsupported`, `notice` and `result` (the `assistant.models.Answer`); `stream` / `astream` yield
    `{"notices": [...]}` and `{"delta": text}` chunks, then one chunk with those fields. `history` is a list
    of (question, answer) pairs or {"question", "answer"} dicts; `filters` holds `date_from`, `date_to`
    (YYYY-MM-DD), `sources` (outlet names, matched ignoring case as substrings) and `today`.
    """
    return load_assistant(**settings).chain


def load_retriever(filters: dict[str, Any] | None = None, k: int | None = None, **settings: Any) -> BaseRetriever:
    """The archive as a LangChain retriever: hybrid search, reranked; Documents in rank order whose metadata
    holds `chunk_id`, `article_id`, `title`, `source`, `published_at`, `url`, `start`/`end` (the passage's
    exact character offsets in the article body), `score` and `confidence`."""
    return load_assistant(**settings).news_retriever(filters, k)
