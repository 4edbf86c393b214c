"""The notebooks' checked cells really have stored outputs, so nbval's comparison can fail."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("0*.ipynb"))


def _checked(cell: nbformat.NotebookNode) -> bool:
    return "NBVAL_CHECK_OUTPUT" in cell.source or "nbval-check-output" in cell.metadata.get("tags", [])


def test_there_are_seven_notebooks() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_checked_cell_has_stored_output(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    checked = [c for c in nb.cells if c.cell_type == "code" and _checked(c)]
    assert checked, f"{path.name} checks no output at all"
    for cell in checked:
        assert cell.outputs, f"{path.name}: a checked cell has no stored output:\n{cell.source[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_widget_state_is_saved(path: Path) -> None:
    # widget state would carry the whole JS bundle and any synced trait into the repository
    assert "widgets" not in nbformat.read(path, as_version=4).metadata
