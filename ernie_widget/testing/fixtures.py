"""pytest plugin: ``pytest_plugins = ["ernie_widget.testing.fixtures"]`` provides `ernie_simulator`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import ErnieSimulator


@pytest.fixture
def ernie_simulator() -> Iterator[ErnieSimulator]:
    """A fresh simulator per test, started before and stopped after it."""
    with ErnieSimulator() as sim:
        yield sim
