"""What counts as a copy: one near-duplicate test for articles (ingest), passages (retrieval), sentences (answers).

A text is a copy of another when it lies mostly inside it: at least `COPY` of its word 4-grams (case and
punctuation ignored) are in the other (`is_copy(new, seen)`). A wire story under another title, dateline or
byline, or cut, is a copy; a longer version that adds its own paragraphs is not a copy of the short one (the
short one is a copy of it). Ingest asks it one way (is the new article already stored?), retrieval and the
extractive engine both ways (one of two passages or sentences inside the other). Texts shorter than four words
are one shingle.

Across an archive the same share is estimated from MinHash signatures and shingle counts (`Signature`,
`CopyIndex`), so an ingest compares one article with thousands without reading them back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.lexical import normalized

SHINGLE = 4
COPY = 0.8  # share of the smaller text's shingles found in the other that makes the two copies
MIN_WORDS = 20  # shorter articles are not judged across the archive (too few shingles for MinHash)
_BANDS, _ROWS = 16, 4  # LSH: 64 hash values in 16 bands of 4; a 0.8-similar pair shares a band almost surely
_PRIME = 4294967311  # > 2**32
_rng = np.random.default_rng(8)
_A = _rng.integers(1, 2**31, _BANDS * _ROWS, dtype=np.uint64)
_B = _rng.integers(0, 2**31, _BANDS * _ROWS, dtype=np.uint64)


def shingles(text: str, n: int = SHINGLE) -> frozenset[int]:
    """The text's word n-grams, hashed."""
    words = normalized(text).split()
    return frozenset(int.from_bytes(hashlib.blake2b(" ".join(words[i:i + n]).encode(), digest_size=4).digest(),
                                    "little") for i in range(max(1, len(words) - n + 1)))


def copied_share(new: frozenset[int], seen: frozenset[int]) -> float:
    """Share of `new`'s shingles that are in `seen`."""
    return len(new & seen) / len(new) if new else 0.0


def is_copy(new: frozenset[int], seen: frozenset[int], threshold: float = COPY) -> bool:
    """The near-duplicate test: the new text lies mostly inside the seen one."""
    return copied_share(new, seen) >= threshold


@dataclass(frozen=True)
class Signature:
    """An article's MinHash signature and shingle count: `copied_share` estimated without the texts.

    Signatures stored before counts were kept (`count` None) hash word 5-grams and estimate the Jaccard index;
    they are compared with the new article's signature of that kind (`legacy`), so old archives still catch
    copies."""

    minhash: tuple[int, ...]
    count: int | None
    legacy: Signature | None = None  # this text's 5-gram signature, for stored signatures of the old kind

    @classmethod
    def of(cls, text: str, legacy: bool = False) -> Signature | None:
        """None for texts under MIN_WORDS words; `legacy`: also the old kind of signature."""
        if len(normalized(text).split()) < MIN_WORDS:
            return None
        grams = shingles(text)
        old = cls(_minhash(shingles(text, 5)), None) if legacy else None
        return cls(_minhash(grams), len(grams), old)

    def share_in(self, stored: Signature) -> float:
        """Estimated `copied_share` of this text in the stored one. MinHash estimates the Jaccard index J, and
        |new & stored| = J / (1 + J) * (|new| + |stored|)."""
        if stored.count is None:  # an old stored signature: the Jaccard index of 5-grams, as it was judged then
            return _agreement(self.legacy, stored) if self.legacy is not None else 0.0
        j = _agreement(self, stored)
        return min(1.0, j / (1 + j) * (self.count + stored.count) / self.count)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Signature | None:
        """The signature a manifest row holds (`minhash`, `shingles`), if any."""
        if not meta.get("minhash"):
            return None
        return cls(tuple(json.loads(meta["minhash"])), int(meta["shingles"]) if meta.get("shingles") else None)

    def to_meta(self) -> dict[str, Any]:
        return {"minhash": json.dumps(list(self.minhash)), "shingles": self.count}


def _minhash(grams: frozenset[int]) -> tuple[int, ...]:
    h = np.fromiter(grams, dtype=np.uint64, count=len(grams))
    return tuple(((np.outer(h, _A) + _B) % _PRIME).min(axis=0).astype(np.int64).tolist())


def _agreement(a: Signature, b: Signature) -> float:
    return float((np.asarray(a.minhash) == np.asarray(b.minhash)).mean())


class CopyIndex:
    """Signatures bucketed by LSH bands: the stored article a new one copies, found without comparing all."""

    def __init__(self) -> None:
        self.sigs: dict[str, tuple[Signature, dict[str, Any]]] = {}
        self.buckets: dict[tuple, list[str]] = {}
        self.has_legacy = False

    def add(self, key: str, sig: Signature, info: dict[str, Any]) -> None:
        self.sigs[key] = (sig, info)
        self.has_legacy |= sig.count is None
        for band in self._bands(sig):
            self.buckets.setdefault(band, []).append(key)

    @staticmethod
    def _bands(sig: Signature) -> list[tuple]:
        kind = "old" if sig.count is None else "new"  # the two kinds hash different shingles: never mixed
        return [(kind, b, *sig.minhash[b * _ROWS:(b + 1) * _ROWS]) for b in range(_BANDS)]

    def copied_from(self, sig: Signature, exclude: str | None = None,
                    threshold: float = COPY) -> tuple[str, float, dict[str, Any]] | None:
        """(key, estimated share, info) of the stored text this one copies most, if it is a copy."""
        bands = self._bands(sig) + (self._bands(sig.legacy) if sig.legacy is not None else [])
        candidates = {k for band in bands for k in self.buckets.get(band, [])}
        candidates.discard(exclude)
        scored = [(k, sig.share_in(self.sigs[k][0]), self.sigs[k][1]) for k in candidates]
        best = max(scored, key=lambda x: x[1], default=None)
        return best if best is not None and best[1] >= threshold else None
