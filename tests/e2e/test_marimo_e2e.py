"""ErnieChat in marimo: `mo.ui.anywidget(ErnieChat())` served by a real `marimo run`, in Chromium, against the
protocol simulator (the same environment the Jupyter servers get, tests/e2e/conftest.py `server_env`).

What it proves: the anywidget bundle loads in marimo's front end; a question typed in the chat reaches the model
and its answer streams back into the view (custom messages both ways); `await chat.ask(...)` in a marimo cell (an
`async` cell on marimo's own event loop, while the chat's stream runs on the package's private loop) returns the
stored answer; the widget's stylesheet applies inside marimo's shadow root and turns dark with a dark system theme,
and with marimo's own theme forced to dark on a light system (the page marked `.dark`).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..processes import ServerProcess, free_port, wait_for_port
from .conftest import server_env

pytestmark = pytest.mark.e2e

marimo = pytest.importorskip("marimo")

APP = '''
import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
    from ernie_widget import ErnieChat

    chat = ErnieChat(thread="marimo-e2e")
    view = mo.ui.anywidget(chat)
    view
    return chat, mo


@app.cell
async def _(chat, mo):
    answer = await chat.ask("asked from a marimo cell")
    mo.md(f"cell-result: {answer['status']} / {answer['content']}")
    return


if __name__ == "__main__":
    app.run()
'''


def _luminance(css_rgb: str) -> float:
    """0..1 brightness of an `rgb(r, g, b)` / `rgba(...)` colour."""
    r, g, b = (int(float(x)) for x in css_rgb[css_rgb.index("(") + 1:css_rgb.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


class MarimoServer(ServerProcess):
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        app = root / "ernie_app.py"
        app.write_text(textwrap.dedent(APP).lstrip(), encoding="utf-8")
        env = {**env, "MARIMO_SKIP_UPDATE_CHECK": "1"}
        super().__init__([sys.executable, "-m", "marimo", "run", str(app), "--headless", "--no-token", "--host",
                          "127.0.0.1", "--port", str(self.port), "--no-sandbox", "--no-check"], env, root,
                         root / "marimo.log")
        wait_for_port(self.port, timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture(scope="module")
def marimo_server(e2e_sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarimoServer]:
    root = tmp_path_factory.mktemp("marimo")
    env = server_env(e2e_sim, root)
    env["HOME"] = str(root)  # marimo keeps its config and state under ~; not the user's
    server = MarimoServer(root, env)
    try:
        yield server
    finally:
        server.stop()


def test_ernie_chat_in_marimo(browser: Any, marimo_server: MarimoServer, e2e_sim: Any) -> None:
    e2e_sim.set_answer(text="来自模拟器的回答 marimo-answer", chunk_size=5, delay=0.0)
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # nothing leaves the machine: marimo's front end may ask a CDN for fonts; answer those locally with nothing
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")) else route.abort())
    try:
        page.goto(marimo_server.url)
        # the async cell awaited chat.ask(...) on marimo's loop and printed the stored answer
        page.get_by_text("cell-result: ok / 来自模拟器的回答 marimo-answer").wait_for(timeout=60_000)
        first = [r.json["messages"][-1]["content"] for r in e2e_sim.chat_requests]
        assert "asked from a marimo cell" in first

        # the chat's view: the cell's turn is in it, and a question typed in the box gets its answer
        chat = page.locator(".ernie-chat")
        chat.wait_for(state="visible", timeout=30_000)
        # (marimo draws each widget in a shadow root: Playwright's locators pierce it, document.querySelector does not)
        chat.filter(has_text="marimo-answer").wait_for(timeout=30_000)
        e2e_sim.set_answer(text="typed-answer 第二个回答", chunk_size=4, delay=0.01)
        n_req = len(e2e_sim.chat_requests)
        box = page.locator('[data-testid="ernie-input"]')
        box.click()
        box.fill("typed in marimo 你好")
        box.press("Enter")
        assert e2e_sim.wait_for(lambda: len(e2e_sim.chat_requests) > n_req, timeout=30)
        assert e2e_sim.chat_requests[n_req].json["messages"][-1]["content"] == "typed in marimo 你好"
        chat.filter(has_text="typed-answer 第二个回答").wait_for(timeout=30_000)
        page.locator('[data-testid="ernie-send"]').wait_for(state="visible", timeout=30_000)

        # the widget's stylesheet reached marimo's shadow root, and follows a dark system theme as marimo does
        style = "el => { const s = getComputedStyle(el); return [s.display, s.borderRadius, s.backgroundColor]; }"
        display, radius, light_bg = chat.evaluate(style)
        assert (display, radius) == ("flex", "8px")
        page.emulate_media(color_scheme="dark")
        page.wait_for_timeout(300)
        dark_bg = chat.evaluate(style)[2]
        assert _luminance(light_bg) > 0.8 and _luminance(dark_bg) < 0.3, (light_bg, dark_bg)
        # marimo's own theme forced to dark on a light system: it marks the page .dark, and the chat follows
        page.emulate_media(color_scheme="light")
        page.evaluate("document.documentElement.classList.add('dark', 'dark-theme')")
        page.wait_for_timeout(300)
        forced_bg = chat.evaluate(style)[2]
        assert _luminance(forced_bg) < 0.3, forced_bg
        assert errors == []
    finally:
        context.close()
