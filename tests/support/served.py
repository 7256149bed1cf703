"""The one way the tests run the product's server: `python -m assistant -v serve` in a subprocess on a loopback
port, its output teed into a log file and awaited line by line (no polling of the file)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.support.net import free_port, stop_process
from tests.support.paths import ROOT

READY = "Serving the assistant on"  # printed once the port is bound and every worker finished its startup


def server_env(**extra: str) -> dict[str, str]:
    """The caller's environment without its assistant settings (ASSISTANT_*, the metrics folder, uvicorn's
    proxy variable), offline, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ASSISTANT_") and k not in ("PROMETHEUS_MULTIPROC_DIR", "FORWARDED_ALLOW_IPS")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1", **extra)
    return env


class Served:
    """A running `assistant serve`: its URL, process and everything it printed so far (also in `log`)."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"
        self._lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._tee, daemon=True)
        self._reader.start()

    def _tee(self) -> None:
        with open(self.log, "w", encoding="utf-8") as out:
            for line in self.proc.stdout:
                out.write(line)
                out.flush()
                with self._changed:
                    self._lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, needle: str, timeout: float = 10.0, count: int = 1) -> str:
        """The output once `needle` was printed `count` times; fails when the server exits or time runs out."""
        def seen() -> bool:
            return "".join(self._lines).count(needle) >= count

        with self._changed:
            found = self._changed.wait_for(lambda: seen() or self._ended, timeout)
            text = "".join(self._lines)
            if not seen():
                state = f"exited with {self.proc.poll()}" if found else f"still runs after {timeout}s"
                raise AssertionError(f"{needle!r} x{count} not printed; the server {state}:\n{text[-3000:]}")
            return text

    def close(self, timeout: float = 20) -> None:
        stop_process(self.proc, timeout)
        self._reader.join(10)
        self.proc.stdout.close()


@contextlib.contextmanager
def serve(data_dir: Path, log: Path, env: dict[str, str], *args: str, port: int | None = None,
          timeout: float = 240) -> Iterator[Served]:
    """`assistant -v serve --data-dir DATA_DIR --port PORT ARGS` (a free port unless given), yielded once it
    printed "Serving the assistant on"."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "-v", "serve", "--data-dir", str(data_dir),
                             "--port", str(port), *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace")
    served = Served(proc, port, log)
    try:
        served.wait_for(READY, timeout)
        yield served
    finally:
        served.close()


@contextlib.contextmanager
def serve_copy(corpus_data_dir: Path, folder: Path, **settings: str) -> Iterator[Served]:
    """`serve` over a writable copy of the session's corpus store in `folder` (data/, server.log);
    `settings` are ASSISTANT_* variables."""
    data_dir = folder / "data"
    shutil.copytree(corpus_data_dir, data_dir)
    with serve(data_dir, folder / "server.log", server_env(**settings)) as served:
        yield served
