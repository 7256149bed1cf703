"""Who said what: quote attribution scored against a hand-labelled set of real news text (issue #24).

    python -m bench attribution [--dataset DIR] [--extractor MODULE:FUNC] [--json]

The labels (bench/attribution/labels.jsonl, described in bench/attribution/README.md) hold offsets, a short
hash of each span and a speaker for every quote in the seed article and 32 articles of the realtimeqa
dataset, never the text: the text is read from --dataset (and corpus/ for the seed), and every hash is
checked first, so a changed dataset fails loudly instead of scoring against shifted offsets.

The extractor is `f(text) -> [obj with .start, .end, .kind ("direct"/"reported"), .speaker (str or None)]`,
run on each article's body (`--extractor MODULE:FUNC`), or `baseline` for the trivial one in this module
(quoted text, speaker = nearest capitalised name before a "said" in the sentence). The default, `ingest`, reads
each article as ingest does (assistant.index.quotebook.read_quotes: the title, then the body, offsets the
body's), so the figures are those of the archive's quotes.

Matching, per article and kind: a prediction and a labelled quote of the same kind match when their overlap
is at least half of the labelled span and half of the predicted span; each labelled quote takes at most
one prediction (largest overlap first). A prediction matching a span labelled "other" (scare quote, title)
is ignored. Speakers match after normalisation (case, accents' forms, punctuation, a leading "the", titles
such as "Dr."): equal to the label, to one of its aliases, or the same last word when no other speaker of
the article ends with it (organisation words like "Times" or "Institute" excepted); joint speakers ("A and
B", "A, B and C") as sets, part by part.

Per kind: attribution precision = of predictions carrying a speaker, the share on a labelled quote with the
right speaker (a speaker on an unlabelled span, on a quote whose speaker is unnamed, or the wrong person,
all count against it); recall = of labelled quotes with a named speaker, the share found with the right
speaker; span recall = labelled quotes matched at all; wrong = matched with another named speaker.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .common import ROOT, add_dataset

LABELS = Path(__file__).resolve().parent / "attribution" / "labels.jsonl"
SEED = ROOT / "corpus" / "russia-snubs-iran.txt"
SEED_URL = "seed:russia-snubs-iran"
DEFAULT_EXTRACTOR = "ingest"
KINDS = ("direct", "reported")
GOALS = {("direct", "precision"): 0.95, ("direct", "recall"): 0.85, ("reported", "precision"): 0.90}


@dataclass(frozen=True)
class Quote:
    start: int
    end: int
    kind: str
    speaker: str | None


class LabelsStale(Exception):
    """The text a label file points at is not the text it was labelled on."""


# ---------------------------------------------------------------- labels and texts


def seed_body(path: Path = SEED) -> str:
    """The seed's body as assistant.ingest.loaders gives it: the lines after the first (the title), leading
    blank lines dropped, trailing whitespace stripped. The seed's offsets refer to this string."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    return re.sub(r"^(?:[ \t]*\n)+", "", text.split("\n", 1)[1]).rstrip()


def load_labels(path: Path = LABELS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_texts(dataset: Path, seed: Path = SEED) -> dict[str, str]:
    """url -> body: the dataset's corpus.json and the seed."""
    return {url: body for url, (_, body) in load_articles(dataset, seed).items()}


def load_articles(dataset: Path, seed: Path = SEED) -> dict[str, tuple[str, str]]:
    """url -> (title, body): the dataset's corpus.json and the seed (its title is its first line)."""
    corpus = json.loads((dataset / "corpus.json").read_text(encoding="utf-8"))
    articles = {a["url"]: (a.get("title") or "", a["body"]) for a in corpus if a.get("url")}
    articles[SEED_URL] = (seed.read_text(encoding="utf-8").split("\n", 1)[0].strip(), seed_body(seed))
    return articles


def sha1_8(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def check(rows: list[dict], texts: dict[str, str]) -> None:
    """Raise LabelsStale naming every article missing or span whose hash no longer matches."""
    problems = []
    for row in rows:
        text = texts.get(row["url"])
        if text is None:
            problems.append(f"{row['url']}: not in the dataset")
            continue
        for q in row["quotes"]:
            if sha1_8(text[q["start"]:q["end"]]) != q["sha1_8"]:
                problems.append(f"{row['url']}: span {q['start']}-{q['end']} no longer has hash {q['sha1_8']}")
    if problems:
        raise LabelsStale(f"{len(problems)} label(s) do not match the text:\n  " + "\n  ".join(problems[:20]))


# ---------------------------------------------------------------- speakers

TITLES = {"dr", "mr", "mrs", "ms", "prof", "sir", "dame"}
ORG_WORDS = {"times", "post", "news", "service", "services", "department", "institute", "university",
             "council", "committee", "agency", "ministry", "office", "party", "group", "house", "association",
             "project", "survey", "bureau", "commission", "court", "police", "company", "government",
             "center", "centre", "guardian", "independent", "journal", "press", "administration"}
JOINT = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+|\s*&\s*")


def normalise(name: str) -> str:
    name = unicodedata.normalize("NFKC", name).casefold().replace("’", "'")
    words = re.sub(r"[^\w\s'-]", " ", name).split()
    while words and (words[0] == "the" or words[0] in TITLES):
        words = words[1:]
    return " ".join(words)


def _last(name: str) -> str:
    words = normalise(name).split()
    return words[-1] if words else ""


def _parts(name: str) -> list[str]:
    return [p for p in JOINT.split(name) if p.strip()]


def same_speaker(predicted: str, label: str, aliases: dict[str, list[str]] | None = None,
                 others: Iterable[str] = ()) -> bool:
    """Whether `predicted` names the labelled speaker: equal after normalisation, one of its aliases, or the
    same last word when none of `others` (the article's other speakers) ends with it; joint speakers part by
    part, as sets."""
    aliases = aliases or {}
    p = normalise(predicted)
    if not p:
        return False
    if p == normalise(label) or p in {normalise(a) for a in aliases.get(label, [])}:
        return True
    last = _last(label)
    if len(_parts(label)) == 1:
        if last and last not in ORG_WORDS and p.split()[-1] == last and len(normalise(label).split()) > 1:
            return not any(_last(o) == last for name in others for o in _parts(name)
                           if normalise(o) != normalise(label))
        return False
    want, got = _parts(label), _parts(predicted)
    if len(want) != len(got):
        return False
    left = list(want)
    for g in got:  # greedy is enough for two or three names
        hit = next((w for w in left if same_speaker(g, w, aliases, others)), None)
        if hit is None:
            return False
        left.remove(hit)
    return True


# ---------------------------------------------------------------- scoring


def overlap(a_start: int, a_end: int, b_start: int, b_end: int) -> int:
    return max(0, min(a_end, b_end) - max(a_start, b_start))


def spans_match(pred: Quote, label: Quote) -> bool:
    """Overlap of at least half the labelled span and half the predicted span."""
    o = overlap(pred.start, pred.end, label.start, label.end)
    return o > 0 and 2 * o >= label.end - label.start and 2 * o >= pred.end - pred.start


def as_quotes(row: dict) -> list[Quote]:
    return [Quote(q["start"], q["end"], q["kind"], q["speaker"]) for q in row["quotes"]]


def empty_counts() -> dict[str, int]:
    return {"labelled": 0, "labelled_named": 0, "predicted": 0, "predicted_named": 0, "ignored_other": 0,
            "span_found": 0, "correct": 0, "wrong_speaker": 0, "named_unnamed": 0, "spurious": 0}


def score_article(text: str, row: dict, predicted: list, counts: dict[str, dict[str, int]]) -> list[dict]:
    """Add one article's figures to counts (kind -> counter); return its wrong-speaker cases (offsets)."""
    labels = as_quotes(row)
    aliases = row.get("aliases", {})
    speakers = sorted({q.speaker for q in labels if q.speaker})
    others = [q for q in labels if q.kind == "other"]
    wrong = []
    for kind in KINDS:
        c = counts[kind]
        gold = [q for q in labels if q.kind == kind]
        preds = [Quote(int(p.start), int(p.end), p.kind, p.speaker) for p in predicted if p.kind == kind]
        c["labelled"] += len(gold)
        c["labelled_named"] += sum(q.speaker is not None for q in gold)
        pairs = sorted(((overlap(p.start, p.end, g.start, g.end), i, j) for i, p in enumerate(preds)
                        for j, g in enumerate(gold) if spans_match(p, g)), reverse=True)
        taken_p, taken_g = {}, set()
        for _, i, j in pairs:
            if i not in taken_p and j not in taken_g:
                taken_p[i] = j
                taken_g.add(j)
        c["span_found"] += len(taken_g)
        for i, p in enumerate(preds):
            if i not in taken_p and any(spans_match(p, o) for o in others):
                c["ignored_other"] += 1
                continue
            c["predicted"] += 1
            if not p.speaker:
                continue
            c["predicted_named"] += 1
            if i not in taken_p:
                c["spurious"] += 1
                continue
            g = gold[taken_p[i]]
            if g.speaker is None:
                c["named_unnamed"] += 1
            elif same_speaker(p.speaker, g.speaker, aliases, speakers):
                c["correct"] += 1
            else:
                c["wrong_speaker"] += 1
                wrong.append({"url": row["url"], "kind": kind, "start": g.start, "end": g.end,
                              "label": g.speaker, "predicted": p.speaker})
    return wrong


def score(items: list[tuple[str, dict]], extractor: Callable[..., list], titles: list[str] | None = None) -> dict:
    """items: (text, label row) pairs (with `titles`, the extractor is called as f(text, title)). Returns
    {kind: figures}, "wrong": [...], "articles": n."""
    counts = {kind: empty_counts() for kind in KINDS}
    wrong: list[dict] = []
    for k, (text, row) in enumerate(items):
        predicted = extractor(text) if titles is None else extractor(text, titles[k])
        wrong += score_article(text, row, list(predicted), counts)
    out: dict = {"articles": len(items), "wrong": wrong}
    for kind, c in counts.items():
        ratio = lambda a, b: round(a / b, 3) if b else None  # noqa: E731
        out[kind] = dict(c, precision=ratio(c["correct"], c["predicted_named"]),
                         recall=ratio(c["correct"], c["labelled_named"]),
                         span_recall=ratio(c["span_found"], c["labelled"]))
    return out


def misses(text: str, row: dict, predicted: list) -> list[dict]:
    """One article's failures, for --misses: every named label not given its speaker ("missed": no span or no
    speaker, "wrong": another named speaker) and every speaker on no labelled quote ("spurious"), with the
    paragraph around it."""
    labels = as_quotes(row)
    aliases = row.get("aliases", {})
    speakers = sorted({q.speaker for q in labels if q.speaker})
    others = [q for q in labels if q.kind == "other"]
    out = []
    for kind in KINDS:
        gold = [q for q in labels if q.kind == kind]
        preds = [p for p in predicted if p.kind == kind]
        for g in gold:
            match = max((p for p in preds if spans_match(p, g)), default=None,
                        key=lambda p: overlap(p.start, p.end, g.start, g.end))
            if g.speaker is None:
                if match is not None and match.speaker:
                    out.append(_miss("unnamed", kind, text, g.start, g.end, None, match.speaker, row["url"]))
                continue
            if match is None or not match.speaker:
                out.append(_miss("missed" if match is not None else "no span", kind, text, g.start, g.end,
                                 g.speaker, None, row["url"]))
            elif not same_speaker(match.speaker, g.speaker, aliases, speakers):
                out.append(_miss("wrong", kind, text, g.start, g.end, g.speaker, match.speaker, row["url"]))
        for p in preds:
            if p.speaker and not any(spans_match(p, g) for g in gold) and not any(spans_match(p, o) for o in others):
                out.append(_miss("spurious", kind, text, p.start, p.end, None, p.speaker, row["url"]))
    return out


def _miss(what: str, kind: str, text: str, start: int, end: int, label: str | None, predicted: str | None,
          url: str) -> dict:
    lo = text.rfind("\n\n", 0, start)
    prev = text.rfind("\n\n", 0, max(lo, 0))
    hi = text.find("\n\n", end)
    context = text[max(prev, 0):hi if hi >= 0 else len(text)].strip()
    return {"what": what, "kind": kind, "url": url, "start": start, "end": end, "label": label,
            "predicted": predicted, "span": text[start:end], "context": context}


# ---------------------------------------------------------------- the trivial baseline

QUOTED = re.compile(r'["“]([^"“”\n]+)["”]')
SAID = re.compile(r"\b(?:said|says)\b")
NAME = re.compile(r"[A-Z][\w'’.-]*(?:\s+(?:[A-Z][\w'’.-]*|de|del|van|von|bin))*")
NOT_NAMES = {"He", "She", "They", "It", "We", "I", "The", "But", "And", "In", "On", "A", "An", "This", "That",
             "Then", "When", "While", "As", "At", "For", "If", "So", "Also", "Still", "Yet"}
REPORTED = re.compile(r"\b(?:said|says)\s+that\s+([^.!?\n“”\"]+)")


def _sentence(text: str, start: int, end: int) -> tuple[int, int]:
    """Bounds of the sentence holding text[start:end], cut at newlines and at . ! ? followed by a space."""
    left = text.rfind("\n", 0, start) + 1
    cuts = [left + m.end() for m in re.finditer(r"[.!?][\"”’]?\s", text[left:start])]
    left = cuts[-1] if cuts else left
    nl = text.find("\n", end)
    right = len(text) if nl < 0 else nl
    m = re.search(r"[.!?](?=\s|$)", text[end:right])
    return left, (end + m.end()) if m else right


def _speaker_before_said(window: str) -> str | None:
    """The capitalised name nearest before the first "said"/"says" of window (quoted text blanked)."""
    said = SAID.search(window)
    if not said:
        return None
    names = []
    for m in NAME.finditer(window[:said.start()]):
        words = m.group().split()
        while words and words[0] in NOT_NAMES:
            words = words[1:]
        if words:
            names.append(" ".join(words).rstrip(".,"))
    return names[-1] if names else None


def baseline(text: str) -> list[Quote]:
    """Text between quotation marks (direct), "<Name> said that <clause>" (reported); speaker = the nearest
    capitalised name before a "said"/"says" within the sentence, outside the quoted text."""
    blank = QUOTED.sub(lambda m: m.group()[0] + " " * (len(m.group()) - 2) + m.group()[-1], text)
    out = []
    for m in QUOTED.finditer(text):
        s, e = _sentence(text, m.start(), m.end())
        out.append(Quote(m.start(1), m.end(1), "direct", _speaker_before_said(blank[s:e])))
    for m in REPORTED.finditer(blank):
        s, _ = _sentence(text, m.start(), m.end())
        clause = text[m.start(1):m.end(1)].rstrip()
        out.append(Quote(m.start(1), m.start(1) + len(clause), "reported", _speaker_before_said(blank[s:m.end()])))
    return out


# ---------------------------------------------------------------- command line


def ingest(body: str, title: str) -> list:
    """The quotes the archive stores for an article: read as ingest reads it (in NFC, title first), offsets
    mapped back to the labelled body's."""
    from assistant.index.quotebook import read_quotes
    from assistant.ingest.decoding import nfc

    stored, back = nfc(body), nfc_offsets(body)
    assert len(back) == len(stored) + 1, "a combining sequence composed across its start"
    quotes = (read_quotes([(nfc(title), stored)]) or [[]])[0]
    return [dataclasses.replace(q, start=back[q.start], end=back[q.end]) for q in quotes]


def nfc_offsets(text: str) -> list[int]:
    """For each offset of NFC(text) (and its end), the offset in text: each character that starts a combining
    sequence is normalised with its marks, as a unit."""
    back: list[int] = []
    starts = [i for i, ch in enumerate(text) if i == 0 or not unicodedata.combining(ch)] + [len(text)]
    for a, b in zip(starts, starts[1:]):
        back += [a] * len(unicodedata.normalize("NFC", text[a:b]))
    return back + [len(text)]


def load_extractor(spec: str) -> Callable[..., list]:
    if spec == "baseline":
        return baseline
    if spec == "ingest":
        return ingest
    module, _, func = spec.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise SystemExit(f"attribution: extractor module {module} does not exist (yet); "
                             f"run with --extractor baseline, or MODULE:FUNC") from None
        raise
    if not hasattr(mod, func or "quotes_of"):
        raise SystemExit(f"attribution: {module} has no function {func!r}")
    return getattr(mod, func or "quotes_of")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_dataset(ap)
    ap.add_argument("--extractor", default=DEFAULT_EXTRACTOR,
                    help="'ingest' (title, then body, as ingest reads an article), MODULE:FUNC, f(body) -> quotes "
                         "with .start .end .kind .speaker, or 'baseline' for the trivial one in "
                         "bench/attribution.py (default: %(default)s)")
    ap.add_argument("--labels", type=Path, default=LABELS, help="label file (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--misses", action="store_true",
                    help="list every missed, wrong, unnamed-given-a-name and spurious speaker with its paragraph "
                         "and the one before (quotes the dataset's text: for local reading only, never commit it)")


def run(args: argparse.Namespace) -> None:
    rows = load_labels(args.labels)
    articles = load_articles(args.dataset)
    texts = {url: body for url, (_, body) in articles.items()}
    try:
        check(rows, texts)
    except LabelsStale as e:
        raise SystemExit(f"attribution: the dataset changed under the labels ({args.dataset}): {e}") from None
    extractor = load_extractor(args.extractor)
    titled = args.extractor == "ingest"
    if args.misses:
        for r in rows:
            text = texts[r["url"]]
            predicted = extractor(text, articles[r["url"]][0]) if titled else extractor(text)
            for m in misses(text, r, list(predicted)):
                print(f"== {m['what']} {m['kind']} {m['url']} {m['start']}:{m['end']} label={m['label']!r} "
                      f"predicted={m['predicted']!r}\n-- span: {m['span']}\n-- context:\n{m['context']}\n")
        return
    result = score([(texts[r["url"]], r) for r in rows], extractor,
                   [articles[r["url"]][0] for r in rows] if titled else None)
    result["extractor"] = args.extractor
    result["goals"] = {f"{k}_{m}": v for (k, m), v in GOALS.items()}
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
        return
    print(f"extractor {args.extractor}; {result['articles']} articles, labels {args.labels.name}")
    print(f"{'kind':>9} {'labelled':>8} {'named':>6} {'predicted':>9} {'w/ speaker':>10} {'precision':>9} "
          f"{'goal':>5} {'recall':>6} {'goal':>5} {'span_recall':>11} {'wrong':>5} {'unnamed':>7} "
          f"{'spurious':>8}")
    for kind in KINDS:
        r = result[kind]
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        goal = lambda m: f"{GOALS[(kind, m)]:.2f}" if (kind, m) in GOALS else "-"  # noqa: E731
        print(f"{kind:>9} {r['labelled']:8d} {r['labelled_named']:6d} {r['predicted']:9d} "
              f"{r['predicted_named']:10d} {fmt(r['precision']):>9} {goal('precision'):>5} "
              f"{fmt(r['recall']):>6} {goal('recall'):>5} {fmt(r['span_recall']):>11} {r['wrong_speaker']:5d} "
              f"{r['named_unnamed']:7d} {r['spurious']:8d}")
    print("wrong = matched span, another named speaker; unnamed = a speaker on a quote whose speaker is "
          "unnamed; spurious = a speaker on no labelled quote of that kind")
