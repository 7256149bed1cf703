"""Time and outlet hints in questions: "this week", "on Tuesday", "in January", "according to the Harbour
Times"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import overload

from assistant.errors import AssistantError

_MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
_WEEKDAYS = {d: i for i, d in enumerate("monday tuesday wednesday thursday friday saturday sunday".split())}


_DAY = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})(?:[T ].*)?|(\d{4})-?W(\d{2})(?:-?([1-7]))?", re.I)


def parse_day(value: str | date) -> date:
    """A day from what a user or a caller may write: a calendar date (2025-06-03, 20250603, a time after it
    ignored) or an ISO week date (2025-W23-2 is that Tuesday; 2025-W23 its Monday).

    Raises AssistantError for anything else, e.g. "2025-13-01", "2025-W54" or "June".
    """
    if isinstance(value, date):
        return value
    text = str(value).strip()
    m = _DAY.fullmatch(text)
    try:
        if m and m.group(1):
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if m:
            return date.fromisocalendar(int(m.group(4)), int(m.group(5)), int(m.group(6) or 1))
    except ValueError as e:
        raise AssistantError(f"{text!r} is not a day of the calendar: {e}", "give dates as YYYY-MM-DD") from e
    raise AssistantError(f"{text!r} is not a date", "give dates as YYYY-MM-DD (or an ISO week date, 2025-W23-2)")


@overload
def date_int(day: date) -> int: ...
@overload
def date_int(day: str | date | None) -> int | None: ...
def date_int(day: str | date | None) -> int | None:
    """A day as the integer YYYYMMDD the store and the keyword index filter on (None for no day)."""
    if day is None or day == "":
        return None
    d = parse_day(day)
    return d.year * 10000 + d.month * 100 + d.day


@dataclass
class TimeWindow:
    start: date
    end: date

    def as_ints(self) -> tuple[int, int]:
        return date_int(self.start), date_int(self.end)


def parse_time_window(question: str, today: date) -> TimeWindow | None:
    """The date range a question refers to, relative to the day it is asked; None when it names none.

    Raises AssistantError when the range falls outside the calendar Python can represent (years 1-9999),
    e.g. "last week" asked on 0001-01-01: the caller's date is wrong, not the server.
    """
    try:
        return _window(question.lower(), today)
    except (OverflowError, ValueError) as e:
        raise AssistantError(f"cannot work out the dates of this question from the day {today.isoformat()}",
                             "send a real day as filters.today (YYYY-MM-DD), or ask about another period") from e


def _window(q: str, today: date) -> TimeWindow | None:
    if re.search(r"\b(today|tonight)\b", q):
        return TimeWindow(today - timedelta(days=1), today)
    if re.search(r"\byesterday\b", q):
        return TimeWindow(today - timedelta(days=2), today - timedelta(days=1))
    if re.search(r"\b(this|past|last) weekend\b", q):
        return TimeWindow(today - timedelta(days=(today.weekday() + 2) % 7 + 3), today)
    if re.search(r"\b(this|the past) week\b|\bthis past week\b|\bin recent days\b", q):
        return TimeWindow(today - timedelta(days=8), today)
    if re.search(r"\blast week\b", q):
        return TimeWindow(today - timedelta(days=14), today)
    if re.search(r"\b(this|the past) month\b", q):
        return TimeWindow(today - timedelta(days=31), today)
    if re.search(r"\blast month\b", q):
        return TimeWindow(today - timedelta(days=62), today)
    m = re.search(r"\b(on|last|this)\s+(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", q)
    if m:
        back = (today.weekday() - _WEEKDAYS[m.group(2)]) % 7 or 7
        day = today - timedelta(days=back)
        return TimeWindow(day - timedelta(days=1), min(today, day + timedelta(days=3)))
    m = re.search(r"\bin (early |late |mid-?)?(" + "|".join(_MONTHS) + r")(?:\s+(\d{4}))?\b", q)
    if m:
        month = _MONTHS[m.group(2)]
        year = int(m.group(3)) if m.group(3) else (today.year if month <= today.month else today.year - 1)
        start = date(year, month, 1)
        end = (date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)) - timedelta(days=1)
        return TimeWindow(start, min(end + timedelta(days=7), max(today, start)))
    m = re.search(r"\bin (19|20)(\d\d)\b", q)
    if m:
        year = int(m.group(1) + m.group(2))
        return TimeWindow(date(year, 1, 1), date(year, 12, 31))
    return None


_DATE_MENTION = re.compile(
    r"\b(?:\d{4}-\d{2}-\d{2}|(?:(?:" + "|".join(_MONTHS) + r"|" + "|".join(m[:3] for m in _MONTHS) + r")\.?"
    r"(?:\s+\d{1,2}(?:st|nd|rd|th)?)?(?:,?\s+(?:19|20)\d\d)?)|\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:"
    + "|".join(_MONTHS) + r")(?:,?\s+(?:19|20)\d\d)?|(?:19|20)\d\d|" + "|".join(_WEEKDAYS)
    + r"|yesterday|today|tonight|tomorrow|(?:last|next|this)\s+(?:week|month|year|weekend))\b", re.I)


def date_mentions(text: str) -> list[str]:
    """The dates a text states, lowercased as written ("june 3, 2025", "tuesday", "2019", "last week"); the
    extractive engine's date detector (no parse: it runs on every candidate sentence of an answer)."""
    found = [m.group().lower() for m in _DATE_MENTION.finditer(text)]
    return [d for d in found if d != "may"]  # "may" alone is the verb far more often than the month


def parse_sources(question: str, known_sources: list[str]) -> list[str]:
    """Outlets a question names ("according to the Harbour Times", "the Durnholt Gazette reported"), matched to
    known sources.

    The outlet's name must appear as written (outlets are proper nouns), so "this week" is not The Week.
    """
    found = []
    for source in known_sources:
        s = source.strip()
        if len(s) < 2:
            continue
        name = re.escape(s)
        if s.lower().startswith("the "):  # "according to the Week" / "The Week reported"
            name = r"[Tt]he\s+" + re.escape(s[4:].strip())
        cue_before = r"(?i:according to|reported by|per|from|in|by|says|said|on)\s+(?i:the\s+)?"
        cue_after = r"\s+(?i:reported|reports|says|said|wrote|writes)\b"
        if re.search(cue_before + name + r"\b", question) or re.search(r"(?<!\w)" + name + cue_after, question):
            found.append(source)
    return found
