"""`python -m bench`: one command line for every benchmark, each module under bench/ behind one command.

Only the command line is checked here (every command parses --help); the benchmarks themselves read the
realtimeqa dataset, which is for evaluation only and never runs in the tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = {"__init__", "__main__", "common"}  # bench/ modules that are not a benchmark


def bench(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")  # argparse wraps help to the terminal's width (and at hyphens)
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def commands() -> dict[str, str]:
    """command -> module, from the one table in bench/__main__.py."""
    table = (ROOT / "bench" / "__main__.py").read_text(encoding="utf-8")
    return dict(re.findall(r'^\s+"([a-z0-9-]+)": "([a-z0-9_]+)",', table, re.M))


def test_every_bench_module_is_one_command_and_every_command_parses_help():
    table = commands()
    modules = {p.stem for p in (ROOT / "bench").glob("*.py")} - SHARED
    assert sorted(table.values()) == sorted(modules)  # no script outside the tool, no command without a module
    listed = bench("--help")
    assert listed.returncode == 0, listed.stderr
    for name in table:
        assert re.search(rf"^\s+{re.escape(name)}\b", listed.stdout, re.M), name
        done = bench(name, "--help")
        assert done.returncode == 0 and done.stdout.startswith(f"usage: python -m bench {name}"), (name, done.stderr)


def test_the_dataset_ones_default_to_the_one_dataset_path():
    done = bench("refusal", "--help")
    default = ROOT.parent / "shared" / "datasets" / "realtimeqa-news"
    assert f"(default: {default})" in " ".join(done.stdout.split()), done.stdout
