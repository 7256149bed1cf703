"""Bytes and record fields into clean text and dates: what every loader (and the fetcher) reads input with."""

from __future__ import annotations

import codecs
import dataclasses
import logging
import re
import unicodedata
from datetime import datetime
from typing import Any

from dateutil import parser as dateparser

from assistant.errors import CorpusError
from assistant.models import Article

log = logging.getLogger(__name__)


def decode_text(raw: bytes) -> str:
    """Decode file bytes (UTF-8/16 with BOM, else cp1251 or cp1252 by heuristic) to text with \\n newlines.

    A byte-order mark always wins: a cp1251 file opening with "юя" or "яю" (the bytes of a UTF-16 BOM) is
    misread as UTF-16; no Russian word starts so, and a BOM is the stronger evidence.
    """
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            text = raw.decode(enc, errors="replace")
            break
    else:
        raw = raw.removeprefix(codecs.BOM_UTF8)
        if not raw.strip():
            raise CorpusError("empty file")
        sample = raw[:8192]
        controls = sum(1 for b in sample if (b < 32 and b not in b"\t\n\r\f") or b == 127)
        if b"\x00" in sample or controls > 0.3 * len(sample):
            raise CorpusError("binary file, not text", "convert it to .txt, .html, .json or .pdf")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_legacy(raw)
    text = clean(text)
    if not text.strip():
        raise CorpusError("empty file")
    return text


def _decode_legacy(raw: bytes) -> str:
    """cp1251 when the non-ASCII letters form Cyrillic words, else cp1252 (latin-1 as last resort)."""
    cyr = raw.decode("cp1251", errors="replace")
    in_words = non_ascii = 0
    for word in re.findall(r"[^\W\d_]+", cyr):
        n = sum(1 for c in word if ord(c) > 127)
        non_ascii += n
        if len(word) > 1 and all("\u0400" <= c <= "\u04ff" for c in word):
            in_words += n
    if non_ascii and in_words > non_ascii / 2:
        return cyr
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def clean(text: str) -> str:
    """Text without NULs, with \\n newlines."""
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")


def canonical(article: Article) -> Article:
    """The article with its text fields in Unicode NFC (the article itself when they already are).

    Scraped pages may write an accent as its own combining character ("e" + U+0301 for "é"): the same text to a
    reader, but spaCy reads the mark as punctuation and loses the name's sentence (its quotes go unattributed).
    Every article the ingestor stores passes here, whichever loader, feed or request it came from.
    """
    fields = {name: nfc(value) for name in ("title", "body", "source", "author")
              if (value := getattr(article, name)) and not unicodedata.is_normalized("NFC", value)}
    return dataclasses.replace(article, **fields) if fields else article


def nfc(text: str) -> str:
    """Text in Unicode NFC: an accent and its letter as one character."""
    return unicodedata.normalize("NFC", text)


def normalize_date(value: Any, where: str) -> str | None:
    """YYYY-MM-DD for a parsable full date, else None (with a warning)."""
    if value in (None, ""):
        return None
    s = str(value).strip()
    try:
        # parse against two different defaults: a date missing its year/month/day differs between them.
        # "10.01.2025" is day-first (European); "01/10/2025" stays dateutil's month-first.
        dayfirst = bool(re.fullmatch(r"\d{1,2}\.\d{1,2}\.\d{4}", s))
        a = dateparser.parse(s, default=datetime(2000, 1, 1), dayfirst=dayfirst)
        b = dateparser.parse(s, default=datetime(2001, 2, 2), dayfirst=dayfirst)
        if a.date() == b.date():
            return a.date().isoformat()
    except (ValueError, OverflowError):
        pass
    log.warning("%s: cannot parse date %r, leaving it empty", where, s)
    return None


def str_field(record: dict, key: str) -> str | None:
    """A record's field as stripped text (numbers allowed), None if absent/empty; ValueError if a list/object."""
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return clean(str(value)).strip() or None
    raise ValueError(f"field '{key}' is a {type(value).__name__}, not text")
