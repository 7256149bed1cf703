"""`python -m bench <command> [options]`: every benchmark behind one command line (run from the repo root)."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import common  # noqa: F401 - sets the environment (offline hub) before any model library loads

# command -> module under bench/; each module has add_arguments(parser) and run(args), its docstring is the help
COMMANDS = {
    "speed": "speed",                        # ingest vs the tutorial pipeline, embedder, queries, 100k chunks, users
    "scale": "scale",                        # a million chunks on a Chroma server: build, reindex, ingest, query, load
    "feeds": "feeds",                        # watching feeds against a loopback news site
    "e2e": "e2e",                            # the end-to-end slice: ingest corpus/, first answer, per question
    "ablation": "ablation",                  # what each retrieval stage adds (dev set)
    "sweep": "sweep",                        # retrieval settings on two halves of the dev questions
    "refusal": "refusal",                    # refusal threshold trade-off (dev set)
    "confidence": "confidence",              # retrieval confidence at 1, ~100 and all dev articles
    "answer-cost": "answer_cost",            # extractive answer quality against CPU, by sentence pool
    "answer-variants": "answer_variants",    # alternative sentence scoring and refusal rules
    "profile-answer": "profile_answer",      # cProfile over Assistant.ask
    "profile-ingest": "profile_ingest",      # pyinstrument over one ingest
    "ingest-one": "ingest_one",              # one-article ingests into a copy of an archive
    "attribution": "attribution",            # who said what: quote attribution against hand labels (#24)
    "answers": "answers",                    # answer figures of eval --out files: all, fortnight, changes
}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True, metavar="command")
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"bench.{module}")
        doc = mod.__doc__ or name
        p = sub.add_parser(name, help=doc.split("\n")[0], description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(run=mod.run)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
