"""Opening a tour notebook (notebooks/0*.ipynb) in JupyterLab must not mark it modified.

A user who opens a tour notebook, reads it and closes the tab should not be asked to save, and `git status` should
stay clean. JupyterLab rewrites notebook metadata when the kernel starts (`kernelspec` from the kernel's spec,
`language_info` from its kernel_info reply); whatever differs from what is stored marks the document dirty.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import KERNEL, JupyterServer, open_notebook

pytestmark = pytest.mark.e2e

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("0*.ipynb"))
WIDGET = "window.jupyterapp.shell.currentWidget"


@pytest.fixture(scope="module")
def tour_page(browser: Any, lab: JupyterServer) -> Iterator[Any]:
    for nb in NOTEBOOKS:
        shutil.copy(nb, lab.root / nb.name)
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" between notebooks
    yield page
    context.close()


def test_there_are_tour_notebooks() -> None:
    assert len(NOTEBOOKS) >= 7


@pytest.mark.parametrize("name", [nb.name for nb in NOTEBOOKS])
def test_opening_a_tour_notebook_does_not_mark_it_modified(tour_page: Any, lab: JupyterServer, name: str) -> None:
    page = tour_page
    open_notebook(page, lab, name, "tour-" + name.split("-")[0])
    assert page.evaluate(f"() => {WIDGET}.context.path") == name
    # kernel_info has arrived (language_info is filled from it): whatever JupyterLab rewrites is rewritten now
    page.wait_for_function(f"() => {WIDGET}.model.getMetadata('language_info')?.version !== undefined "
                           f"&& {KERNEL}.info !== undefined", timeout=30_000)
    page.wait_for_timeout(500)
    state = page.evaluate(f"""async () => {{
        const w = {WIDGET};
        await {KERNEL}.info;
        const tab = window.jupyterapp.shell.node.querySelector(`.lm-TabBar-tab[data-id="${{w.id}}"]`);
        return {{dirty: w.context.model.dirty, tabDirty: tab ? tab.classList.contains('jp-mod-dirty') : null,
                 metadata: w.model.metadata}};
    }}""")
    try:
        assert state["dirty"] is False, f"{name} is marked modified on open; metadata now: {state['metadata']}"
        assert state["tabDirty"] is False
    finally:
        # stop the kernel without saving: the next notebook starts its own
        page.evaluate(f"async () => {{ await {WIDGET}.sessionContext.shutdown(); }}")
    assert (lab.root / name).read_bytes() == (NOTEBOOKS[0].parent / name).read_bytes()
