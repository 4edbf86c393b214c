"""Fixtures for the reliability tests: widget comm capture, a real IPython shell, fresh conversation registries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ernie_widget import conversations as threads

from ..kernel_side import Sent, capture_comm, magics_shell


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    return capture_comm(monkeypatch)


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_registry", {})
    monkeypatch.setattr(threads, "_stores", {})


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from magics_shell(monkeypatch)

