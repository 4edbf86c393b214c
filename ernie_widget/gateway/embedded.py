"""A gateway embedded in a notebook, a test or a benchmark: in a thread of this process, or in a subprocess,
on a free port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["GatewayProcess", "GatewayThread", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:g}s")


class GatewayThread:
    """Run an ASGI app on uvicorn in a daemon thread on 127.0.0.1 and a free port: ``with GatewayThread(app) as gw``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None, **uvicorn_options: Any) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        options = {"log_level": "warning", "access_log": False, "lifespan": "on", **uvicorn_options}
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, **options))
        # uvicorn installs signal handlers only in the main thread; a thread never owns them
        self._thread = threading.Thread(target=self._run, name=f"gateway-{self.port}", daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.gateway: Any = None  # set by gateway_for: the app's `Gateway`

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve())
        finally:
            # sse-starlette leaves a shutdown watcher task per loop: end it before closing the loop
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> GatewayThread:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> GatewayThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GatewayProcess:
    """`python -m ernie_widget.gateway ARGS` in its own process, on a free port unless ``--port`` is given."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, host: str = "127.0.0.1",
                 preexec_fn: Callable[[], Any] | None = None) -> None:
        self.host = host
        self.preexec_fn = preexec_fn  # e.g. to bound the process's resources in a test
        args = list(args)
        if "--port" not in args:
            args += ["--port", str(free_port(host))]
        if "--host" not in args:
            args += ["--host", host]
        self.port = int(args[args.index("--port") + 1])
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process it logs

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def launch(self) -> GatewayProcess:
        """Start the process without waiting (launch several, then `wait_ready` each: their imports overlap)."""
        self.proc = subprocess.Popen([sys.executable, "-m", "ernie_widget.gateway", *self.args], env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=self.preexec_fn)
        return self

    def wait_ready(self, timeout: float = 30.0) -> GatewayProcess:
        try:
            _wait_port(self.host, self.port, timeout, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"gateway failed to start:\n{self.output()}") from None
        return self

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        if self.proc is None:
            self.launch()
        return self.wait_ready(timeout)

    def output(self) -> str:
        """Everything the process printed so far (access logs are JSON lines on stderr)."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, as an orchestrator stops it: answers in flight get ``--shutdown-grace`` (10 s) to finish,
        so the wait is longer than that; a process still running after ``timeout`` is killed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
