"""A real `chroma run` server on a loopback port."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.net import stop_process, wait_for_port


def start_chroma(path: Path, port: int) -> subprocess.Popen:
    """`chroma run` on 127.0.0.1:port over `path`, accepting connections; stop_process ends it."""
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    proc = subprocess.Popen([exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 60, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc
