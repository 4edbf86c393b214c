"""End-to-end fixtures: a real `jupyter lab` (or Notebook 7) on 127.0.0.1 and Debian's Chromium via Playwright.

The server's kernels talk to the protocol simulator started by the test process; the browser may only
talk to 127.0.0.1 (every request it makes is recorded so tests can prove nothing remote was attempted).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..processes import ServerProcess, free_port, wait_for_port

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
KERNEL = "window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel"
TOKEN = "e2e-token"
FAKE_KEY = "bce-v3/ALTAK-e2efakekey000/e2esecretpart111"

pytestmark = pytest.mark.e2e


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Debian's chromium is required for browser tests: apt-get install chromium")
    return path


def write_notebook(path: Path, cells: list[str]) -> None:
    nb = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                   "source": src} for i, src in enumerate(cells)],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb), encoding="utf-8")


class JupyterServer(ServerProcess):
    def __init__(self, root: Path, env: dict[str, str], app: str = "jupyterlab") -> None:
        self.root = root
        self.port = free_port()
        self.app = app
        args = [sys.executable, "-m", app, "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={self.port}",
                f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
                "--ServerApp.disable_check_xsrf=True"]
        if app == "jupyterlab":
            args.append("--LabApp.expose_app_in_browser=True")
        super().__init__(args, env, root, root / f"{app}.log")
        wait_for_port(self.port)

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{sep}token={TOKEN}"


@pytest.fixture(scope="module")
def e2e_sim() -> Iterator[Any]:
    from ernie_widget.testing import ErnieSimulator

    with ErnieSimulator() as sim:
        yield sim


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab")


def server_env(sim: Any, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QIANFAN", "AISTUDIO", "ERNIE_"))}
    env.update(sim.env("qianfan", api_key=FAKE_KEY))
    env.update({"JUPYTER_CONFIG_DIR": str(root / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
                "ERNIE_QUIET": "1", "NO_PROXY": "127.0.0.1,localhost"})
    return env


@pytest.fixture(scope="module")
def lab(e2e_sim: Any, lab_root: Path) -> Iterator[JupyterServer]:
    server = JupyterServer(lab_root, server_env(e2e_sim, lab_root))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class PageRecorder:
    """Every request and dialog the page makes, to prove nothing remote loads and no script runs."""

    def __init__(self, page: Any) -> None:
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        page.on("request", lambda req: self.requests.append(req.url))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        if dialog.type == "beforeunload":  # JupyterLab asks before leaving; that is not the page's script
            dialog.accept()
            return
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def remote(self) -> list[str]:
        return [u for u in self.requests
                if not u.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:"))]


def open_notebook(page: Any, lab: JupyterServer, name: str, workspace: str) -> None:
    page.goto(lab.url(f"lab/workspaces/{workspace}/tree/{name}?reset"))
    page.wait_for_function(f"{KERNEL}?.status === 'idle'", timeout=120_000)


def open_chat(page: Any, lab: JupyterServer, name: str, workspace: str) -> None:
    """Open notebook ``name``, run its first cell (it shows an ErnieChat) and wait until the chat is ready."""
    open_notebook(page, lab, name, workspace)
    run_cell(page, 0)
    page.wait_for_selector('[data-testid="ernie-input"]', timeout=60_000)
    wait_idle(page)


def send(page: Any, text: str) -> None:
    """Type ``text`` into the chat's input and press Enter, as a user does."""
    box = page.locator('[data-testid="ernie-input"]')
    box.click()
    box.fill(text)
    box.press("Enter")


def run_cell(page: Any, index: int) -> None:
    page.evaluate(f"window.jupyterapp.shell.currentWidget.content.activeCellIndex = {index}")
    # fire and forget: the command's promise resolves only when the cell finishes
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-cell'); }")


def wait_idle(page: Any, timeout: float = 60_000) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(f"{KERNEL}?.status === 'idle'", timeout=timeout)
