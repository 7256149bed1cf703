"""Where the work tree, its corpus and the seed article are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "corpus"
SEED = CORPUS / "russia-snubs-iran.txt"
DATA = ROOT / "tests" / "data"
