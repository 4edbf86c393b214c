"""ErnieChat in Jupyter Notebook 7 (not JupyterLab) and Chromium: send, stream, stop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import KERNEL, JupyterServer, PageRecorder, run_cell, server_env, wait_idle, write_notebook

pytestmark = pytest.mark.e2e

CHAT = '[data-testid="ernie-message"][data-role="assistant"]'
# Notebook 7.6 itself raises this while loading settings, with or without our package (see test_extension_e2e)
KNOWN_NB7_ERROR = "Cannot read properties of undefined (reading 'schema')"


@pytest.fixture(scope="module")
def nb7(e2e_sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp("nb7")
    env = server_env(e2e_sim, root)
    # window.jupyterapp, for run_cell and the kernel status (Notebook 7 reads its own trait, not LabApp's)
    config = Path(env["JUPYTER_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"JupyterNotebookApp": {"expose_app_in_browser": True}}), encoding="utf-8")
    server = JupyterServer(root, env, app="notebook")
    try:
        yield server
    finally:
        server.stop()


def test_notebook7_chat_sends_streams_and_stops(browser: Any, nb7: JupyterServer, e2e_sim: Any) -> None:
    from ernie_widget.testing import Answer, Fault

    write_notebook(nb7.root / "nb7chat.ipynb", ["from ernie_widget import ErnieChat\nchat = ErnieChat()\nchat"])
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    recorder = PageRecorder(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: None if str(exc).endswith(KNOWN_NB7_ERROR) else errors.append(str(exc)))
    try:
        page.goto(nb7.url("notebooks/nb7chat.ipynb"))
        assert "/notebooks/" in page.url and "/lab" not in page.url  # really the Notebook 7 UI
        page.wait_for_function(f"{KERNEL}?.status === 'idle'", timeout=120_000)
        run_cell(page, 0)
        box = page.locator('[data-testid="ernie-input"]')
        box.wait_for(timeout=60_000)
        wait_idle(page)

        # keys typed in the box stay there: Shift+Enter is a newline, not "run cell" (which replaced the chat)
        cells = "() => window.jupyterapp.shell.currentWidget.content.model.toJSON().cells.map(c => c.execution_count)"
        counts = page.evaluate(cells)
        box.click()
        box.type("one")
        for key in ["Shift+Enter", "Escape", "a", "b", "d", "d"]:
            box.press(key)
        page.wait_for_timeout(1000)
        assert box.input_value() == "one\nabdd"
        assert page.evaluate(cells) == counts
        box.fill("")

        # send + stream: the answer arrives in pieces and ends rendered as Markdown
        e2e_sim.push(Answer(text="第一段 streaming **粗体。**后文 " + " ".join(f"w{i}" for i in range(60)) + " done",
                            chunk_size=4, delay=0.02))
        n = len(e2e_sim.chat_requests)
        box.fill("你好 Notebook 7")
        box.press("Enter")
        answer = page.locator(CHAT).last
        answer.locator(".ernie-answer", has_text="第一段").wait_for(timeout=20_000)
        partial = answer.locator(".ernie-answer").inner_text()
        assert "done" not in partial, "the answer should be visible while it still streams"
        answer.locator("text=done").wait_for(timeout=20_000)
        assert answer.locator("strong").first.inner_text() == "粗体。"
        assert e2e_sim.chat_requests[n].json["messages"][-1]["content"] == "你好 Notebook 7"
        page.locator('[data-testid="ernie-send"]').wait_for(state="visible", timeout=10_000)

        # stop: an endless stream is cut, the upstream request is closed, the partial text stays
        e2e_sim.push(Fault.endless(interval=0.02, answer=Answer(text="tick ", chunk_size=5)))
        n = len(e2e_sim.chat_requests)
        box.fill("keep talking")
        box.press("Enter")
        stop = page.locator('[data-testid="ernie-stop"]')
        stop.wait_for(state="visible", timeout=20_000)
        page.locator(CHAT).last.locator("text=tick").first.wait_for(timeout=20_000)
        stop.click()
        assert e2e_sim.wait_for(lambda: len(e2e_sim.chat_requests) > n and e2e_sim.chat_requests[n].disconnected,
                                timeout=5)
        page.locator('[data-testid="ernie-send"]').wait_for(state="visible", timeout=10_000)
        kept = page.locator(CHAT).last.locator(".ernie-answer").inner_text()
        assert "tick" in kept
        wait_idle(page)
        assert recorder.remote() == [] and recorder.dialogs == []
        assert errors == []
    finally:
        context.close()
