"""Answer quality on the realtimeqa-news dev set: accuracy, refusals, citation precision, vs a naive engine.

    python bench/answer_quality.py [--data-dir /work/cache/answers-store] [--thresholds 0.3,0.35,0.4]

Ingests corpus.json into the data dir once (re-runs reuse it). Each query is asked with today = its
question_date. Accuracy: the reply states one of `answers` (case-insensitive, curly quotes normalized) and is not
refused. Refusal rate: over the null_query questions; false refusals: over the answerable ones. Citation
precision: share of answer sentences whose cited passage supports them (assistant.citations.check_support).
The naive engine answers with the top passage, cited [1]. Retrieval runs once per query; each refusal threshold
(answer.min_confidence) is applied to the same retrievals, so a sweep costs one pass.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.answering.chain import Assistant  # noqa: E402
from assistant.answering.citations import check_support, cite  # noqa: E402
from assistant.answering.retrieval import Filters  # noqa: E402
from assistant.config import load_settings  # noqa: E402
from assistant.ingest.ingestor import Ingestor  # noqa: E402

DATASET = Path("/work/shared/datasets/realtimeqa-news")
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


def norm(text: str) -> str:
    return text.translate(_QUOTES).lower()


def run(args: argparse.Namespace) -> dict:
    settings = load_settings(data_dir=args.data_dir)
    assistant = Assistant(settings)
    if assistant.store.count() == 0:
        print(f"ingesting {args.dataset / 'corpus.json'} into {args.data_dir} (once)", file=sys.stderr)
        Ingestor(settings).ingest_paths([args.dataset / "corpus.json"])
        assistant = Assistant(settings)
    queries = json.loads((args.dataset / "queries.json").read_text())[:: args.every][: args.limit or None]
    embed = assistant.store.embedder.embed
    rows = []
    t0 = time.time()
    for q in queries:
        retrieval = assistant.retriever.retrieve(q["query"], Filters(today=q["question_date"]))
        row = {"query": q["query"], "answers": q["answers"], "null": q["question_type"] == "null_query",
               "confidence": retrieval.confidence}
        passages = retrieval.passages
        engines = {"extractive": "".join(assistant.extractive.stream(q["query"], passages)),
                   "naive": f"{passages[0].text} [1]" if passages else ""}
        for name, text in engines.items():
            cited = cite(text, passages)
            support = check_support(cited, embed) if cited.citations else None
            row[name] = {"text": cited.text, "empty": not cited.citations,
                         "sentences": len(support.sentences) if support else 0,
                         "supported": sum(1 for *_, s in support.sentences if s >= 0.5) if support else 0,
                         "hit": any(norm(a) in norm(cited.text) for a in q["answers"])}
        rows.append(row)
        print(f"{len(rows)}/{len(queries)} conf={row['confidence']:.2f} hit={row['extractive']['hit']} "
              f"null={row['null']} {q['query'][:60]}", file=sys.stderr)
    seconds = time.time() - t0
    report = {"queries": len(rows), "answerable": sum(not r["null"] for r in rows),
              "unanswerable": sum(r["null"] for r in rows), "seconds_per_query": round(seconds / len(rows), 3),
              "by_threshold": {}}
    for th in args.thresholds:
        report["by_threshold"][str(th)] = {name: metrics(rows, name, th) for name in ("extractive", "naive")}
    if args.rows:
        Path(args.rows).write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    return report


def metrics(rows: list[dict], engine: str, threshold: float) -> dict:
    """The four figures for one engine at one refusal threshold."""
    def refused(r):
        return r["confidence"] < threshold or r[engine]["empty"]

    ans = [r for r in rows if not r["null"]]
    null = [r for r in rows if r["null"]]
    answered = [r for r in rows if not refused(r)]
    sentences = sum(r[engine]["sentences"] for r in answered)
    return {
        "answer_accuracy": round(sum(r[engine]["hit"] and not refused(r) for r in ans) / max(1, len(ans)), 3),
        "refusal_rate_unanswerable": round(sum(refused(r) for r in null) / max(1, len(null)), 3),
        "false_refusal_rate": round(sum(refused(r) for r in ans) / max(1, len(ans)), 3),
        "citation_precision": round(sum(r[engine]["supported"] for r in answered) / max(1, sentences), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/work/cache/answers-store")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--thresholds", default="0.35",
                        type=lambda s: [float(x) for x in s.split(",")], help="answer.min_confidence values")
    parser.add_argument("--limit", type=int, default=0, help="only the first N queries")
    parser.add_argument("--every", type=int, default=1, help="only every K-th query (a quicker, spread sample)")
    parser.add_argument("--rows", help="write per-query rows (answers, confidence) to this JSON file")
    print(json.dumps(run(parser.parse_args()), indent=1))


if __name__ == "__main__":
    main()
