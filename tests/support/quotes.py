"""The fictional quote articles of tests/data/quotes/ and their labels, dated and given invented outlets."""

from __future__ import annotations

import json
from dataclasses import replace

from assistant.ingest.loaders import load_paths
from tests.support.paths import ROOT

DATA = ROOT / "tests" / "data" / "quotes"
GOLD = json.loads((DATA / "gold.json").read_text(encoding="utf-8"))
TEXTS = sorted(DATA.glob("*.txt"))
OUTLETS = ("Orrin Gazette", "Calder Courier", "Vellmar Post")


def dated_articles() -> list:
    """The nine fictional articles, each with a day of March 2025, an invented outlet and a .example URL."""
    out = []
    for i, a in enumerate(load_paths(TEXTS).articles):
        out.append(replace(a, id="", source=OUTLETS[i % 3], published_at=f"2025-03-{i + 1:02d}",
                           url=f"https://news-{i}.example/story"))
    return out


def gold_of(a) -> list[dict]:
    """The labelled quotes of an article's body (a headline quote is the title's, not the body's)."""
    name = next(p.name for p in TEXTS if p.read_text(encoding="utf-8").startswith(a.title))
    return [g for g in GOLD[name] if g["quote"] not in a.title]
