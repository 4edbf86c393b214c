"""Helpers for tests: a gateway in front of an `ErnieSimulator`, a throwaway redis-server and PostgreSQL cluster.

`GatewayThread`, `GatewayProcess` and `free_port` live in `embedded` (re-exported here for existing imports).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

from .embedded import GatewayProcess, GatewayThread, _wait_port, free_port

__all__ = ["GatewayProcess", "GatewayThread", "free_port", "gateway_for", "postgres_server", "redis_server"]


@contextlib.contextmanager
def redis_server(executable: str | None = None) -> Iterator[str]:
    """A private redis-server on 127.0.0.1 and a free port, without persistence; yields its ``redis://`` URL."""
    exe = executable or shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(exe):
        raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", tmp, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            _wait_port("127.0.0.1", port, 10, proc)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _pg_bin() -> str:
    """Debian's PostgreSQL binaries (``/usr/lib/postgresql/<major>/bin``, the newest), or the ones on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    return os.path.dirname(initdb)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 and a free port (trust auth, no fsync); yields its
    ``postgresql://`` URL and removes the cluster afterwards. initdb and postgres refuse to run as root, so as
    root they run as the ``postgres`` user (``runuser``), as CI does."""
    bindir = _pg_bin()
    port = free_port()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    with tempfile.TemporaryDirectory(prefix="ernie-pg-") as tmp:
        data, sock = os.path.join(tmp, "data"), os.path.join(tmp, "sock")
        os.mkdir(sock)
        if as_root:
            import pwd

            pw = pwd.getpwnam("postgres")
            for path in (tmp, sock):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        run = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
        subprocess.run([*prefix, f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                        "--no-sync"], **run)  # type: ignore[call-overload]
        pg_ctl = [*prefix, f"{bindir}/pg_ctl", "-D", data]
        subprocess.run([*pg_ctl, "-w", "-t", "30", "-l", os.path.join(tmp, "log"), "-o",
                        f"-k {sock} -p {port} -h 127.0.0.1 -F -c full_page_writes=off", "start"],
                       **run)  # type: ignore[call-overload]
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)


@contextlib.contextmanager
def gateway_for(sim: Any, provider: str = "qianfan", *, max_retries: int = 0, keys: Any = None,
                **settings: Any) -> Iterator[GatewayThread]:
    """A gateway in a thread in front of an `ErnieSimulator` surface. Without keys or a JWT setting it runs
    with ``no_auth`` on 127.0.0.1. ``gw.gateway`` is the `Gateway` (metrics, replay store, settings)."""
    from .app import create_app, upstream_client
    from .settings import GatewaySettings

    env = sim.env(provider)
    api_key = env.get("QIANFAN_API_KEY") or env.get("AISTUDIO_ACCESS_TOKEN") or env.get("ERNIE_API_KEY")
    if keys is None and not any(settings.get(k) for k in ("jwt_secret", "jwt_public_key", "jwks_url")):
        settings.setdefault("no_auth", True)
    settings.setdefault("max_concurrency", 64)
    gateway_settings = GatewaySettings(provider=provider, base_url=sim.base_url(provider), api_key=api_key,
                                       **settings)
    # built as `ernie-widget serve` builds it (aiohttp upstream unless upstream_transport="httpx2")
    client = upstream_client(gateway_settings, max_retries=max_retries)
    app = create_app(gateway_settings, client=client, keys=keys)
    with GatewayThread(app) as gw:
        gw.gateway = app.state.gateway
        yield gw
