"""The characters of a text as the quote extractor (assistant/text/quotes.py) reads them, before any parse: control
characters blanked (offsets kept), the paragraphs with their offsets, and the spans inside double quotation marks
(a quotation over several paragraphs as one group)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n")
_OPEN = "“„«"
_CLOSE = "”»"
_STRAIGHT = '"'


def _clean(text: str) -> str:
    """`text` with control characters and lone surrogates as blanks, the same length (offsets stay valid)."""
    def blank(ch: str) -> str:
        if ch in "\n\t":
            return ch
        cat = unicodedata.category(ch)
        return " " if cat in ("Cc", "Cs", "Co", "Cn") else ch
    if text.isprintable():
        return text
    return "".join(blank(ch) for ch in text)


def _paragraphs(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-blank paragraph: blocks between blank lines, the first line always its own."""
    bounds: list[tuple[int, int]] = []
    first_nl = text.find("\n")
    head_end = len(text) if first_nl < 0 else first_nl
    pieces = [(0, head_end)]
    pos = head_end
    for m in _PARAGRAPH.finditer(text, pos):
        pieces.append((pos, m.start()))
        pos = m.end()
    pieces.append((pos, len(text)))
    for s, e in pieces:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            bounds.append((s, e))
    return bounds


@dataclass
class _Direct:
    start: int
    end: int
    group: int  # quotes of one paragraph-spanning quotation share a group
    speaker: str | None = None
    cue: str = ""
    resolved: bool = False


def _direct_spans(text: str, paragraphs: list[tuple[int, int]]) -> list[_Direct]:
    """Spans inside double quotation marks, paragraph by paragraph (a mark left open is not a quote, unless the
    next paragraph reopens with a mark: the convention for a quotation over several paragraphs)."""
    found: list[_Direct] = []
    group = 0
    carried = False  # the previous paragraph ended inside a quotation that this one continues
    for n, (ps, pe) in enumerate(paragraphs):
        opened: int | None = None
        for i in range(ps, pe):
            ch = text[i]
            if opened is None:
                if ch in _OPEN or ch == _STRAIGHT:
                    opened = i
            elif ch in _CLOSE or ch == _STRAIGHT:
                if i > opened + 1 and text[opened + 1:i].strip():
                    if not carried:
                        group += 1
                    found.append(_Direct(opened + 1, i, group))
                carried = False
                opened = None
        if opened is not None:
            nxt = paragraphs[n + 1][0] if n + 1 < len(paragraphs) else None
            if opened == ps and nxt is not None and text[nxt] in _OPEN + _STRAIGHT and text[opened + 1:pe].strip():
                if not carried:
                    group += 1
                found.append(_Direct(opened + 1, pe, group))
                carried = True
                continue
        carried = False
    return found
