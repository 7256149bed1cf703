"""A change source in memory (what the keyword index syncs from) and generated fictional articles."""

from __future__ import annotations

import json


class FakeStore:
    """A ChangeSource in memory: chunks with the sequence of the write that stored them, tombstones."""

    def __init__(self):
        self.chunks: dict[str, tuple[str, dict]] = {}
        self.tombstones: dict[str, int] = {}
        self.head: int | None = None
        self.ident = "col-1"
        self.reads = 0  # chunks handed out, in total

    def write(self, chunks: dict[str, tuple[str, dict]], delete: tuple[str, ...] = ()) -> None:
        seq = (self.head or 0) + 1
        for cid, (text, meta) in chunks.items():
            self.chunks[cid] = (text, {**meta, "seq": seq})
        for cid in delete:
            self.chunks.pop(cid, None)
            self.tombstones[cid] = seq
        self.head = seq

    def identity(self):
        return self.ident

    def change_head(self):
        return self.head

    def count(self):
        return len(self.chunks)

    def iter_chunks(self):
        for cid, (text, meta) in list(self.chunks.items()):
            self.reads += 1
            yield cid, text, meta

    def changes_since(self, seq):
        for cid, (text, meta) in list(self.chunks.items()):
            if meta.get("seq", 0) > seq:
                self.reads += 1
                yield cid, text, meta

    def deletions_since(self, seq):
        return [(cid, s) for cid, s in self.tombstones.items() if s > seq]


def chunk(title: str, text: str, date_int: int | None = None, source: str | None = None) -> tuple[str, dict]:
    meta = {"title": title, "text_hash": str(hash(text)), **({"date_int": date_int} if date_int else {}),
            **({"source": source} if source else {})}
    return text, meta


def article(i: int, town: str) -> dict:
    return {"title": f"{town} council votes on the {i}th canal lock", "source": "Brennick Ledger",
            "published_at": f"2025-06-{1 + i % 27:02d}", "url": f"https://brennick-ledger.example/{town.lower()}/{i}",
            "body": f"The {town} council met on Tuesday about canal lock number {i}. " * 3
            + f"Lockkeeper Idris Vantol{i} said repairs would take weeks. Boats wait at the {town} basin."}


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path
