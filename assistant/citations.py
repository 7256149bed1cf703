"""Answer text with [n] markers -> numbered citations with exact quotes and their character spans."""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.lexical import tokenize
from assistant.models import Citation, Passage

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+[\"'”’)]*|$)")


@dataclass
class Cited:
    """The answer with renumbered markers, its citations, and bogus markers that were removed."""

    text: str
    citations: list[Citation]
    bogus: list[int]
    segments: list[tuple[str, list[int]]]  # (answer sentence, citation numbers it carries)


def best_quote(segment: str, p: Passage) -> tuple[int, int]:
    """Span (absolute) of the passage sentence that best supports an answer segment."""
    seg = segment.strip().strip("\"“”")
    pos = p.text.find(seg) if len(seg) > 10 else -1
    if pos >= 0:
        return p.start + pos, p.start + pos + len(seg)
    seg_terms = set(tokenize(segment))
    best, best_score = (p.start, p.end), -1.0
    for s, e in p.sentences:
        s, e = max(s, p.start), min(e, p.end)
        if e - s < 10:
            continue
        terms = set(tokenize(p.text[s - p.start:e - p.start]))
        score = len(seg_terms & terms) / (len(seg_terms) or 1) + 0.01 * min(len(terms), 30) / 30
        if score > best_score:
            best, best_score = (s, e), score
    return best


def split_segments(text: str) -> list[tuple[str, list[int]]]:
    """Answer text cut after each group of [n] markers (or sentence end): (segment, [n, ...])."""
    segments: list[tuple[str, list[int]]] = []
    pos = 0
    for m in _MARKER.finditer(text):
        chunk = text[pos:m.start()]
        nums = [int(x) for x in re.findall(r"\d+", m.group(1))]
        if chunk.strip() or not segments:
            segments.append((chunk, nums))
        else:  # "[1][2]": markers stacked after one sentence
            segments[-1] = (segments[-1][0], segments[-1][1] + nums)
        pos = m.end()
    tail = text[pos:]
    if tail.strip():
        segments.append((tail, []))
    return segments


def cite(text: str, passages: list[Passage]) -> Cited:
    """Map the engine's [n] (1-based passage numbers) to citations numbered in order of first use."""
    segments = split_segments(text)
    citations: list[Citation] = []
    index: dict[tuple[str, int, int], int] = {}
    bogus: list[int] = []
    out_parts: list[str] = []
    out_segments: list[tuple[str, list[int]]] = []
    for seg, nums in segments:
        new_nums: list[int] = []
        for n in nums:
            if not 1 <= n <= len(passages):
                bogus.append(n)
                continue
            p = passages[n - 1]
            s, e = best_quote(_last_sentence(seg) if len(seg) > 400 else seg, p)
            key = (p.article_id, s, e)
            if key not in index:
                index[key] = len(citations) + 1
                citations.append(Citation(
                    n=index[key], article_id=p.article_id, title=p.title, source=p.source,
                    published_at=p.published_at, url=p.url, quote=p.text[s - p.start:e - p.start],
                    start=s, end=e, passage=p.text))
            if index[key] not in new_nums:
                new_nums.append(index[key])
        marker = "".join(f" [{n}]" for n in new_nums)
        out_parts.append(seg.rstrip() + marker if seg.strip() else seg)
        out_segments.append((seg.strip(), new_nums))
    return Cited("".join(out_parts).strip(), citations, bogus, out_segments)


def _last_sentence(seg: str) -> str:
    parts = [m.group() for m in _SENTENCE.finditer(seg) if m.group().strip()]
    return parts[-1] if parts else seg
