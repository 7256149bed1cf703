"""What counts as a copy: one near-duplicate test for articles (ingest), passages (retrieval), sentences (answers).

A text is a copy of another when it lies mostly inside it: at least `COPY` of its word 4-grams (case and
punctuation ignored) are in the other (`is_copy(new, seen)`). A wire story under another title, dateline or
byline, or cut, is a copy; a longer version that adds its own paragraphs is not a copy of the short one (the
short one is a copy of it). Ingest asks it one way (is the new article already stored?), retrieval and the
extractive engine both ways (one of two passages or sentences inside the other). Texts shorter than four words
are one shingle.

Across an archive the same share is estimated from MinHash signatures and shingle counts (`Signature`).
Their LSH bands (`Signature.bands`) find the few articles worth comparing: within one run through `CopyIndex`,
across the archive through the keyword index, which indexes every stored article's bands
(`LexicalIndex.copy_candidates`), so an ingest reads the signatures of its candidates only, not the archive's.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

SHINGLE = 4
COPY = 0.8  # share of the smaller text's shingles found in the other that makes the two copies
MIN_WORDS = 20  # shorter articles are not judged across the archive (too few shingles for MinHash)
_BANDS, _ROWS = 16, 4  # LSH: 64 hash values in 16 bands of 4; a 0.8-similar pair shares a band almost surely
_PRIME = 4294967311  # > 2**32
_rng = np.random.default_rng(8)
_A = _rng.integers(1, 2**31, _BANDS * _ROWS, dtype=np.uint64)
_B = _rng.integers(0, 2**31, _BANDS * _ROWS, dtype=np.uint64)


_NORM = re.compile(r"\W+")


def normalized(text: str) -> str:
    """Lower-case words separated by single spaces: how texts are compared for copies (ingest, retrieval)."""
    return _NORM.sub(" ", text.lower()).strip()


def shingles(text: str, n: int = SHINGLE) -> frozenset[int]:
    """The text's word n-grams, hashed by Python's own tuple hash: the same within a process, which is all a
    comparison of two texts needs, and several times cheaper than a digest (retrieval compares dozens of
    passages per question). What is stored across processes is `Signature`, built on `stable_shingles`."""
    words = normalized(text).split()
    if len(words) <= n:
        return frozenset((hash(tuple(words)),))
    return frozenset(map(hash, zip(*(words[i:] for i in range(n)))))


def stable_shingles(text: str, n: int = SHINGLE) -> frozenset[int]:
    """The same n-grams hashed to 32 bits by BLAKE2b: the same in every process and every version, so the
    MinHash signatures in the store stay comparable."""
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
    def of(cls, text: str) -> Signature | None:
        """None for texts under MIN_WORDS words; with the old kind of signature beside it (`legacy`)."""
        if len(normalized(text).split()) < MIN_WORDS:
            return None
        grams = stable_shingles(text)
        return cls(_minhash(grams), len(grams), cls(_minhash(stable_shingles(text, 5)), None))

    def bands(self) -> list[str]:
        """The LSH band terms of this signature: a text that copies another shares one almost surely. The two
        kinds hash different shingles, so their terms never meet."""
        kind = "o" if self.count is None else "n"
        return [f"{kind}{b}_" + "_".join(map(str, self.minhash[b * _ROWS:(b + 1) * _ROWS])) for b in range(_BANDS)]

    def lookup_bands(self) -> list[str]:
        """The band terms to look a new text up by: its own and its old-kind signature's."""
        return self.bands() + (self.legacy.bands() if self.legacy is not None else [])

    def share_in(self, stored: Signature) -> float:
        """Estimated `copied_share` of this text in the stored one. MinHash estimates the Jaccard index J, and
        |new & stored| = J / (1 + J) * (|new| + |stored|)."""
        if stored.count is None:  # an old stored signature: the Jaccard index of 5-grams, as it was judged then
            return _agreement(self.legacy, stored) if self.legacy is not None else 0.0
        assert self.count is not None  # this text's signature is a new one (`of`), with its count
        j = _agreement(self, stored)
        return min(1.0, j / (1 + j) * (self.count + stored.count) / self.count)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Signature | None:
        """The signature a manifest row holds (`minhash`, `shingles`), if any; None for a malformed one too: a
        row is data (a restored or edited backup), and the keyword index reads every row's."""
        try:
            values = json.loads(meta["minhash"]) if meta.get("minhash") else None
            count = int(meta["shingles"]) if meta.get("shingles") else None
        except (TypeError, ValueError):
            return None
        if not (isinstance(values, list) and len(values) == _BANDS * _ROWS
                and all(type(v) is int for v in values)):
            return None
        return cls(tuple(values), count)

    def to_meta(self) -> dict[str, Any]:
        return {"minhash": json.dumps(list(self.minhash)), "shingles": self.count}


def _minhash(grams: frozenset[int]) -> tuple[int, ...]:
    h = np.fromiter(grams, dtype=np.uint64, count=len(grams))
    return tuple(((np.outer(h, _A) + _B) % _PRIME).min(axis=0).astype(np.int64).tolist())


def _agreement(a: Signature, b: Signature) -> float:
    return float((np.asarray(a.minhash) == np.asarray(b.minhash)).mean())


class CopyIndex:
    """Signatures bucketed by LSH bands: the text a new one copies, found without comparing all."""

    def __init__(self) -> None:
        self.sigs: dict[str, tuple[Signature, dict[str, Any]]] = {}
        self.buckets: dict[str, list[str]] = {}

    def add(self, key: str, sig: Signature, info: dict[str, Any]) -> None:
        self.sigs[key] = (sig, info)
        for band in sig.bands():
            self.buckets.setdefault(band, []).append(key)

    def copied_from(self, sig: Signature, exclude: str | None = None,
                    threshold: float = COPY) -> tuple[str, float, dict[str, Any]] | None:
        """(key, estimated share, info) of the indexed text this one copies most, if it is a copy."""
        candidates = {k for band in sig.lookup_bands() for k in self.buckets.get(band, [])}
        candidates.discard(exclude)
        scored = [(k, sig.share_in(self.sigs[k][0]), self.sigs[k][1]) for k in candidates]
        best = max(scored, key=lambda x: x[1], default=None)
        return best if best is not None and best[1] >= threshold else None
