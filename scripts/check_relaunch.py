"""CI check of the README's main command: `scripts/lab` relaunched with nothing changed serves JupyterLab quickly.

Runs `scripts/lab` twice (the first run may install what changed), each until JupyterLab answers on a free
port, then stops it. The second launch must answer within RELAUNCH_SECONDS and print no set-up step.

    python scripts/check_relaunch.py
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELAUNCH_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(timeout: float = 900.0) -> tuple[float, str]:
    """Seconds until JupyterLab answered, and what the command printed meanwhile."""
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (read back after the process ends)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": tempfile.mkdtemp()}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "lab"), "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         "--IdentityProvider.token=relaunch"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise SystemExit(f"scripts/lab exited with {proc.returncode}:\n{log.read()[-4000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token=relaunch", timeout=1).close()
                break
            except OSError:
                if time.monotonic() - t0 > timeout:
                    raise SystemExit("scripts/lab did not serve JupyterLab in time") from None
                time.sleep(0.2)
        elapsed = time.monotonic() - t0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    log.seek(0)
    return elapsed, log.read()


def main() -> int:
    first, _ = launch()
    print(f"scripts/lab, first launch: JupyterLab answered after {first:.1f} s")
    second, output = launch()
    print(f"scripts/lab, relaunch with nothing changed: JupyterLab answered after {second:.1f} s "
          f"(goal < {RELAUNCH_SECONDS:g} s)")
    steps = [line for line in output.splitlines() if line.startswith(("ernie-widget setup:", "ernie-widget build:"))]
    if steps:
        print("the relaunch repeated set-up steps:\n" + "\n".join(steps), file=sys.stderr)
        return 1
    return 0 if second < RELAUNCH_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
