"""Issue #3 figures: time to ingest corpus/, time to the first answer after `assistant serve` starts, per question.

    python -m bench e2e [--repeat 20]     # prints one JSON object last

Every step is a real subprocess or HTTP call on a fresh temporary data dir; corpus/ is the project's seed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from .common import ROOT, free_port

QUESTIONS = [
    "Did Russia offer Iran military help?",
    "What did Peskov say about BRICS?",
    "Who condemned the US and Israeli attacks on Iran?",
    "What did the Pope say about the Brazilian election?",
]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--repeat", type=int, default=20, help="questions asked for the per-question timing")


def run(args: argparse.Namespace) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "assistant"]
    with tempfile.TemporaryDirectory() as data:
        t0 = time.perf_counter()
        subprocess.run(cmd + ["--data-dir", data, "ingest", "--json", str(ROOT / "corpus")], check=True,
                       env=env, cwd=ROOT, capture_output=True)
        ingest_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        subprocess.run(cmd + ["--data-dir", data, "ask", "--json", QUESTIONS[0]], check=True, env=env,
                       cwd=ROOT, capture_output=True)
        cli_ask_s = time.perf_counter() - t0

        port = free_port()
        t0 = time.perf_counter()
        server = subprocess.Popen(cmd + ["--data-dir", data, "serve", "--port", str(port)], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            from gradio_client import Client

            while True:
                try:
                    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    if server.poll() is not None or time.perf_counter() - t0 > 120:
                        raise SystemExit("server did not start")
                    time.sleep(0.2)
            client.predict(QUESTIONS[0], api_name="/ask")
            first_answer_s = time.perf_counter() - t0
            times = []
            for i in range(args.repeat):
                t = time.perf_counter()
                client.predict(QUESTIONS[i % len(QUESTIONS)], api_name="/ask")
                times.append(time.perf_counter() - t)
        finally:
            server.terminate()
            server.wait(10)
    times.sort()
    result = {
        "ingest_corpus_s": round(ingest_s, 2),
        "cli_ask_cold_s": round(cli_ask_s, 2),
        "serve_start_to_first_answer_s": round(first_answer_s, 2),
        "question_p50_ms": round(1000 * statistics.median(times), 1),
        "question_p95_ms": round(1000 * times[int(0.95 * (len(times) - 1))], 1),
        "questions": len(times),
    }
    print(json.dumps(result))

