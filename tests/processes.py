"""Servers the tests run as processes of their own (Jupyter, marimo, …): a free port, waiting for it, a log file,
and a stop as an orchestrator does it. Shared by the unit tests and tests/e2e."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listening on {port}")


class ServerProcess:
    """``args`` run in ``cwd`` with ``env``, stdout and stderr to ``log_path``; `stop` ends it."""

    def __init__(self, args: Sequence[str | os.PathLike[str]], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 - lives as long as the process it logs
        self.proc = subprocess.Popen(list(args), env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; the log is closed."""
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
