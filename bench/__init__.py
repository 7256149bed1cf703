"""The project's benchmarks, one command: `python -m bench <command> [options]` from the repo root.

`python -m bench --help` lists the commands; their figures and commands are in bench/RESULTS.md.
"""
