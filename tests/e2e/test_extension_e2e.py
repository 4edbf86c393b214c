"""The ernie-widget JupyterLab / Notebook 7 extension in a real server and Chromium, against the protocol simulator.

Playwright's clicks are real input events (`isTrusted`); page script can only make synthetic ones, which the
extension must ignore. In the development tree the extension is served from the build output (`labextension/` →
ernie_widget/labextension) through JUPYTER_PATH. With ERNIE_E2E_INSTALLED=1 (the packaging stage of `.ci/run`,
in a fresh venv that installed a wheel built by `python -m build` from a clean clone) it is served exactly as
that wheel installed it, and nothing of the source tree is used.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    FAKE_KEY,
    KERNEL,
    JupyterServer,
    open_notebook,
    run_cell,
    server_env,
    wait_idle,
    write_notebook,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "ernie_widget" / "labextension"
NB = "window.jupyterapp.shell.currentWidget.content"
CHAT_CELL = "from ernie_widget import ErnieChat\nchat = ErnieChat()\nchat"
# exact-text probe: braces, quotes, markup, CJK, indentation, a blank line
CODE = 'def greet(name):\n    return f"你好, {name}! <b>&amp;</b> \'q\'"\n\n\nprint(greet("ernie"))'
RUN_CODE = 'print("ran-" + str(6 * 7))'
COMPLETION_MODEL = "ernie-speed-128k"
KNOWN_NB7_ERROR = "Cannot read properties of undefined (reading 'schema')"


INSTALLED = os.environ.get("ERNIE_E2E_INSTALLED") == "1"


def _installed_extension() -> Path:
    """The extension as the wheel installed it, after checking this really is an install, not the source tree."""
    import ernie_widget

    assert "site-packages" in Path(ernie_widget.__file__).parts, f"not an installed package: {ernie_widget.__file__}"
    installed = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "ernie-widget"
    assert (installed / "package.json").is_file(), f"the wheel installed no extension at {installed}"
    assert not installed.is_symlink()
    return installed


def _share_dir(root: Path) -> Path:
    """A JUPYTER_PATH entry whose labextensions/ernie-widget is the freshly built extension."""
    if not (BUILT / "package.json").exists():
        pytest.fail("ernie_widget/labextension is not built: run scripts/bootstrap (or `cd labextension && npm run build`)")
    share = root / "share" / "jupyter"
    (share / "labextensions").mkdir(parents=True, exist_ok=True)
    link = share / "labextensions" / "ernie-widget"
    if not link.exists():
        link.symlink_to(BUILT, target_is_directory=True)
    return share


def _env(sim: Any, root: Path) -> dict[str, str]:
    env = server_env(sim, root)
    env["ERNIE_SIDEBAR_STORE"] = str(root / "sidebar-chats.sqlite3")  # not the user's ~/.local/share
    env["ERNIE_COMPLETION_MODEL"] = COMPLETION_MODEL  # the server extension's model: tells its requests apart
    if INSTALLED:
        _installed_extension()  # found by the server in sys.prefix, where the wheel put it
    else:
        env["JUPYTER_PATH"] = str(_share_dir(root))
    return env


def _start(root: Path, env: dict[str, str], app: str = "jupyterlab") -> JupyterServer:
    if app == "notebook":
        # JupyterServer only passes --LabApp.expose_app_in_browser; Notebook 7 reads its own trait from config
        config = Path(env["JUPYTER_CONFIG_DIR"])
        config.mkdir(parents=True, exist_ok=True)
        (config / "jupyter_server_config.json").write_text(
            json.dumps({"JupyterNotebookApp": {"expose_app_in_browser": True}}), encoding="utf-8")
    return JupyterServer(root, env, app=app)


class Page:
    """A notebook page plus the errors it raised."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", self._page_error)
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" and "ernie" in msg.text.lower()
                else None)

    def _page_error(self, exc: Any) -> None:
        text = f"{exc}\n{exc.stack}"
        # Notebook 7.6 itself raises this while loading settings, with or without any extension installed
        if str(exc).endswith(KNOWN_NB7_ERROR) and "/static/notebook/" in text and "ernie" not in text:
            return
        self.errors.append(text)

    def cells(self) -> list[dict[str, Any]]:
        cells: list[dict[str, Any]] = self.page.evaluate(f"() => {NB}.model.toJSON().cells")
        return cells

    def sources(self) -> list[str]:
        return [c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in self.cells()]

    def activate(self, index: int) -> None:
        self.page.evaluate(f"() => {{ {NB}.activeCellIndex = {index}; }}")

    def insert(self, index: int, source: str) -> None:
        self.page.evaluate(f"([i, s]) => {NB}.model.sharedModel.insertCell(i, {{cell_type: 'code', source: s}})",
                           [index, source])

    def wait_cells(self, n: int, timeout: float = 10_000) -> None:
        self.page.wait_for_function(f"() => {NB}.model.cells.length === {n}", timeout=timeout)

    def ask(self, text: str) -> Any:
        """Ask in the (last) chat and wait for the answer's code block toolbar."""
        blocks = self.page.locator(".ernie-chat .ernie-codeblock")
        before = blocks.count()
        box = self.page.locator('[data-testid="ernie-input"]').last
        box.click()
        box.fill(text)
        box.press("Enter")
        self.page.wait_for_function(f"() => document.querySelectorAll('.ernie-chat .ernie-codeblock').length > {before}",
                                    timeout=30_000)
        self.page.locator('.ernie-chat [data-testid="ernie-send"]').last.wait_for(state="visible", timeout=30_000)
        return blocks.last

    def palette(self, label: str) -> None:
        """Run a command from the command palette by its label, as a user would."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('apputils:activate-command-palette')")
        box = self.page.locator(".lm-CommandPalette-input")
        box.wait_for(state="visible", timeout=10_000)
        box.fill(label)
        # the exact label: "ERNIE: Open chat" is also part of "… / ERNIE: Open chat beside notebook"
        exact = self.page.locator(".lm-CommandPalette-itemLabel", has_text=re.compile(f"^{re.escape(label)}$"))
        item = self.page.locator(".lm-CommandPalette-item", has=exact).first
        item.wait_for(state="visible", timeout=10_000)
        item.click()


def _code_answer(code: str) -> str:
    return f"Here you go:\n\n```python\n{code}\n```\n\nDone."


def _open_chat(page: Page, sim: Any, server: JupyterServer, name: str, cells: list[str], nb7: bool = False) -> None:
    write_notebook(server.root / name, cells)
    if nb7:
        page.page.goto(server.url(f"notebooks/{name}"))
        page.page.wait_for_function(
            "window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'",
            timeout=120_000)
    else:
        open_notebook(page.page, server, name, name.replace(".", "-"))
    run_cell(page.page, 0)
    page.page.wait_for_selector('[data-testid="ernie-input"]', timeout=60_000)
    wait_idle(page.page)


# ---------------------------------------------------------------------------------------------------------------
# JupyterLab


@pytest.fixture(scope="module")
def ext_lab(e2e_sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp("extlab")
    server = _start(root, _env(e2e_sim, root))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def lab_page(browser: Any, ext_lab: JupyterServer, e2e_sim: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = Page(context.new_page())
    _open_chat(page, e2e_sim, ext_lab, "ext.ipynb", [CHAT_CELL, "x = 1", "import time\ntime.sleep(5)"])
    yield page
    assert page.errors == []
    context.close()


def test_panel_is_marked_and_the_chat_offers_the_three_actions(lab_page: Page, e2e_sim: Any) -> None:
    assert lab_page.page.locator(".jp-NotebookPanel[data-ernie-extension]").count() == 1
    e2e_sim.set_answer(text=_code_answer(CODE), chunk_size=7, delay=0.0)
    block = lab_page.ask("write greet")
    for testid in ("ernie-copy", "ernie-insert-below", "ernie-replace-cell", "ernie-run-cell"):
        assert block.locator(f'[data-testid="{testid}"]').count() == 1, testid


def test_insert_below_puts_the_exact_code_under_the_chats_cell(lab_page: Page, e2e_sim: Any) -> None:
    """The target is the cell holding the chat, whatever cell was active before (here "x = 1", further down)."""
    e2e_sim.set_answer(text=_code_answer(CODE), chunk_size=5, delay=0.0)
    block = lab_page.ask("write greet again")
    # the finished answer carries its request id (from the transcript) for the inserted cell's provenance
    block.locator("xpath=ancestor::*[@data-request-id]").wait_for(state="attached", timeout=20_000)
    before = lab_page.sources()
    lab_page.activate(before.index("x = 1"))  # the last active cell is not the chat's
    block.locator('[data-testid="ernie-insert-below"]').click()
    lab_page.wait_cells(len(before) + 1)
    cells = lab_page.cells()
    assert lab_page.sources() == [before[0], CODE, *before[1:]]
    prov = cells[1]["metadata"]["ernie_widget"]
    assert prov["source"] == "chat:insert-below"
    assert prov["time"].endswith("Z") and prov["model"]
    assert prov["request_id"].startswith("as-")
    assert cells[1]["outputs"] == [] and cells[1]["execution_count"] is None
    assert lab_page.page.evaluate(f"() => {NB}.activeCellIndex") == 1
    lab_page.page.evaluate(f"() => {NB}.model.sharedModel.deleteCell(1)")


def test_replace_cell_replaces_the_chats_own_cell(lab_page: Page, e2e_sim: Any) -> None:
    """Replace targets the chat's cell (its source; the outputs, the chat among them, stay), not the active one."""
    lab_page.insert(1, "scratch = 'not the target'")
    lab_page.activate(1)
    n = len(lab_page.cells())
    e2e_sim.set_answer(text=_code_answer(CODE), chunk_size=9, delay=0.0)
    block = lab_page.ask("replace it")
    block.locator('[data-testid="ernie-replace-cell"]').click()
    lab_page.page.wait_for_function(f"() => {NB}.model.cells.get(0).sharedModel.getSource() === {json.dumps(CODE)}",
                                    timeout=10_000)
    assert len(lab_page.cells()) == n
    assert lab_page.sources()[1] == "scratch = 'not the target'"
    cells = lab_page.cells()
    assert cells[0]["metadata"]["ernie_widget"]["source"] == "chat:replace-cell"
    assert cells[0]["outputs"] and lab_page.page.locator(".ernie-chat").count() >= 1  # the chat is still there
    # put the fixture's notebook back as it was
    lab_page.page.evaluate(f"s => {{ {NB}.model.cells.get(0).sharedModel.setSource(s); "
                           f"{NB}.model.sharedModel.deleteCell(1); }}", CHAT_CELL)


def test_run_in_new_cell_runs_it_under_the_chat_even_while_the_kernel_is_busy(lab_page: Page, e2e_sim: Any) -> None:
    e2e_sim.set_answer(text=_code_answer(RUN_CODE), chunk_size=4, delay=0.0)
    block = lab_page.ask("print 42")
    sleeper = lab_page.sources().index("import time\ntime.sleep(5)")
    run_cell(lab_page.page, sleeper)  # the sleeper is the active cell now
    lab_page.page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status "
                                    "=== 'busy'", timeout=10_000)
    n = len(lab_page.cells())
    block.locator('[data-testid="ernie-run-cell"]').click()
    lab_page.wait_cells(n + 1, timeout=2_000)  # inserted at once, not after the sleep
    assert lab_page.page.evaluate("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status") \
        == "busy"
    assert lab_page.sources().index(RUN_CODE) == 1  # right under the chat's cell, not under the active sleeper
    lab_page.page.wait_for_function(
        f"() => JSON.stringify({NB}.model.cells.get(1).toJSON().outputs).includes('ran-42')", timeout=30_000)
    assert lab_page.cells()[1]["metadata"]["ernie_widget"]["source"] == "chat:run-in-new-cell"
    wait_idle(lab_page.page)
    lab_page.page.evaluate(f"() => {NB}.model.sharedModel.deleteCell(1)")


def test_synthetic_clicks_from_page_script_do_nothing(lab_page: Page, e2e_sim: Any) -> None:
    e2e_sim.set_answer(text=_code_answer("import os\nos.system('echo pwned')"), chunk_size=8, delay=0.0)
    lab_page.ask("be evil")
    wait_idle(lab_page.page)
    before = lab_page.cells()
    count = lab_page.page.evaluate("""() => {
        const blocks = document.querySelectorAll('.ernie-chat .ernie-codeblock');
        const block = blocks[blocks.length - 1];
        let n = 0;
        for (const id of ['ernie-insert-below', 'ernie-replace-cell', 'ernie-run-cell']) {
            const b = block.querySelector(`[data-testid="${id}"]`);
            b.dispatchEvent(new MouseEvent('click', {bubbles: true}));
            b.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true, composed: true, detail: 1}));
            b.click();
            n += 3;
        }
        return n;
    }""")
    assert count == 9
    lab_page.page.wait_for_timeout(1500)
    assert lab_page.cells() == before
    assert "echo pwned" not in "\n".join(lab_page.sources())


def test_context_menu_offers_the_commands(lab_page: Page) -> None:
    lab_page.page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputArea-prompt").click(button="right")
    menu = lab_page.page.locator(".lm-Menu").last
    for label in ("ERNIE: Generate code in a new cell", "ERNIE: Explain / fix this cell", "ERNIE: Open chat"):
        menu.locator(".lm-Menu-itemLabel", has_text=label).wait_for(state="visible", timeout=10_000)
    lab_page.page.keyboard.press("Escape")


def test_palette_generate_inserts_and_runs_a_code_cell(lab_page: Page, e2e_sim: Any) -> None:
    lab_page.activate(len(lab_page.cells()) - 1)
    n_cells, n_req = len(lab_page.cells()), len(e2e_sim.chat_requests)
    e2e_sim.set_answer(text=_code_answer("print('generated')"), chunk_size=5, delay=0.0)
    lab_page.palette("ERNIE: Generate code in a new cell")
    dialog = lab_page.page.locator(".jp-Dialog")
    dialog.locator("input").fill("plot {nothing} 正弦")
    dialog.locator(".jp-mod-accept").click()
    # nothing has loaded the extension in this kernel yet: it is loaded silently, no %load_ext cell is written
    lab_page.page.wait_for_function(f"() => {NB}.model.cells.length >= {n_cells + 1}", timeout=10_000)
    assert lab_page.sources()[n_cells] == "%%ernie -f code\nplot {nothing} 正弦"
    assert e2e_sim.wait_for(lambda: len(e2e_sim.chat_requests) > n_req, timeout=30)
    assert e2e_sim.chat_requests[n_req].json["messages"][-1]["content"] == "plot {nothing} 正弦"
    lab_page.page.wait_for_function(
        f"() => JSON.stringify({NB}.model.cells.get({n_cells}).toJSON().outputs).includes('generated')",
        timeout=30_000)
    wait_idle(lab_page.page)
    cells = lab_page.cells()
    assert cells[n_cells]["metadata"]["ernie_widget"]["source"] == "command:generate"
    assert cells[n_cells]["execution_count"]
    # -f code: the kernel puts the generated code in the next cell (set_next_input)
    lab_page.page.wait_for_function(f"() => {NB}.model.cells.length === {n_cells + 2}", timeout=10_000)
    assert lab_page.sources()[n_cells + 1] == "print('generated')"
    assert "%load_ext" not in "\n".join(lab_page.sources())


def test_palette_explain_sends_the_cell_code_literally(lab_page: Page, e2e_sim: Any) -> None:
    code = 'd = {"k": 1}\nprint(f"{d} {{d}}", "{In[1]}")'
    n = len(lab_page.cells())
    lab_page.insert(n, code)
    lab_page.activate(n)
    n_req = len(e2e_sim.chat_requests)
    e2e_sim.set_answer(text="It prints a dict.", chunk_size=5, delay=0.0)
    lab_page.palette("ERNIE: Explain / fix this cell")
    lab_page.wait_cells(n + 2)  # only the %%ernie cell
    assert lab_page.sources()[n + 1].startswith("%%ernie\nExplain this code:")
    assert e2e_sim.wait_for(lambda: len(e2e_sim.chat_requests) > n_req, timeout=30)
    assert f"```python\n{code}\n```" in e2e_sim.chat_requests[n_req].json["messages"][-1]["content"]
    wait_idle(lab_page.page)


def test_palette_fix_runs_ernie_fix_for_the_failed_cell(lab_page: Page, e2e_sim: Any) -> None:
    n = len(lab_page.cells())
    lab_page.insert(n, "1 / 0")
    run_cell(lab_page.page, n)
    wait_idle(lab_page.page)
    assert lab_page.cells()[n]["outputs"][0]["output_type"] == "error"
    n_req = len(e2e_sim.chat_requests)
    e2e_sim.set_answer(text=_code_answer("1 / 1"), chunk_size=5, delay=0.0)
    lab_page.activate(n)
    lab_page.palette("ERNIE: Explain / fix this cell")
    lab_page.wait_cells(n + 2)
    assert lab_page.sources()[n + 1] == "%ernie --fix"
    assert e2e_sim.wait_for(lambda: len(e2e_sim.chat_requests) > n_req, timeout=30)
    sent = e2e_sim.chat_requests[n_req].json["messages"][-1]["content"]
    assert "ZeroDivisionError" in sent and "1 / 0" in sent
    wait_idle(lab_page.page)


def test_palette_open_chat_inserts_a_working_chat(lab_page: Page, e2e_sim: Any) -> None:
    chats = lab_page.page.locator(".ernie-chat").count()
    n = len(lab_page.cells())
    lab_page.activate(n - 1)
    lab_page.palette("ERNIE: Open chat")
    lab_page.wait_cells(n + 1)
    assert lab_page.sources()[n] == "from ernie_widget import ErnieChat\nErnieChat()"
    lab_page.page.wait_for_function(f"() => document.querySelectorAll('.ernie-chat').length > {chats}",
                                    timeout=30_000)
    wait_idle(lab_page.page)
    # the new chat sees the extension too
    e2e_sim.set_answer(text=_code_answer("z = 3"), chunk_size=5, delay=0.0)
    block = lab_page.ask("z")
    assert block.locator('[data-testid="ernie-insert-below"]').count() == 1


def test_explain_adds_no_load_cell_when_the_kernel_has_the_extension(browser: Any, ext_lab: JupyterServer,
                                                                     e2e_sim: Any) -> None:
    """A notebook whose kernel loaded ernie_widget without a `%load_ext` line in view (so the notebook's text cannot
    tell): Explain writes only its `%%ernie` cell, and nothing prints "already loaded"."""
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = Page(context.new_page())
    try:
        load = "get_ipython().extension_manager.load_extension('ernie_widget')"
        write_notebook(ext_lab.root / "loaded.ipynb", [load, "y = 2 ** 10"])
        open_notebook(page.page, ext_lab, "loaded.ipynb", "loaded")
        run_cell(page.page, 0)
        wait_idle(page.page)
        n_req = len(e2e_sim.chat_requests)
        e2e_sim.set_answer(text="It sets y.", chunk_size=5, delay=0.0)
        page.activate(1)
        page.palette("ERNIE: Explain / fix this cell")
        page.wait_cells(3)
        assert e2e_sim.wait_for(lambda: len(e2e_sim.chat_requests) > n_req, timeout=30)
        page.page.wait_for_function(f"() => JSON.stringify({NB}.model.cells.get(2).toJSON().outputs).includes('sets y')",
                                    timeout=30_000)
        wait_idle(page.page)
        sources = page.sources()
        assert sources[:2] == [load, "y = 2 ** 10"] and sources[2].startswith("%%ernie\nExplain this code:")
        assert "already loaded" not in json.dumps(page.cells())
        assert page.errors == []
    finally:
        context.close()


def test_keyboard_shortcuts_run_the_commands_in_command_mode(lab_page: Page, e2e_sim: Any) -> None:
    """E E explains / fixes the cell, E C opens a chat, E G asks for a prompt; typed in a cell editor they stay text."""
    page = lab_page.page
    bound = page.evaluate("() => window.jupyterapp.commands.keyBindings.filter(b => b.command.startsWith("
                          "'ernie-widget:')).map(b => [b.command, b.keys.join(' ')])")
    assert sorted(bound) == sorted([["ernie-widget:generate-code", "E G"], ["ernie-widget:explain-cell", "E E"],
                                    ["ernie-widget:open-chat", "E C"], ["ernie-widget:open-chat-beside", "E S"]])
    n = len(lab_page.cells())
    lab_page.insert(n, "answer = 6 * 7")
    cell = page.locator(".jp-Notebook .jp-Cell").nth(n)

    def command_mode() -> None:
        cell.locator(".jp-InputArea-prompt").click()
        page.keyboard.press("Escape")
        page.wait_for_function(f"() => {NB}.mode === 'command' && {NB}.activeCellIndex === {n}", timeout=5_000)

    # typed in the editor (edit mode), "ee" is text, not a command
    cell.locator(".cm-content").click()
    page.keyboard.type("ee")
    page.wait_for_timeout(300)
    assert len(lab_page.cells()) == n + 1
    lab_page.page.evaluate(f"() => {NB}.model.cells.get({n}).sharedModel.setSource('answer = 6 * 7')")

    n_req = len(e2e_sim.chat_requests)
    e2e_sim.set_answer(text="It multiplies.", chunk_size=5, delay=0.0)
    command_mode()
    page.keyboard.press("e")
    page.keyboard.press("e")
    lab_page.wait_cells(n + 2)
    assert lab_page.sources()[n + 1].startswith("%%ernie\nExplain this code:")
    assert e2e_sim.wait_for(lambda: len(e2e_sim.chat_requests) > n_req, timeout=30)
    wait_idle(page)

    command_mode()
    page.keyboard.press("e")
    page.keyboard.press("g")
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(state="visible", timeout=5_000)
    assert "ERNIE: Generate code" in dialog.text_content()
    dialog.locator(".jp-mod-reject").click()
    dialog.wait_for(state="detached", timeout=5_000)

    chats = page.locator(".ernie-chat").count()
    command_mode()
    page.keyboard.press("e")
    page.keyboard.press("c")
    lab_page.wait_cells(n + 3)
    assert lab_page.sources()[n + 1] == "from ernie_widget import ErnieChat\nErnieChat()"
    page.wait_for_function(f"() => document.querySelectorAll('.ernie-chat').length > {chats}", timeout=30_000)
    wait_idle(page)


# ---------------------------------------------------------------------------------------------------------------
# The chat beside the notebook (right sidebar)

SIDEBAR = '[data-testid="ernie-sidebar"]'
SIDEBAR_LABEL = "在侧边栏打开 ERNIE 对话 / ERNIE: Open chat beside notebook"
# quotes, CJK, an emoji and spaces: the path goes into the kernel code as a JSON literal (newlines: unit tests)
SIDE_NB = "side 'q' 边栏 🙂.ipynb"
SIDE_THREAD = f"sidebar:{SIDE_NB}"
SHOWN_CHAT = f"{SIDEBAR} .ernie-sidebar-output:not(.lm-mod-hidden) .ernie-chat"


def _sidebar_shows(page: Any, thread: str, text: str = "", timeout: float = 30_000) -> None:
    """Wait until the sidebar shows the chat of `thread` (connected, not a view marked stale), holding `text`."""
    try:
        page.wait_for_function(
            """([sel, root, thread, text]) => {
                const bar = document.querySelector(root);
                const chat = document.querySelector(sel);
                return bar && chat && chat.querySelector('[data-testid="ernie-input"]')
                    && bar.querySelector('[data-testid="ernie-sidebar-thread"] code')?.textContent === thread
                    && bar.querySelector('[data-testid="ernie-sidebar-status"]').dataset.state === 'ready'
                    && chat.textContent.includes(text) && !chat.closest('[data-stale]');
            }""", arg=[SHOWN_CHAT, SIDEBAR, thread, text], timeout=timeout)
    except Exception:
        shown = page.evaluate(f"document.querySelector({json.dumps(SIDEBAR)})?.innerText")
        pytest.fail(f"the sidebar does not show {thread!r} with {text!r}; it shows:\n{shown}")


def test_sidebar_chat_beside_the_notebook(lab_page: Page, ext_lab: JupyterServer, e2e_sim: Any) -> None:
    """No cell and no execution count; the same thread as %%ernie; follows the active notebook; survives a
    kernel restart (persisted thread)."""
    page = lab_page.page
    first_id = page.evaluate("window.jupyterapp.shell.currentWidget.id")
    write_notebook(ext_lab.root / SIDE_NB,
                   ["%load_ext ernie_widget", f'%%ernie --thread "{SIDE_THREAD}"\nand in a cell?'])
    page.evaluate("p => window.jupyterapp.commands.execute('docmanager:open', {path: p})", SIDE_NB)
    page.wait_for_function(f"p => window.jupyterapp.shell.currentWidget?.context?.path === p && {KERNEL}?.status "
                           "=== 'idle'", arg=SIDE_NB, timeout=60_000)
    run_cell(page, 0)
    wait_idle(page)
    before = lab_page.cells()
    assert before[0]["execution_count"] == 1

    # the notebook toolbar button, as a user would
    side_id = page.evaluate("window.jupyterapp.shell.currentWidget.id")
    page.locator(f"#{side_id} .ernie-sidebar-button").click()
    _sidebar_shows(page, SIDE_THREAD)
    hint = page.locator(f"{SIDEBAR} .ernie-sidebar-hint code").text_content()
    assert hint == f'%%ernie --thread "{SIDE_THREAD}"'
    wait_idle(page)
    assert lab_page.cells() == before  # no cell, no output, no execution count

    e2e_sim.set_answer(text="侧边栏的回答 sidebar-answer", chunk_size=6, delay=0.0)
    box = page.locator(f'{SHOWN_CHAT} [data-testid="ernie-input"]')
    box.click()
    box.fill("sidebar-question 侧边栏")
    box.press("Enter")
    _sidebar_shows(page, SIDE_THREAD, "sidebar-answer")
    page.locator(f'{SHOWN_CHAT} [data-testid="ernie-send"]').wait_for(state="visible", timeout=30_000)

    # %%ernie --thread <the sidebar's name> continues the sidebar's conversation
    n_req = len(e2e_sim.chat_requests)
    e2e_sim.set_answer(text="cell-answer", chunk_size=6, delay=0.0)
    run_cell(page, 1)
    assert e2e_sim.wait_for(lambda: len(e2e_sim.chat_requests) > n_req, timeout=30)
    sent = [(m["role"], m["content"]) for m in e2e_sim.chat_requests[n_req].json["messages"]]
    assert ("user", "sidebar-question 侧边栏") in sent
    assert ("assistant", "侧边栏的回答 sidebar-answer") in sent
    assert sent[-1] == ("user", "and in a cell?")
    wait_idle(page)
    cells = lab_page.cells()
    assert len(cells) == 2 and cells[1]["execution_count"] == 2  # the silent run took no count
    _sidebar_shows(page, SIDE_THREAD, "cell-answer")  # and the sidebar sees the cell's turn

    # the panel follows the active notebook: the first notebook's own chat, then back
    page.evaluate("id => window.jupyterapp.shell.activateById(id)", first_id)
    _sidebar_shows(page, "sidebar:ext.ipynb")
    assert "sidebar-question" not in page.locator(SHOWN_CHAT).text_content()
    page.evaluate("id => window.jupyterapp.shell.activateById(id)", side_id)
    _sidebar_shows(page, SIDE_THREAD, "sidebar-question")

    # a kernel restart: the panel reconnects by itself, and the persisted thread brings the transcript back
    page.evaluate(f"document.querySelector({json.dumps(SHOWN_CHAT)}).closest('.jp-OutputArea-child')"
                  ".setAttribute('data-stale', '')")
    page.evaluate("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
    _sidebar_shows(page, SIDE_THREAD, "cell-answer")
    assert (ext_lab.root / "sidebar-chats.sqlite3").is_file()
    wait_idle(page)
    assert lab_page.cells() == cells

    # the sidebar's chat offers the cell actions too: Insert below puts the code under the notebook's active cell
    e2e_sim.set_answer(text=_code_answer(CODE), chunk_size=7, delay=0.0)
    box = page.locator(f'{SHOWN_CHAT} [data-testid="ernie-input"]')
    box.click()
    box.fill("greet")
    box.press("Enter")
    page.locator(f"{SHOWN_CHAT} .ernie-codeblock").first.wait_for(state="visible", timeout=30_000)
    page.locator(f'{SHOWN_CHAT} [data-testid="ernie-send"]').wait_for(state="visible", timeout=30_000)
    page.locator(f'{SHOWN_CHAT} .ernie-codeblock [data-testid="ernie-insert-below"]').click()
    lab_page.wait_cells(3)
    assert lab_page.sources() == [cells[0]["source"], cells[1]["source"], CODE]
    assert lab_page.cells()[2]["metadata"]["ernie_widget"]["source"] == "chat:insert-below"


# ---------------------------------------------------------------------------------------------------------------
# Notebook 7


@pytest.fixture(scope="module")
def nb7(e2e_sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp("nb7")
    server = _start(root, _env(e2e_sim, root), app="notebook")
    try:
        yield server
    finally:
        server.stop()


def test_notebook7_buttons_commands_and_synthetic_clicks(browser: Any, nb7: JupyterServer, e2e_sim: Any) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = Page(context.new_page())
    try:
        _open_chat(page, e2e_sim, nb7, "nb7.ipynb", [CHAT_CELL, "x = 1"], nb7=True)
        assert page.page.locator(".jp-NotebookPanel[data-ernie-extension]").count() == 1
        e2e_sim.set_answer(text=_code_answer(CODE), chunk_size=6, delay=0.0)
        block = page.ask("greet")

        page.activate(1)  # the buttons act on the chat's cell, not on the active one
        block.locator('[data-testid="ernie-insert-below"]').click()
        page.wait_cells(3)
        assert page.sources() == [CHAT_CELL, CODE, "x = 1"]

        page.activate(2)
        block.locator('[data-testid="ernie-replace-cell"]').click()
        page.page.wait_for_function(f"() => {NB}.model.cells.get(0).sharedModel.getSource() === {json.dumps(CODE)}",
                                    timeout=10_000)
        assert page.sources() == [CODE, CODE, "x = 1"]

        before = page.cells()
        page.page.evaluate("""() => {
            for (const b of document.querySelectorAll('.ernie-chat [data-ernie-action]')) {
                b.dispatchEvent(new MouseEvent('click', {bubbles: true}));
                b.click();
            }
        }""")
        page.page.wait_for_timeout(1000)
        assert page.cells() == before

        e2e_sim.set_answer(text=_code_answer(RUN_CODE), chunk_size=6, delay=0.0)
        block = page.ask("42")
        block.locator('[data-testid="ernie-run-cell"]').click()
        page.page.wait_for_function(
            f"() => {NB}.model.toJSON().cells.some(c => JSON.stringify(c.outputs || []).includes('ran-42'))",
            timeout=30_000)

        n = len(page.cells())
        page.palette("ERNIE: Open chat")
        page.wait_cells(n + 1)
        page.page.wait_for_function("() => document.querySelectorAll('.ernie-chat').length === 2", timeout=30_000)
        wait_idle(page.page)

        # Notebook 7's right side panel holds the chat beside the notebook, again without a cell
        before = page.cells()
        page.palette(SIDEBAR_LABEL)
        _sidebar_shows(page.page, "sidebar:nb7.ipynb")
        wait_idle(page.page)
        assert page.cells() == before
        assert page.errors == []
    finally:
        context.close()


def test_notebook7_inline_completion(browser: Any, nb7: JupyterServer, e2e_sim: Any) -> None:
    """Notebook 7 has the same inline completer (and no status bar): the palette command turns it on."""
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = Page(context.new_page())
    try:
        write_notebook(nb7.root / "nb7-inline.ipynb", ["import json"])
        page.page.goto(nb7.url("notebooks/nb7-inline.ipynb"))
        page.page.wait_for_function(f"{KERNEL}?.status === 'idle'", timeout=120_000)
        page.palette("ERNIE 行内补全（开/关）/ ERNIE: Inline completion on/off")
        page.page.wait_for_function(f"() => window.jupyterapp.commands.isToggled('{TOGGLE_INLINE}')", timeout=10_000)
        e2e_sim.set_answer(text="json.dumps(data, ensure_ascii=False)", chunk_size=4, delay=0.0)
        _type_in_cell(page, 0, "\ntext = json.dumps")
        page.page.wait_for_function(f"() => document.querySelector('{GHOST}')?.textContent.includes('ensure_ascii')",
                                    timeout=20_000)
        page.page.keyboard.press("Tab")
        page.page.wait_for_function(
            f"() => {NB}.model.cells.get(0).sharedModel.getSource().endsWith('ensure_ascii=False)')", timeout=10_000)
        assert page.sources()[0] == "import json\ntext = json.dumps(data, ensure_ascii=False)"
        # the setting is the server's user setting: turn it off again for the other tests on this server
        page.palette("ERNIE 行内补全（开/关）/ ERNIE: Inline completion on/off")
        page.page.wait_for_function(f"() => !window.jupyterapp.commands.isToggled('{TOGGLE_INLINE}')",
                                    timeout=10_000)
        assert page.errors == []
    finally:
        context.close()


# ---------------------------------------------------------------------------------------------------------------
# Extension disabled


@pytest.fixture(scope="module")
def lab_disabled(e2e_sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp("disabled")
    env = _env(e2e_sim, root)
    # --level=user: the isolated JUPYTER_CONFIG_DIR (the default level, sys_prefix, would disable it for the venv)
    subprocess.run([sys.executable, "-m", "jupyter", "labextension", "disable", "--level=user", "ernie-widget"],
                   env=env, check=True, capture_output=True, timeout=120)
    page_config = json.loads((Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig" / "page_config.json").read_text())
    assert page_config["disabledExtensions"] == {"ernie-widget": True}
    listed = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], env=env, check=True,
                            capture_output=True, text=True, timeout=120)
    out = listed.stdout + listed.stderr
    assert "ernie-widget" in out and "disabled" in out.split("ernie-widget", 1)[1].splitlines()[0]
    server = _start(root, env)
    try:
        yield server
    finally:
        server.stop()


def test_with_the_extension_disabled_only_copy_is_offered(browser: Any, lab_disabled: JupyterServer,
                                                           e2e_sim: Any) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = Page(context.new_page())
    try:
        _open_chat(page, e2e_sim, lab_disabled, "off.ipynb", [CHAT_CELL, "x = 1"])
        assert page.page.locator("[data-ernie-extension]").count() == 0
        e2e_sim.set_answer(text=_code_answer(CODE), chunk_size=6, delay=0.0)
        block = page.ask("greet")
        assert block.locator('[data-testid="ernie-copy"]').count() == 1
        assert block.locator("[data-ernie-action]").count() == 0
        ids = page.page.evaluate("() => [...window.jupyterapp.commands.listCommands()]")
        assert not [c for c in ids if c.startswith("ernie-widget:")]
        before = page.cells()
        block.locator('[data-testid="ernie-copy"]').click()
        page.page.wait_for_timeout(500)
        assert page.cells() == before
        assert page.errors == []
    finally:
        context.close()


def test_built_extension_declares_its_contract() -> None:
    built = _installed_extension() if INSTALLED else BUILT
    meta = json.loads((built / "package.json").read_text(encoding="utf-8"))
    assert meta["name"] == "ernie-widget"
    shared = meta["jupyterlab"]["sharedPackages"]
    assert shared["@jupyterlab/notebook"]["requiredVersion"] == "^4.5.0"
    static = os.listdir(built / "static")
    assert any(name.startswith("remoteEntry.") for name in static)


# ---------------------------------------------------------------------------------------------------------------
# Inline completion (ghost text) through the server extension, in the same JupyterLab server

INLINE_CELLS = ["import pandas as pd", "import time"]
GHOST = ".jp-GhostText"
INLINE_STATUS = '[data-testid="ernie-inline-status"]'
TOGGLE_INLINE = "ernie-widget:toggle-inline-completion"
CANARY = "canary-9f1c2e7d"


class Traffic:
    """Every request the page sends (URL, headers, body) and every finished response body, as text."""

    def __init__(self, page: Any) -> None:
        self.sent: list[str] = []
        self.received: list[str] = []
        page.on("request", self._request)
        page.on("requestfinished", self._finished)

    def _request(self, req: Any) -> None:
        self.sent.append(f"{req.method} {req.url}\n{json.dumps(req.headers)}\n{req.post_data or ''}")

    def _finished(self, req: Any) -> None:
        try:
            resp = req.response()
            body = resp.body() if resp is not None else b""
        except Exception:  # a body that is gone (an aborted stream, a redirect) holds nothing to search
            return
        self.received.append(f"{req.url}\n{json.dumps(resp.headers if resp else {})}\n"
                             f"{body.decode('utf-8', 'replace')}")

    def contains(self, needle: str) -> bool:
        return any(needle in text for text in self.sent + self.received)


def _completion_requests(sim: Any) -> list[Any]:
    """The simulator's requests from the server extension (the chats in this module use the default model)."""
    return [r for r in sim.chat_requests if isinstance(r.json, dict) and r.json.get("model") == COMPLETION_MODEL]


@pytest.fixture(scope="module")
def inline_page(browser: Any, ext_lab: JupyterServer) -> Iterator[tuple[Page, Traffic]]:
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = Page(context.new_page())
    traffic = Traffic(page.page)
    write_notebook(ext_lab.root / "inline.ipynb", INLINE_CELLS)
    open_notebook(page.page, ext_lab, "inline.ipynb", "inline")
    yield page, traffic
    assert page.errors == []
    context.close()


def _inline_enabled(page: Any) -> bool:
    return bool(page.evaluate(f"() => window.jupyterapp.commands.isToggled('{TOGGLE_INLINE}')"))


def _new_cell(page: Page, kind: str = "code") -> int:
    """A new empty cell at the end of the notebook; its index."""
    n = len(page.cells())
    page.page.evaluate(f"() => {NB}.model.sharedModel.insertCell({n}, {{cell_type: '{kind}', source: ''}})")
    page.wait_cells(n + 1)
    return n


def _type_in_cell(page: Page, index: int, text: str) -> None:
    page.activate(index)
    editor = page.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".cm-content")
    editor.click()
    page.page.keyboard.press("Control+End")
    page.page.keyboard.type(text, delay=20)


def test_inline_completion_is_off_until_one_click_turns_it_on(inline_page: tuple[Page, Traffic],
                                                              e2e_sim: Any) -> None:
    page, _ = inline_page
    status = page.page.locator(INLINE_STATUS)
    status.wait_for(state="visible", timeout=30_000)
    assert not _inline_enabled(page.page)
    e2e_sim.clear()
    _type_in_cell(page, 0, "\ndf = pd.")
    page.page.wait_for_timeout(1500)  # past the debounce delay: an enabled provider would have asked by now
    assert _completion_requests(e2e_sim) == []
    assert page.page.locator(GHOST).count() == 0
    # a synthetic click from page script does not switch it on
    page.page.evaluate(f"() => document.querySelector('{INLINE_STATUS}').click()")
    page.page.wait_for_timeout(300)
    assert not _inline_enabled(page.page)
    status.click()
    page.page.wait_for_function(f"() => window.jupyterapp.commands.isToggled('{TOGGLE_INLINE}')", timeout=10_000)
    assert status.get_attribute("data-state") == "on"


def test_typing_shows_streamed_ghost_text_and_tab_accepts_it(inline_page: tuple[Page, Traffic], e2e_sim: Any) -> None:
    page, _ = inline_page
    assert _inline_enabled(page.page)
    e2e_sim.set_answer(text="pd.read_csv('sales.csv')", chunk_size=3, delay=0.03)
    _type_in_cell(page, 0, "read")  # the click on the status item took the focus: back into the cell, at its end
    ghost = page.page.locator(GHOST)
    ghost.wait_for(state="visible", timeout=20_000)
    page.page.wait_for_function(f"() => document.querySelector('{GHOST}')?.textContent.includes('sales.csv')",
                                timeout=20_000)
    # the model restarted the word being typed ("pd.read" → "pd.read_csv…"): the ghost is only what follows
    assert page.page.evaluate(f"() => document.querySelector('{GHOST}').textContent") == "_csv('sales.csv')"
    page.page.keyboard.press("Tab")
    page.page.wait_for_function(
        f"() => {NB}.model.cells.get(0).sharedModel.getSource().includes(\"df = pd.read_csv('sales.csv')\")",
        timeout=10_000)
    source = page.sources()[0]
    assert source == "import pandas as pd\ndf = pd.read_csv('sales.csv')", source
    request = _completion_requests(e2e_sim)[-1]
    text = json.dumps(request.json, ensure_ascii=False)
    assert "df = pd.read" in text


def test_typing_on_cancels_the_request_in_flight(inline_page: tuple[Page, Traffic], e2e_sim: Any) -> None:
    page, _ = inline_page
    e2e_sim.set_answer(text="x" * 400, chunk_size=1, delay=0.05)  # 20 s of streaming unless cancelled
    e2e_sim.clear()
    _type_in_cell(page, 1, "\nfor i in range(3):")
    assert e2e_sim.wait_for(lambda: any(r.chunks_sent > 2 for r in _completion_requests(e2e_sim)), timeout=20)
    first = next(r for r in _completion_requests(e2e_sim) if r.chunks_sent > 2)
    page.page.keyboard.type("\n", delay=0)
    assert e2e_sim.wait_for(lambda: first.disconnected or first.finished is not None, timeout=5)
    assert first.disconnected, "the upstream request was not closed when the user typed on"
    assert first.chunks_sent < 400


def test_completions_arrive_while_the_kernel_is_busy(inline_page: tuple[Page, Traffic], e2e_sim: Any) -> None:
    page, _ = inline_page
    # the kernel runs time.sleep(30), as a long cell would; completions do not go through the kernel
    page.page.evaluate(f"() => {{ {KERNEL}.requestExecute({{code: 'import time; time.sleep(30)'}}); }}")
    page.page.wait_for_function(f"{KERNEL}?.status === 'busy'", timeout=20_000)
    try:
        e2e_sim.set_answer(text="print('still here')", chunk_size=4, delay=0.0)
        _type_in_cell(page, _new_cell(page), "# say hello\nprint(")
        page.page.wait_for_function(f"() => document.querySelector('{GHOST}')?.textContent.includes('still here')",
                                    timeout=20_000)
        assert page.page.evaluate(f"() => {KERNEL}.status") == "busy"
    finally:
        page.page.evaluate(f"() => {KERNEL}.interrupt()")
        wait_idle(page.page)
    page.page.keyboard.press("Escape")


def test_markdown_cells_complete_as_markdown(inline_page: tuple[Page, Traffic], e2e_sim: Any) -> None:
    page, _ = inline_page
    e2e_sim.set_answer(text="按地区汇总销售额。", chunk_size=2, delay=0.0)
    e2e_sim.clear()
    _type_in_cell(page, _new_cell(page, "markdown"), "## 销售分析\n本节")
    page.page.wait_for_function(f"() => document.querySelector('{GHOST}')?.textContent.includes('汇总')",
                                timeout=20_000)
    request = _completion_requests(e2e_sim)[-1]
    assert "markdown" in json.dumps(request.json, ensure_ascii=False).lower()
    page.page.keyboard.press("Escape")


def test_the_key_never_reaches_the_browser(inline_page: tuple[Page, Traffic], e2e_sim: Any) -> None:
    page, traffic = inline_page
    # the capture would catch a key: a canary sent back the way a leaked key would come (in a completion) is seen.
    # The page reads this response to its end itself: a completion the inline completer stops reading is aborted
    # (as it should be), and an aborted response's body is not recorded.
    e2e_sim.set_answer(text=f"'{CANARY}'", chunk_size=5, delay=0.0)
    body = {"prefix": "token = ", "suffix": "", "language": "python", "cell_type": "code", "context": []}
    read = page.page.evaluate("""async (body) => {
        const r = await fetch('/ernie-widget/completion', {method: 'POST', body: JSON.stringify(body),
                              headers: {'Content-Type': 'application/json'}});
        return await r.text();
    }""", body)
    assert CANARY in read
    deadline = time.monotonic() + 15
    while not traffic.contains(CANARY) and time.monotonic() < deadline:
        page.page.wait_for_timeout(100)
    assert traffic.contains(CANARY)
    # the same answer through the inline completer, as a user gets it
    _type_in_cell(page, _new_cell(page), "token = ")
    page.page.wait_for_function(f"() => document.querySelector('{GHOST}')?.textContent.includes('{CANARY}')",
                                timeout=20_000)
    page.page.keyboard.press("Escape")
    assert any("ernie-widget/completion" in s for s in traffic.sent)
    dom = page.page.evaluate("() => document.documentElement.outerHTML")
    for secret in (FAKE_KEY, FAKE_KEY.split("/")[-1]):
        assert not traffic.contains(secret)
        assert secret not in dom


def test_the_endpoint_refuses_hosts_models_and_strangers(inline_page: tuple[Page, Traffic], ext_lab: JupyterServer,
                                                         e2e_sim: Any) -> None:
    page, _ = inline_page
    e2e_sim.clear()
    base = {"prefix": "x = ", "suffix": "", "language": "python", "cell_type": "code", "context": []}
    for extra in ({"base_url": "http://evil.example"}, {"model": "ernie-4.5-turbo-128k"}, {"provider": "openai"}):
        status = page.page.evaluate("""async (body) => {
            const r = await fetch('/ernie-widget/completion', {method: 'POST', body: JSON.stringify(body),
                                  headers: {'Content-Type': 'application/json'}});
            return r.status;
        }""", {**base, **extra})
        assert status == 400, (extra, status)
    import httpx

    r = httpx.post(f"http://127.0.0.1:{ext_lab.port}/ernie-widget/completion", json=base, timeout=10)
    assert r.status_code in (401, 403), r.status_code
    assert _completion_requests(e2e_sim) == []


def test_turning_it_off_stops_completions(inline_page: tuple[Page, Traffic], e2e_sim: Any) -> None:
    page, _ = inline_page
    page.page.locator(INLINE_STATUS).click()
    page.page.wait_for_function(f"() => !window.jupyterapp.commands.isToggled('{TOGGLE_INLINE}')", timeout=10_000)
    e2e_sim.clear()
    _type_in_cell(page, _new_cell(page), "print(")
    page.page.wait_for_timeout(1500)
    assert _completion_requests(e2e_sim) == []
    assert page.page.locator(GHOST).count() == 0
