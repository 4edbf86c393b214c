"""Shared test setup: the protocol simulator fixture, and an environment with no real credentials."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["ernie_widget.testing.fixtures"]

_CREDENTIAL_VARS = (
    "QIANFAN_API_KEY", "QIANFAN_BASE_URL", "QIANFAN_AK", "QIANFAN_SK", "QIANFAN_V1_BASE_URL",
    "AISTUDIO_ACCESS_TOKEN", "AISTUDIO_BASE_URL", "ERNIE_BASE_URL", "ERNIE_API_KEY", "ERNIE_PROVIDER",
    "ERNIE_MODEL", "ERNIE_CASSETTE", "ERNIE_CASSETTE_MODE", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY",
    "https_proxy", "http_proxy", "all_proxy",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's keys, proxies or .env file; the local-model notice stays quiet."""
    for var in _CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ERNIE_QUIET", "1")
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(autouse=True)
def _short_overload_waits(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests count retries; the waits themselves are measured in test_backoff.py, which keeps them real. At their
    real size (≥ 1 s after a 5xx or 429, client/retry.py) they would add about a minute to the suite. (A kernel
    or server in another process keeps the real waits.)"""
    if request.module.__name__.rsplit(".", 1)[-1] != "test_backoff":
        from ernie_widget.client import retry

        monkeypatch.setattr(retry, "RETRY_OVERLOAD_BASE", 0.02)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The comm messages a kernel-side widget sends (see tests/kernel_side.py); a module may define its own."""
    from .kernel_side import capture_comm

    return capture_comm(monkeypatch)


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A fresh IPython shell with the magics loaded, as a kernel has it; a module may define its own."""
    from .kernel_side import fresh_magics_shell

    yield from fresh_magics_shell(monkeypatch)


@pytest.fixture(scope="module")
def redis_url():  # type: ignore[no-untyped-def]
    """A private redis-server for the module (gateway.testing.redis_server); its ``redis://`` URL."""
    from ernie_widget.gateway.testing import redis_server

    try:
        with redis_server() as url:
            yield url
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def sim_env(ernie_simulator, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Point the default client at the simulator as Qianfan v2 with a fake key."""
    for key, value in ernie_simulator.env("qianfan", api_key="bce-v3/ALTAK-testkey123/secretpart456").items():
        monkeypatch.setenv(key, value)
    return ernie_simulator


def pytest_report_header() -> str:
    return f"ernie-widget tests (pid {os.getpid()})"
