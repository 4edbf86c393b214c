"""Shared kernel-side test support: widget comm capture and a real IPython shell with the magics loaded.

Used by tests/test_widget.py, tests/test_magics.py and tests/reliability/ (their fixtures are in
tests/conftest.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import comm.base_comm
import pytest

from ernie_widget import conversations as threads
from ernie_widget import magics


class Sent(list[dict[str, Any]]):
    """Every comm `data` dict a widget sent (what the browser would receive), with the time it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.lock = threading.Lock()

    def custom(self, kind: str | None = None, mid: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            items = [d["content"] for d in self if d and d.get("method") == "custom"]
        return [c for c in items if (kind is None or c["type"] == kind) and (mid is None or c.get("mid") == mid)]

    def updates(self, key: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d["state"] for d in self if d and d.get("method") == "update" and key in d["state"]]

    def delta_text(self, mid: int) -> str:
        return "".join(d.get("text", "") for d in self.custom("delta", mid))


def capture_comm(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """Capture comm messages at `BaseComm.send` (no browser, no kernel needed)."""
    log = Sent()

    def fake_send(self: Any, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        with log.lock:
            log.append(data)
            log.times.append(time.monotonic())

    monkeypatch.setattr(comm.base_comm.BaseComm, "send", fake_send)
    return log


def magics_shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The test IPython shell with the extension loaded; registry, credentials, clients and settings restored."""
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "ernie_widget")
    m = shell.magics_manager.registry["ErnieMagics"]
    saved = {name: getattr(m, name) for name in m.trait_names() if m.trait_metadata(name, "config")}
    monkeypatch.setattr(threads, "_registry", {})
    monkeypatch.setattr(magics, "_session_credentials", {})
    monkeypatch.setattr(magics, "_clients", {})
    shell.rl_next_input = None
    yield shell
    for name, value in saved.items():
        setattr(m, name, value)
    m.tokens_used = 0
    for client in magics._clients.values():
        client.close()


def fresh_magics_shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`magics_shell` with an empty thread registry (no conversation carried over from another test)."""
    monkeypatch.setattr(threads, "_registry", {})
    yield from magics_shell(monkeypatch)


def point_at(sim: Any, monkeypatch: pytest.MonkeyPatch, key: str) -> Any:
    """Point the default client at the simulator as Qianfan v2 with ``key``; returns the simulator."""
    for name, value in sim.env("qianfan", api_key=key).items():
        monkeypatch.setenv(name, value)
    return sim
