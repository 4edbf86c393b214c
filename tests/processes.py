"""Servers the tests run as processes of their own (Jupyter, marimo, …): a free port, waiting for it, a log file,
and a stop as an orchestrator does it. Shared by the unit tests and tests/e2e."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: installed server extensions that only slow a bare `jupyter server`'s start (JupyterLab, language servers)
OTHER_SERVER_EXTENSIONS = ("jupyterlab", "notebook", "notebook_shim", "jupyter_lsp", "jupyter_server_terminals")


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


class ShippedConfigServer(ServerProcess):
    """`jupyter server` on a free port, ernie-widget's server extensions enabled by the very config file the wheel
    ships (copied into ``root/.jupyter``); the other installed extensions off, and ours named in `disabled` too.
    Returns once `ready()` (by default: the port accepts connections), within 60 s."""

    def __init__(self, root: Path, env: dict[str, str], token: str, disabled: Iterable[str] = ()) -> None:
        self.port = free_port()
        self.token = token
        config = root / ".jupyter" / "jupyter_server_config.d"
        config.mkdir(parents=True)
        shutil.copy(ROOT / "jupyter-config" / "jupyter_server_config.d" / "ernie_widget.json", config)
        # the command line merges with the config files, so ours stay enabled by the shipped file alone
        extensions = dict.fromkeys((*OTHER_SERVER_EXTENSIONS, *disabled), False)
        args = [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                f"--port={self.port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                "--ServerApp.jpserver_extensions=" + repr(extensions)]
        super().__init__(args, {**env, "JUPYTER_CONFIG_DIR": str(root / ".jupyter")}, root, root / "server.log")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if self.ready():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(self.log_path.read_text()[-2000:])

    def ready(self) -> bool:
        socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        return True
