"""Benchmark a dataset through retrieval and answering (ours, and the baselines asked for); the metrics
are in `assistant.eval.metrics`, the dataset and its cached store in `assistant.eval.dataset`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.errors import CorpusError
from assistant.eval.baselines import NaivePipeline, run_bm25, with_top_chunk_answers
from assistant.eval.dataset import Dataset, Progress, ensure_store, load_dataset
from assistant.eval.metrics import SUMMARY_KEYS, TOP, QueryResult, SystemRun, retrieved_from

log = logging.getLogger(__name__)


def run_ours(settings: Settings, dataset: Dataset, limit: int | None = None, answer: bool = True,
             progress: Progress | None = None, name: str = "ours") -> SystemRun:
    """Our pipeline on every question: top-10 retrieval for the metrics, the first k passages answered."""
    from assistant.answering.chain import Assistant
    from assistant.answering.retrieval import Filters, Retrieval

    assistant = Assistant(settings)
    queries = dataset.queries[:limit] if limit else dataset.queries
    k = settings.retrieval.k
    assistant.retriever.retrieve("warm up the model and the indexes")  # load time is not query latency
    results = []
    t0 = time.perf_counter()
    for i, q in enumerate(queries):
        t = time.perf_counter()
        r = assistant.retriever.retrieve(q.query, Filters(today=q.question_date), k=max(TOP, k))
        latency = time.perf_counter() - t
        ans = None
        if answer:
            ans = assistant.answer_retrieval(q.query, Retrieval(r.passages[:k], r.confidence, r.window,
                                                                r.query_vector))
        results.append(QueryResult(q, retrieved_from(r.passages), ans, latency, r.confidence))
        if progress:
            progress(name, i + 1, len(queries))
    return SystemRun(name, results, time.perf_counter() - t0)


@dataclass
class EvalReport:
    """Our run (answered by the configured engine) and the comparison systems."""

    ours: SystemRun
    others: list[SystemRun]
    seconds: float
    store: str

    def summary(self) -> dict[str, Any]:
        """Exactly the documented keys for our pipeline."""
        s = self.ours.summary
        return {**{k: s[k] for k in SUMMARY_KEYS}, "seconds": round(self.seconds, 2), "by_type": s["by_type"]}


def evaluate(settings: Settings, dataset_path: str | Path, limit: int | None = None,
             baselines: tuple[str, ...] = (), progress: Progress | None = None,
             sample: int | None = None) -> EvalReport:
    """Build (or reuse) the dataset's stores, run our pipeline and the asked baselines."""
    t0 = time.perf_counter()
    dataset = load_dataset(dataset_path, sample)
    es = ensure_store(settings, dataset, progress)
    ours = run_ours(es, dataset, limit, progress=progress, name="ours")
    ours_wall = time.perf_counter() - t0
    others = [with_top_chunk_answers(ours, "ours+top-chunk")]
    for b in baselines:
        if b == "naive":
            naive = NaivePipeline(settings, dataset.corpus_file, dataset.sample)
            naive.build(dataset, progress)
            others.append(naive.run(dataset, limit, progress))
        elif b == "bm25":
            others.append(run_bm25(es, dataset, limit, progress))
        else:
            raise CorpusError(f"unknown baseline {b!r}", "choose naive or bm25")
    return EvalReport(ours, others, ours_wall, str(es.data_dir))


def format_table(report: EvalReport) -> str:
    """The printed comparison: one column per system, then latency and confidence distributions."""
    runs = [report.ours] + report.others
    rows = list(SUMMARY_KEYS[:-2]) + ["queries"]
    head = f"{'metric':<20}" + "".join(f"{r.name:>16}" for r in runs)
    lines = [head, "-" * len(head)]
    for key in rows:
        cells = []
        for r in runs:
            v = r.summary.get(key)
            cells.append(f"{'-' if v is None else (v if isinstance(v, int) else f'{v:.3f}')!s:>16}")
        lines.append(f"{key:<20}" + "".join(cells))
    lines.append(f"{'retrieval p95 ms':<20}" + "".join(f"{r.latency_p95_ms!s:>16}" for r in runs))
    lines.append(f"{'seconds':<20}" + "".join(f"{r.seconds:>16.1f}" for r in runs))
    lines.append(f"{'queries/s':<20}" + "".join(f"{r.queries_per_second:>16.2f}" for r in runs))
    by_type = report.ours.summary["by_type"]
    if len(by_type) > 1:
        lines.append("")
        lines.append("ours by question type: " + "; ".join(
            f"{t}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()
                                 if isinstance(v, float) and k not in ("seconds",))
            for t, m in by_type.items()))
    dist = report.ours.confidence_distributions()
    lines.append("")
    lines.append("retrieval confidence (refusal below answer.min_confidence):")
    for group, d in dist.items():
        lines.append(f"  {group:<11} " + ("-" if d is None else ", ".join(f"{k} {v}" for k, v in d.items())))
    lines.append("")
    lines.append(f"{len(report.ours.results)} questions in {report.seconds:.1f}s "
                 f"({len(report.ours.results) / report.seconds:.2f} queries/s, store ready included); "
                 f"store {report.store}")
    return "\n".join(lines)
