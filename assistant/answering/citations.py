"""Answer text with [n] markers -> numbered citations with exact quotes and their character spans; and how a
cited article is named (`article_label`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from assistant.models import Citation, Passage
from assistant.text.instructions import addresses_reader
from assistant.text.sentences import sentences
from assistant.text.words import tokenize

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A number's scale word belongs to its value: "1.8 billion" is not "1.8 million".
_SCALES = {"percent": r"(?:%|percent|per\s+cent)", "thousand": r"thousand", "million": r"(?:million|mn)",
           "billion": r"(?:billion|bn)", "trillion": r"(?:trillion|tn)"}
_SCALED = re.compile(r"(\d+(?:[.,]\d+)*)(?:\s*(%|percent\b|per\s+cent\b|thousand\b|million\b|mn\b|billion\b|bn\b|"
                     r"trillion\b|tn\b))?", re.I)
_COMMON = {"the", "a", "an", "it", "he", "she", "they", "we", "i", "this", "that", "these", "those", "but", "and",
           "in", "on", "at", "as", "for", "his", "her", "their", "its", "there", "when", "while", "after"}
SUPPORT_THRESHOLD = 0.5


@dataclass
class Cited:
    """The answer with renumbered markers, its citations, and bogus markers that were removed."""

    text: str
    citations: list[Citation]
    bogus: list[int]
    segments: list[tuple[str, list[int]]]  # (answer sentence, citation numbers it carries)


def best_quote(segment: str, p: Passage) -> tuple[int, int]:
    """Span (absolute) of the passage sentence that best supports an answer segment."""
    # verbatim up to whitespace (an answer shows a quote spanning two paragraphs on one line), with its own
    # quotation marks if the article has them, else without the marks a model may have put around it
    for seg in dict.fromkeys((segment.strip(), segment.strip().strip("\"“”"))):
        m = re.search(r"\s+".join(map(re.escape, seg.split())), p.text) if len(seg) > 10 else None
        if m:
            return p.start + m.start(), p.start + m.end()
    seg_terms = set(tokenize(segment))
    best, best_score = (p.start, p.end), -1.0
    for s, e in p.sentence_spans(min_chars=10):
        terms = set(tokenize(p.span_text(s, e)))
        score = len(seg_terms & terms) / (len(seg_terms) or 1) + 0.01 * min(len(terms), 30) / 30
        if score > best_score:
            best, best_score = (s, e), score
    return best


def speaker_of(p: Passage, start: int, end: int) -> str | None:
    """The speaker of the span [start, end) of a passage: that of the passage's quote holding it, or at least half
    of its characters, when the quote names its speaker; None for narrative text, an unnamed speaker, or two
    named quotes that would both fit (a wrong speaker is worse than none)."""
    length = end - start
    if length <= 0:
        return None
    fits = {speaker for qs, qe, _kind, speaker, _cue in p.quotes
            if speaker and 2 * (min(end, qe) - max(start, qs)) >= length}
    return fits.pop() if len(fits) == 1 else None


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
                    start=s, end=e, speaker=speaker_of(p, s, e), passage=p.text))
            if index[key] not in new_nums:
                new_nums.append(index[key])
        marker = "".join(f" [{n}]" for n in new_nums)
        out_parts.append(seg.rstrip() + marker if seg.strip() else seg)
        out_segments.append((seg.strip(), new_nums))
    return Cited("".join(out_parts).strip(), citations, bogus, out_segments)


def _last_sentence(seg: str) -> str:
    parts = sentences(seg)
    return parts[-1] if parts else seg


@dataclass
class Support:
    """The citation check: support score (0..1) and the answer sentences their sources do not back."""

    score: float
    unsupported: list[str] = field(default_factory=list)
    sentences: list[tuple[str, list[int], float]] = field(default_factory=list)  # (sentence, [n], score)
    addressed: list[int] = field(default_factory=list)  # cited passages holding text addressed to the reader


# A name: a capitalised word of two or more characters, inner dots, hyphens and apostrophes kept ("U.S",
# "DE.CO", "Tehran’s"). A capitalised word opening a sentence (the text's start, or after . ! ? and a space,
# opening quotes and brackets skipped) is not taken for one.
_NAME = re.compile(r"\b[A-Z][\w'’.-]*\w")
_ENDS = re.compile(r"[.!?…][\"'”’)\]]*$")


def names(text: str) -> list[str]:
    """The names in a text: the one definition the extractive engine, the citation check and the eval use."""
    found = []
    for m in _NAME.finditer(text):
        i = m.start()  # step back over opening quotes and brackets, then whitespace (never the whole prefix:
        while i and text[i - 1] in "\"'“‘([":  # article text is untrusted, a long line must stay linear)
            i -= 1
        j = i
        while j and text[j - 1].isspace():
            j -= 1
        if not j or (j != i and _ENDS.search(text, max(0, j - 16), j)):
            continue
        found.append(m.group())
    return found


def anchors(sentence: str) -> tuple[set[str], set[str]]:
    """Names (capitalised words not opening the sentence) and numbers a supporting passage must contain."""
    s = sentence.strip().lstrip("\"“‘'([ ")
    numbers = {_number_key(m) for m in _SCALED.finditer(s)}
    return {n.lower() for n in names(s)} - _COMMON, numbers


def pair_score(sentence: str, similarity: float, passage: str) -> tuple[float, bool]:
    """How well one passage backs one sentence, and whether every number in the sentence is in it.

    Embedding similarity to the cited quote, blended with the share of the sentence's names found in the
    passage (a sentence naming people or places the passage never mentions is not supported by it).
    """
    names, numbers = anchors(sentence)
    text = passage.lower()
    numbers_ok = all(has_number(text, n) for n in numbers)
    if not names:
        return max(0.0, min(1.0, similarity)), numbers_ok
    have = sum(1 for n in names if n in text) / len(names)
    return max(0.0, min(1.0, 0.6 * similarity + 0.4 * have)), numbers_ok


def _number_key(m: re.Match) -> str:
    """'1,800' -> '1800', '12.5 percent' / '12.5%' -> '12.5 percent', '1.8 bn' -> '1.8 billion'."""
    value = m.group(1).replace(",", "")
    word = (m.group(2) or "").lower()
    scale = next((name for name, pattern in _SCALES.items() if word and re.fullmatch(pattern, word)), "")
    return f"{value} {scale}".strip()


def has_number(text: str, key: str) -> bool:
    """Whether text states the number as a whole value: '12.5' is not found in '12.9' nor '12' in '12.9',
    and a scaled number needs its scale ('1.8 billion' is not '1.8 million')."""
    value, _, scale = key.partition(" ")
    digits = r"[,]?".join(re.escape(d) for d in value)  # thousands separators may sit between any digits
    pattern = rf"(?<![\d.,]){digits}(?!\d|[.,]\d)"
    if scale:
        pattern += rf"\s*{_SCALES[scale]}"
    return re.search(pattern, text, re.I) is not None


def _flat(text: str) -> str:
    return " ".join(text.split())


def check_support(cited: Cited, embed: Callable[[list[str]], np.ndarray],
                  threshold: float = SUPPORT_THRESHOLD) -> Support:
    """Check every answer sentence against the passages it cites; sets each Citation.supported.

    A sentence is supported when some cited passage scores >= threshold for it and contains its numbers;
    a sentence without a (valid) citation is unsupported. A sentence that addresses the reader or an assistant
    (instructions, a request for a token or login), or cites a quote that does, is never supported: article
    text is data (`assistant.text.instructions`). The score is the mean over sentences.
    """
    by_n = {c.n: c for c in cited.citations}
    relays = {c.n for c in cited.citations if addresses_reader(c.quote)}
    items: list[tuple[str, list[int]]] = []
    for seg, nums in cited.segments:
        parts = sentences(_MARKER.sub("", seg))
        parts = [p.lstrip(".!?;,:)]”\" ").strip() for p in parts]
        parts = [p for p in parts if len(re.findall(r"\w+", p)) >= 3]
        items += [(p, [n for n in nums if n in by_n]) for p in parts]
    if not items:
        return Support(0.0)
    # A sentence quoted verbatim from a passage it cites is backed by it (similarity 1, no embedding needed:
    # the extractive engine's replies); only paraphrases are embedded and compared.
    verbatim = [{n for n in nums if _flat(s) in _flat(by_n[n].passage or by_n[n].quote)} for s, nums in items]
    paraphrased = [i for i, (_, nums) in enumerate(items) if set(nums) - verbatim[i]]
    # A sentence may paraphrase any sentence of the passage it cites, not only the quote picked for display.
    need = {n for i in paraphrased for n in items[i][1]}
    units = {c.n: [c.quote] + [t for t in sentences(c.passage or "") if len(t) > 15]
             for c in cited.citations if c.n in need}
    texts = sorted({t for ts in units.values() for t in ts})
    vectors: np.ndarray | list[np.ndarray] = embed([items[i][0] for i in paraphrased] + texts) if paraphrased else []
    svecs = dict(zip(paraphrased, vectors))
    tvec = dict(zip(texts, vectors[len(paraphrased):]))
    supported_n: set[int] = set()
    result = Support(0.0)
    for i, (sentence, nums) in enumerate(items):
        best = 0.0
        for n in nums:
            c = by_n[n]
            if n in verbatim[i]:  # quoted word for word from the passage it cites: supported by construction
                score, numbers_ok = 1.0, True
            else:
                sim = max(float(svecs[i] @ tvec[t]) for t in units[n])
                score, numbers_ok = pair_score(sentence, sim, c.passage or c.quote)
            if numbers_ok and score >= threshold:
                supported_n.add(n)
            if n in relays:
                supported_n.discard(n)
                score = min(score, threshold - 0.01)
            best = max(best, score if numbers_ok else min(score, threshold - 0.01))
        if addresses_reader(sentence) or set(nums) & relays:
            best = min(best, threshold - 0.01)
        result.sentences.append((sentence, nums, best))
        if best < threshold:
            result.unsupported.append(sentence)
    for c in cited.citations:
        c.supported = c.n in supported_n and c.n not in relays
    result.addressed = sorted(c.n for c in cited.citations if addresses_reader(c.passage or c.quote))
    result.score = float(sum(s for _, _, s in result.sentences) / len(result.sentences))
    return result


def article_label(p: Passage | Citation) -> str:
    """“Title” (outlet, date), leaving out what the article does not state: no empty brackets, no None."""
    title = " ".join((p.title or "").split()) or "untitled article"
    meta = ", ".join(x for x in (p.source, p.published_at) if x and x.strip())
    return f"“{title}”" + (f" ({meta})" if meta else "")
