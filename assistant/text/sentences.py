"""The one sentence splitter: chunking, the extractive engine's picks and the citation check all cut here.

It knows abbreviations ("U.S.", "a.m.", "No. 10", "Mr."), initials ("J. R. Tolk"), decimals ("2.4-kilometre",
"1.8 billion": a sentence ends only at punctuation followed by whitespace and a likely sentence start) and
closing quotes ('“We stop.” Then ...' ends after the quote).
"""

from __future__ import annotations

import re

# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and a likely sentence start.
_SENT_END = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s+["'“‘(\[]?[A-Z0-9À-ÖØ-ÞА-ЯЁ\u0600-\u06FF])""")
_ABBREV = {
    "mr", "mrs", "ms", "dr", "st", "sr", "jr", "gen", "sen", "rep", "gov", "lt", "col", "sgt", "capt",
    "prof", "rev", "no", "vs", "etc", "inc", "corp", "co", "ltd", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k", "u.n", "e.g", "i.e", "a.m", "p.m",
    "d.c", "mt", "ft", "ave", "fig", "approx", "dept", "est", "pres", "adm", "maj", "cmdr", "atty",
}


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans (absolute offsets, whitespace trimmed) of text[start:end]; newlines end sentences."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text[start:end]):
        ls, le = start + line.start(), start + line.end()
        seg_start = ls
        for m in _SENT_END.finditer(text, ls, le):
            word = re.search(r"([\w.]+)[.!?…]*$", text[seg_start:m.start() + 1])
            token = (word.group(1) if word else "").rstrip(".").lower()
            quoted = m.group()[-1] in "\"'”’)]"
            if not quoted and (token in _ABBREV or (len(token) == 1 and token.isalpha())):
                continue  # "Mr. Varga", "U.S. officials", "J. R. Tolk"
            _add_span(text, seg_start, m.end(), spans)
            seg_start = m.end()
        _add_span(text, seg_start, le, spans)
    return spans


def _add_span(text: str, s: int, e: int, spans: list[tuple[int, int]]) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if e > s:
        spans.append((s, e))


def sentences(text: str) -> list[str]:
    """The sentences of a text, as strings."""
    return [text[s:e] for s, e in split_sentences(text)]
