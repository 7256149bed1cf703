"""The archive: the store of truth (Chroma) and the keyword index that follows it, built once per process.

Every part that reads or writes articles (the chain, ingest, the watcher, the CLI, the API, eval) is handed
the one `Archive` of its process, so a `serve` holds one store handle and one keyword index over one folder.
"""

from __future__ import annotations

from assistant.config import Settings
from assistant.index.audit import AuditLog
from assistant.index.embedder import Embedder
from assistant.index.lexical import LexicalIndex, lexical_path
from assistant.index.quotebook import QuoteBook
from assistant.index.store import Store
from assistant.index.users import Users


class Archive:
    """The store, its keyword index (`lexical`, in step with the store's change log), its quotes (`quotes`,
    assistant.index.quotebook, following the same log), its users (`users`, assistant.index.users) and its audit
    trail (`audit`, assistant.index.audit), both kept in the store too."""

    def __init__(self, settings: Settings, store: Store | None = None):
        self.store = store or Store(settings)
        self.lexical = LexicalIndex(lexical_path(settings), source=self.store)
        self.quotes = QuoteBook(self.store)  # built from the store on first use
        self.users = Users(self.store.chroma)  # personal keys, beside the change log in the store of truth
        self.audit = AuditLog(self.store.chroma, settings.server.log_questions,
                              settings.server.question_retention_days)

    @property
    def embedder(self) -> Embedder:
        return self.store.embedder
