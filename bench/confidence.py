"""Retrieval confidence at several archive sizes: is one refusal threshold right for 1, ~100 and 1,941 articles?

    python -m bench confidence [--dataset DIR] --data-dir DIR [--questions 20]

Archives (all built from the dev set, cached under DIR/confidence/ except the full one, which is the eval
store `assistant eval` builds):
- 1 article: each of N answerable questions asked of an archive holding only one of its evidence articles
  that states the answer and was published in the fortnight before the question (the dev set's older
  evidence articles mostly hold the answer string by coincidence: asked alone, they rightly score low); each
  of N null questions asked of an archive holding one article picked by hash;
- ~100 articles: the evidence articles of N answerable questions plus articles picked by hash up to 100,
  asked every one of those questions and every null question;
- the full archive (1,941 articles), asked every question (and the answerable ones with fortnight evidence
  shown apart);
- corpus/ (the seed article), asked the seed questions of issue #13 (answerable) and two it cannot answer.
For each archive size it prints the confidence distribution of answerable and null questions under the
configured rule (`Retriever.confidence`: sqrt(information) weights, stems of lemmas) and under the
alternatives measured for issue #13 (archive-idf: the rule before it), their separation
(AUC), and the share refused at a few thresholds. On the full archive it also prints the eval's refusal rate,
false-refusal rate and answer accuracy per threshold (as `bench refusal`, from one answer per question).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import statistics
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from .common import ROOT, add_data_dir, add_dataset

THRESHOLDS = (0.40, 0.45, 0.48, 0.50, 0.55)
EVAL_THRESHOLDS = (0.40, 0.42, 0.45, 0.46, 0.47, 0.48, 0.49, 0.50, 0.52, 0.55)
SEED_ANSWERABLE = ["Did Russia offer Iran military help?", "What did Peskov say about BRICS?",
                   "Who condemned the US and Israeli attacks on Iran?", "Did Russia intervene militarily?",
                   "What did Putin say in his telegram to Pezeshkian?"]
SEED_NULL = ["What did the Pope say about the Brazilian election?", "Who won the 2022 World Cup?",
             "What is the capital of Iran?", "How much did the new harbour bridge cost?"]


@dataclass
class Case:
    size: str
    null: bool
    scores: dict[str, float] = field(default_factory=dict)
    correct: bool = False  # the extractive reply holds the gold answer (full archive only)


def _hash(s: str) -> str:
    return hashlib.sha1(s.encode()).hexdigest()


def lemma_stem(term: str) -> str:
    import simplemma

    from assistant.text import words

    return term if term[:1].isdigit() else words.stem(simplemma.lemmatize(term, lang="en").lower())


def variants(assistant, question: str, retrieval) -> dict[str, float]:
    """Confidence of one retrieval under the configured rule and the alternatives."""
    from assistant.answering.retrieval import key_terms
    from assistant.text import words

    passages = retrieval.passages[:3]
    if not passages:
        return {k: 0.0 for k in ("configured", "archive-idf", "info", "info+stems", "sqrt(info)+stems",
                                 "sqrt(info)+stems of lemmas", "blend+stems")}
    qvec = retrieval.query_vector
    vectors = assistant.store.vectors([p.chunk_id for p in passages])
    sim = max((float(v @ qvec) for v in vectors.values()), default=0.0)
    terms = key_terms(question)
    texts = [p.title + " " + p.text for p in passages]
    idf = assistant.lexical.idf(terms) if terms else {}
    n = len(assistant.lexical)

    def coverage(weights: dict[str, float], stems) -> float:
        if not terms:
            return 0.0
        key = stems if callable(stems) else words.stem if stems else (lambda t: t)
        total = sum(weights.values()) or 1.0
        best = 0.0
        for text in texts:
            have = {key(t) for t in words.token_set(text)}
            best = max(best, sum(w for t, w in weights.items() if key(t) in have) / total)
        return best

    digit = lambda t: 1.5 if t.isdigit() else 1.0  # noqa: E731
    archive = {t: idf.get(t, 1.0) * digit(t) for t in terms}
    info = {t: words.information(t) * digit(t) for t in terms}
    a_tot, alpha = sum(archive.values()) or 1.0, n / (n + 1000)
    blend = {t: alpha * archive[t] / a_tot + (1 - alpha) * digit(t) / sum(map(digit, terms)) for t in terms}
    conf = lambda cov: max(0.0, min(1.0, 0.6 * sim + 0.4 * cov))  # noqa: E731
    sqrt_info = {t: math.sqrt(w) for t, w in info.items()}
    return {"configured": retrieval.confidence, "archive-idf": conf(coverage(archive, False)),
            "info": conf(coverage(info, False)), "info+stems": conf(coverage(info, True)),
            "sqrt(info)+stems": conf(coverage(sqrt_info, True)),
            "sqrt(info)+stems of lemmas": conf(coverage(sqrt_info, lemma_stem)),
            "blend+stems": conf(coverage(blend, True))}


def store_for(base: Path, name: str, articles) -> object:
    """An Assistant over a cached store holding exactly these articles."""
    from assistant.answering.chain import Assistant
    from assistant.config import load_settings
    from assistant.ingest.ingestor import Ingestor

    settings = load_settings(data_dir=str(base / name))
    marker = settings.data_dir / "built"
    if not marker.exists():
        report = Ingestor(settings).ingest_articles(list(articles))
        assert not report.failed, report.failed
        marker.write_text(str(report.added))
    return Assistant(settings)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_dataset(ap)
    add_data_dir(ap, required=True, help="data dir of the dataset's eval store (eval/<key>, built if missing) and "
                 "of the small archives (confidence/)")
    ap.add_argument("--questions", type=int, default=20, help="answerable (and null) questions per small archive")


def run(args: argparse.Namespace) -> None:
    from assistant.answering.chain import Assistant
    from assistant.answering.retrieval import Filters
    from assistant.config import load_settings
    from assistant.eval.dataset import ensure_store, load_dataset
    from assistant.eval.metrics import contains_answer
    from assistant.ingest.loaders import load_paths

    dataset = load_dataset(args.dataset)
    base = Path(args.data_dir) / "confidence"
    by_url = {a.url: a for a in dataset.articles}
    answerable = sorted((q for q in dataset.queries if not q.is_null), key=lambda q: _hash(q.query))
    nulls = [q for q in dataset.queries if q.is_null]
    cases: list[Case] = []

    def ask(assistant, q, size: str, null: bool, today: str | None = None, answer: bool = False) -> None:
        r = assistant.retriever.retrieve(q, Filters(today=today))
        case = Case(size, null, variants(assistant, q, r))
        if answer and not null:
            case.correct = contains_answer("".join(assistant.extractive.stream(q, r.passages)), answers[q])
        cases.append(case)

    # 1 article
    def fortnight(q, a) -> bool:
        if not (q.question_date and a.published_at):
            return False
        return -2 <= (date.fromisoformat(q.question_date) - date.fromisoformat(a.published_at[:10])).days <= 14

    picked = []
    for q in answerable:
        ev = next((by_url[u] for u in q.evidence_urls if u in by_url and contains_answer(by_url[u].body, q.answers)
                   and fortnight(q, by_url[u])), None)
        if ev is not None:
            picked.append((q, ev))
        if len(picked) == args.questions:
            break
    others = sorted(dataset.articles, key=lambda a: _hash(a.url or a.id))
    for i, (q, ev) in enumerate(picked):
        ask(store_for(base, f"one-{_hash(ev.url)[:12]}", [ev]), q.query, "1 article", False, q.question_date)
    for q, art in zip(nulls[: args.questions], others):
        ask(store_for(base, f"one-{_hash(art.url or art.id)[:12]}", [art]), q.query, "1 article", True,
            q.question_date)
    print(f"1-article archives: {len(picked)} answerable, {min(len(nulls), args.questions)} null", file=sys.stderr)

    # ~100 articles
    chosen = {u: by_url[u] for q, _ in picked for u in q.evidence_urls if u in by_url}
    for a in others:
        if len(chosen) >= 100:
            break
        chosen.setdefault(a.url, a)
    hundred = store_for(base, f"hundred-{_hash(' '.join(sorted(chosen)))[:12]}", chosen.values())
    for q, _ in picked:
        ask(hundred, q.query, f"{len(chosen)} articles", False, q.question_date)
    for q in nulls:
        ask(hundred, q.query, f"{len(chosen)} articles", True, q.question_date)

    # full archive, with answers for the eval's figures
    answers = {q.query: q.answers for q in dataset.queries}
    n = len(dataset.articles)
    full_label, fortnight_label = f"all {n:,} articles", f"all {n:,}, fortnight"  # 1,941 on the dev set
    full = Assistant(ensure_store(load_settings(data_dir=args.data_dir), dataset))
    for q in dataset.queries:
        ask(full, q.query, full_label, q.is_null, q.question_date, answer=True)
        recent = any(fortnight(q, by_url[u]) for u in q.evidence_urls if u in by_url)
        if recent and not q.is_null:
            cases.append(Case(fortnight_label, False, cases[-1].scores, cases[-1].correct))

    # the seed
    articles = load_paths([ROOT / "corpus"]).articles
    seed = store_for(base, "seed", articles)
    for q in SEED_ANSWERABLE:
        ask(seed, q, "seed (1 article)", False)
    for q in SEED_NULL:
        ask(seed, q, "seed (1 article)", True)

    report(cases, full_label, fortnight_label)


def report(cases: list[Case], full_label: str, fortnight_label: str) -> None:
    names = list(cases[0].scores)
    sizes = list(dict.fromkeys(c.size for c in cases))
    for name in names:
        print(f"\n## {name}")
        print(f"{'archive':>18} {'group':>10} {'n':>3} {'min':>6} {'p25':>6} {'median':>6} {'p75':>6} {'max':>6} "
              f"{'AUC':>6} " + " ".join(f"<{t:.2f}" for t in THRESHOLDS))
        for size in sizes:
            groups = {g: [c.scores[name] for c in cases if c.size == size and c.null == (g == "null")]
                      for g in ("answerable", "null")}
            pos, neg = groups["answerable"], groups["null"]
            auc = (sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
                   if pos and neg else math.nan)
            for g, xs in groups.items():
                if not xs:
                    continue
                q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
                below = " ".join(f"{sum(x < t for x in xs) / len(xs):5.2f}" for t in THRESHOLDS)
                print(f"{size:>18} {g:>10} {len(xs):3d} {min(xs):6.3f} {q[0]:6.3f} {q[1]:6.3f} {q[2]:6.3f} "
                      f"{max(xs):6.3f} {auc if g == 'answerable' else math.nan:6.3f} {below}")
        recent = [c for c in cases if c.size == fortnight_label]
        if recent:
            row = [f"t={t:.2f}: false {sum(c.scores[name] < t for c in recent) / len(recent):.3f} accuracy "
                   f"{sum(c.correct and c.scores[name] >= t for c in recent) / len(recent):.3f}"
                   for t in EVAL_THRESHOLDS]
            print(f"  fortnight subset ({len(recent)} answerable) by threshold:\n    " + "\n    ".join(row))
        full = [c for c in cases if c.size == full_label]
        if full:
            ans = [c for c in full if not c.null]
            nul = [c for c in full if c.null]
            row = []
            for t in EVAL_THRESHOLDS:
                refusal = sum(c.scores[name] < t for c in nul) / len(nul)
                false = sum(c.scores[name] < t for c in ans) / len(ans)
                acc = sum(c.correct and c.scores[name] >= t for c in ans) / len(ans)
                row.append(f"t={t:.2f}: refusal {refusal:.3f} false {false:.3f} accuracy {acc:.3f}")
            print("  full archive eval figures by threshold:\n    " + "\n    ".join(row))

