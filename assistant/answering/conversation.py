"""A conversation's follow-ups: the earlier turns the chain reads, a follow-up made a standalone question by
rule, and whether the passages found for a follow-up hold its own words."""

from __future__ import annotations

import re
from typing import Any

from assistant.answering.retrieval import key_terms
from assistant.models import Passage
from assistant.text.words import stem, token_set

MAX_TURNS = 6  # earlier turns the chain reads; older ones are dropped
_FOLLOW_UP = re.compile(r"^(and|what about|how about|but|so|also|then)\b|\b(it|that|this|they|them|he|she|"
                        r"his|her|their|there|those|these)\b", re.I)


def history_pairs(history: Any) -> list[tuple[str, str]]:
    """Earlier turns as (question, answer) pairs, from pairs or {"question", "answer"} dicts; the last 6."""
    pairs = []
    for turn in history or []:
        if isinstance(turn, dict):
            pairs.append((str(turn.get("question") or ""), str(turn.get("answer") or "")))
        else:
            q, a = turn
            pairs.append((str(q), str(a)))
    return pairs[-MAX_TURNS:]


def own_terms(question: str, history: list[tuple[str, str]] | None) -> set[str]:
    """The stems a follow-up adds to the conversation: its key terms that the previous question lacks."""
    if not history:
        return set()
    previous = {stem(t) for t in key_terms(history[-1][0])}
    return {stem(t) for t in key_terms(question)} - previous


def follow_up_found(question: str, history: list[tuple[str, str]] | None, passages: list[Passage]) -> bool:
    """Whether a follow-up's own words occur in the passages found for it (true when it adds none).

    The carried topic helps retrieval find the story again, but "What is the capital of Norrheim?" after a
    question about Norrheim's herring quotas must not be answered with the herring story.
    """
    own = own_terms(question, history)
    if not own:
        return True
    found = {stem(t) for p in passages for t in token_set(f"{p.title} {p.text}")}
    return bool(own & found)


def standalone_question(question: str, history: list[tuple[str, str]] | None) -> str:
    """Extractive follow-ups: a short or pronoun-led question carries the previous question's topic."""
    if not history:
        return question
    previous = history[-1][0]
    if len(question.split()) <= 6 or _FOLLOW_UP.search(question):
        return f"{question} ({previous})"
    return question
