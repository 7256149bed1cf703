"""A LangChain callback handler that records the runs it is told about."""

from __future__ import annotations

from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from assistant.answering.chain import RUN_NAME


class Recorder(BaseCallbackHandler):
    """Records the runs LangChain reports: (kind, name, run id, parent run id)."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str, UUID, UUID | None]] = []
        self.outputs: dict[str, list] = {}
        self.tokens: list[str] = []
        self.on = True

    def _add(self, kind, name, run_id, parent_run_id):
        if self.on:
            self.runs.append((kind, name, run_id, parent_run_id))

    def on_chain_start(self, serialized, inputs, *, run_id, parent_run_id=None, **kw):
        self._add("chain", kw.get("name") or "", run_id, parent_run_id)

    def on_chain_end(self, outputs, *, run_id, **kw):
        name = next((n for k, n, r, _ in self.runs if r == run_id), "")
        if self.on:
            self.outputs.setdefault(name, []).append(outputs)

    def on_retriever_start(self, serialized, query, *, run_id, parent_run_id=None, **kw):
        self._add("retriever", kw.get("name") or "", run_id, parent_run_id)

    def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, **kw):
        self._add("chat_model", kw.get("name") or "", run_id, parent_run_id)

    def on_llm_new_token(self, token, **kw):
        if self.on:
            self.tokens.append(token)

    def roots(self) -> list[UUID]:
        return [r for kind, name, r, parent in self.runs if kind == "chain" and name == RUN_NAME and parent is None]

    def under(self, root: UUID, kind: str) -> list[str]:
        """Names of the runs of `kind` descending from `root`."""
        parents = {r: p for _, _, r, p in self.runs}

        def descends(r):
            while r is not None:
                if r == root:
                    return True
                r = parents.get(r)
            return False

        return [name for k, name, r, p in self.runs if k == kind and descends(p)]
