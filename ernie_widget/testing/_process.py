"""The simulator in a process of its own (``python -m ernie_widget.testing …``), for benchmarks: the process
being measured then shares no interpreter, GIL or event loop with the service it talks to."""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["simulator_process"]


def simulator_process(*args: str, cwd: str | os.PathLike[str] | None = None,
                      env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start the simulator with the CLI's ``args`` (``--text``, ``--latency``, …); returns the process and its URL
    (``http://127.0.0.1:<port>``). Stop it with ``proc.terminate()``."""
    proc = subprocess.Popen([sys.executable, "-m", "ernie_widget.testing", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=cwd, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("ERNIE_SIMULATOR_URL="):
        proc.kill()
        raise RuntimeError(f"the simulator did not start: {line!r}")
    return proc, line.split("=", 1)[1]
