"""ErnieChat in a real JupyterLab and Chromium, streaming from the protocol simulator."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    FAKE_KEY,
    KERNEL,
    PageRecorder,
    open_chat,
    run_cell,
    send,
    wait_idle,
    write_notebook,
)

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs"
CHAT = '[data-testid="ernie-message"][data-role="assistant"]'


@pytest.fixture(scope="module")
def page(browser: Any, lab: Any, lab_root: Path) -> Any:
    write_notebook(lab_root / "chat.ipynb", [
        "from ernie_widget import ErnieChat\nchat = ErnieChat()\nchat",
        "import time\ntime.sleep(4)",
    ])
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.recorder = PageRecorder(page)
    open_chat(page, lab, "chat.ipynb", "chat")
    yield page
    context.close()


@contextlib.contextmanager
def chat_page(browser: Any, lab: Any, lab_root: Path, thread: str, width: int = 1100, height: int = 900,
              chat: str | None = None) -> Iterator[Any]:
    """A page of its own: a new notebook whose first cell shows ErnieChat(thread=...) (or ``chat``), run and ready."""
    chat = chat or f"from ernie_widget import ErnieChat\nErnieChat(thread={thread!r})"
    write_notebook(lab_root / f"{thread}.ipynb", [chat])
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        open_chat(page, lab, f"{thread}.ipynb", thread)
        yield page
    finally:
        context.close()


def test_send_streams_an_answer_into_the_page(page: Any, e2e_sim: Any) -> None:
    e2e_sim.set_answer(text="流式回答：**重要的。**后文 done", chunk_size=3, delay=0.01)
    send(page, "你好")
    answer = page.locator(CHAT).last
    answer.locator("text=done").wait_for(timeout=20_000)
    assert answer.locator("strong").first.inner_text() == "重要的。"
    assert e2e_sim.chat_requests[-1].json["messages"][-1]["content"] == "你好"


def test_a_fast_stream_tunes_the_kernels_flush_grid_to_the_pages_frames(page: Any, e2e_sim: Any) -> None:
    """The page reports how long deltas waited for the frame that rendered them (`frame_timing`), and the kernel
    moves its flush grid (ernie_widget/frame_clock.py): read back from the kernel with a cell."""
    e2e_sim.set_answer(text="".join(f"w{i:04d} " for i in range(400)), chunk_size=6, delay=0.005)  # ~200 chunks/s
    send(page, "fast")
    page.locator(CHAT).last.locator("text=w0399").wait_for(timeout=30_000)
    page.locator('[data-testid="ernie-send"]').wait_for(state="visible", timeout=30_000)
    start = page.evaluate(f"() => {NOTEBOOK}.model.cells.length")
    page.evaluate(f"([at, source]) => {NOTEBOOK}.model.sharedModel.insertCells(at, [{{cell_type: 'code', source}}])",
                  [start, "print('grid moves:', chat._frames.version)"])
    try:
        run_cell(page, start)
        wait_idle(page)
        output = page.evaluate(f"() => {NOTEBOOK}.widgets[{start}].node.querySelector('.jp-OutputArea').innerText")
        assert output.startswith("grid moves:") and int(output.split(":")[1]) >= 1, output
    finally:
        page.evaluate(f"() => {{ const shared = {NOTEBOOK}.model.sharedModel; "
                      f"shared.deleteCellRange({start}, shared.cells.length); }}")


def test_keys_typed_in_the_chat_never_reach_notebook_shortcuts(page: Any, e2e_sim: Any) -> None:
    """Shift+Enter once re-ran the chat's cell (a new empty ErnieChat replaced it, the draft was lost); command-mode
    keys (a, b, d d, Escape, arrows) typed in the box must not act on cells either."""
    cells = "() => window.jupyterapp.shell.currentWidget.content.model.toJSON().cells.map(c => [c.source, c.execution_count])"
    page.evaluate("() => { document.querySelector('.ernie-chat').dataset.probe = 'the same view'; }")
    before = page.evaluate(cells)
    n = len(e2e_sim.chat_requests)
    box = page.locator('[data-testid="ernie-input"]')
    box.click()
    box.fill("")
    box.type("line one")
    box.press("Shift+Enter")
    box.type("line two ")
    for key in ["Escape", "ArrowUp", "ArrowDown", "a", "b", "d", "d", "Shift+Enter"]:
        box.press(key)
    page.wait_for_timeout(1500)  # a re-run cell or an inserted cell would show by now
    assert box.input_value() == "line one\nline two abdd\n"
    assert page.evaluate(cells) == before
    assert page.evaluate("() => document.querySelector('.ernie-chat').dataset.probe") == "the same view"
    assert len(e2e_sim.chat_requests) == n
    assert page.evaluate(f"() => {KERNEL}.status") == "idle"
    box.fill("")


def test_a_rerun_chat_cell_with_a_thread_keeps_the_conversation(browser: Any, lab: Any, lab_root: Path,
                                                                e2e_sim: Any) -> None:
    with chat_page(browser, lab, lab_root, "rerun") as other:
        e2e_sim.set_answer(text="kept across re-runs", chunk_size=5, delay=0.0)
        send(other, "remember me")
        other.locator(CHAT).last.locator("text=kept across re-runs").wait_for(timeout=20_000)
        wait_idle(other)
        run_cell(other, 0)  # a new ErnieChat object, the same named conversation
        wait_idle(other)
        other.locator(".ernie-chat").last.locator("text=kept across re-runs").wait_for(timeout=20_000)
        assert other.locator(".ernie-chat").count() == 1


def test_stop_closes_the_upstream_connection(page: Any, e2e_sim: Any) -> None:
    from ernie_widget.testing import Fault

    e2e_sim.push(Fault.endless(interval=0.02))
    n = len(e2e_sim.chat_requests)
    send(page, "keep talking")
    stop = page.locator('[data-testid="ernie-stop"]')
    stop.wait_for(state="visible", timeout=20_000)
    page.wait_for_timeout(500)
    stop.click()
    assert e2e_sim.wait_for(lambda: len(e2e_sim.chat_requests) > n and e2e_sim.chat_requests[n].disconnected,
                            timeout=3)
    page.locator('[data-testid="ernie-send"]').wait_for(state="visible", timeout=5000)


def test_retry_sends_the_question_again(page: Any, e2e_sim: Any) -> None:
    from ernie_widget.testing import Answer, Fault

    e2e_sim.push(Fault.status(400), Answer(text="second time lucky"))
    send(page, "retry me")
    err = page.locator('[data-testid="ernie-error"]').last
    err.wait_for(timeout=20_000)
    page.locator('[data-testid="ernie-retry"]').last.click()
    page.locator(CHAT).last.locator("text=second time lucky").wait_for(timeout=20_000)
    assert [r.json["messages"][-1]["content"] for r in e2e_sim.chat_requests[-2:]] == ["retry me", "retry me"]


def test_ime_composition_enter_does_not_send(page: Any, e2e_sim: Any) -> None:
    n = len(e2e_sim.chat_requests)
    box = page.locator('[data-testid="ernie-input"]')
    box.click()
    box.fill("")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": "nihao", "selectionStart": 5, "selectionEnd": 5})
    box.press("Enter")  # the Enter that a Chinese IME uses to pick the candidate
    page.wait_for_timeout(400)
    assert len(e2e_sim.chat_requests) == n, "Enter during IME composition must not send"
    cdp.send("Input.insertText", {"text": "你好"})
    page.wait_for_timeout(200)
    box.press("Enter")
    assert e2e_sim.wait_for(lambda: len(e2e_sim.chat_requests) > n, timeout=10)
    assert "你好" in e2e_sim.chat_requests[n].json["messages"][-1]["content"]
    wait_idle(page)


def test_reload_resyncs_from_the_kernel(page: Any, e2e_sim: Any) -> None:
    e2e_sim.set_answer(text="persisted answer text", chunk_size=4, delay=0.0)
    send(page, "remember this")
    page.locator(CHAT).last.locator("text=persisted answer text").wait_for(timeout=20_000)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(1000)
    page.reload(wait_until="domcontentloaded")
    page.wait_for_function(f"{KERNEL}?.status === 'idle'", timeout=120_000)
    page.wait_for_selector('[data-testid="ernie-input"]', timeout=60_000)
    page.locator(CHAT).filter(has_text="persisted answer text").first.wait_for(timeout=20_000)


def test_the_key_is_not_in_the_page_or_the_saved_notebook(page: Any, lab_root: Path, e2e_sim: Any) -> None:
    assert any(r.headers.get("authorization", "").endswith(FAKE_KEY) for r in e2e_sim.chat_requests), \
        "precondition: the kernel really used the key"
    html = page.content()
    assert FAKE_KEY not in html and "e2efakekey000" not in html
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(1500)
    saved = (lab_root / "chat.ipynb").read_text(encoding="utf-8")
    assert "ErnieChat" in saved  # precondition: the notebook was really saved
    assert FAKE_KEY not in saved and "e2efakekey000" not in saved


def test_a_narrow_layout_keeps_code_readable(page: Any, e2e_sim: Any) -> None:
    """At 700 px: the code buttons sit above the code (they covered its first lines), their labels stay on one
    line ("Cop/y"), a long line scrolls sideways instead of wrapping mid-identifier, icons are drawn."""
    page.set_viewport_size({"width": 700, "height": 900})
    try:
        long_line = "result = " + " + ".join(f"some_long_identifier_{i}" for i in range(12))
        e2e_sim.set_answer(text=f"Code:\n\n```python\n{long_line}\nprint(result)\n```\n", chunk_size=20)
        send(page, "long code please")
        block = page.locator(CHAT).last.locator(".ernie-codeblock").first
        block.wait_for(timeout=20_000)
        wait_idle(page)
        geometry = block.evaluate("""b => {
            const tools = b.querySelector('.ernie-code-tools').getBoundingClientRect();
            const pre = b.querySelector('pre');
            const buttons = [...b.querySelectorAll('.ernie-code-btn')].map(x => {
                const r = x.getBoundingClientRect();
                return {h: r.height, lh: parseFloat(getComputedStyle(x).lineHeight) || 18, w: x.scrollWidth, cw: x.clientWidth};
            });
            const lineHeight = parseFloat(getComputedStyle(pre).lineHeight);
            return {toolsBottom: tools.bottom, preTop: pre.getBoundingClientRect().top, buttons,
                    scrolls: pre.scrollWidth > pre.clientWidth, lines: Math.round((pre.clientHeight - 20) / lineHeight)};
        }""")
        assert geometry["toolsBottom"] <= geometry["preTop"] + 0.5, geometry
        assert geometry["buttons"] and all(b["h"] < 2 * b["lh"] + 6 for b in geometry["buttons"]), geometry
        assert geometry["scrolls"] and geometry["lines"] <= 3, geometry  # two code lines, not a wrapped dozen
        icons = page.locator(CHAT).last.locator(".ernie-action svg.ernie-icon")
        assert icons.count() >= 1 and icons.first.bounding_box()["width"] > 0
    finally:
        page.set_viewport_size({"width": 1100, "height": 900})


def test_an_error_in_the_dark_theme_is_dark(page: Any, e2e_sim: Any) -> None:
    from ernie_widget.testing import Fault

    e2e_sim.push(Fault.status(500), Fault.status(500), Fault.status(500))
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    try:
        page.wait_for_timeout(1500)
        send(page, "fail please")
        err = page.locator('[data-testid="ernie-error"]').last
        err.wait_for(timeout=30_000)
        rgb = err.evaluate("e => getComputedStyle(e).backgroundColor")
        inside = rgb[rgb.index("(") + 1:rgb.index(")")]
        if inside.startswith("srgb"):  # color-mix() computes to color(srgb r g b), channels in 0..1
            channels = [255 * float(x) for x in inside.split()[1:4]]
        else:
            channels = [float(x) for x in inside.split(",")[:3]]
        assert sum(channels) / 3 < 110, rgb  # a dark tint, not JupyterLab Dark's light-pink --jp-error-color3
    finally:
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
        page.wait_for_timeout(1000)
        wait_idle(page)


def test_hostile_math_and_bidi_stay_inside_their_own_elements(page: Any, e2e_sim: Any) -> None:
    """An answer cannot paint over the words around it (\\rlap{\\rule}) nor reverse the text after a link
    whose label holds U+202E; a math bomb leaves the rest of the answer and the chat working."""
    bomb = "\\(" + "{" * 2400 + "x" + "}" * 2400 + "\\)"
    e2e_sim.set_answer(text="Before $\\rlap{\\rule{40em}{1.6em}}$ COVERED-WORDS here.\n\n"
                            "See [\u202egpj.exe](https://example.com/f) Post113word end.\n\n"
                            f"{bomb} AFTER-THE-BOMB", chunk_size=50)
    send(page, "hostile please")
    answer = page.locator(CHAT).last
    answer.locator("text=AFTER-THE-BOMB").wait_for(timeout=20_000)
    wait_idle(page)
    probe = answer.evaluate("""el => {
        const find = (needle) => {
            const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
            for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                const i = n.data.indexOf(needle);
                if (i >= 0) return [n, i];
            }
            return null;
        };
        const rectOf = (node, i, len) => { const r = document.createRange(); r.setStart(node, i);
                                           r.setEnd(node, i + len); return r.getBoundingClientRect(); };
        const [pn, pi] = find("Post113word");
        const first = rectOf(pn, pi, 1), last = rectOf(pn, pi + 10, 1);
        const katex = el.querySelector('.katex');
        const box = katex.getBoundingClientRect();
        const widest = Math.max(...[...katex.querySelectorAll('*')].map(x => x.getBoundingClientRect().right));
        const style = getComputedStyle(katex);
        return {ruleReachesOut: widest > box.right + 50, clipped: style.contain.includes('paint')
                && style.overflow === 'hidden', ltr: first.left < last.left};
    }""")
    # the rule's own box reaches far past the formula (that is the attack); the formula clips its painting
    assert probe["ruleReachesOut"] and probe["clipped"], probe
    assert probe["ltr"], probe  # "Post113word" still reads left to right after the link


def test_screenshots_for_the_readme(browser: Any, lab: Any, lab_root: Path, e2e_sim: Any) -> None:
    """README images: a chat of its own (no test traffic in view), answers paced like a real model."""
    from ernie_widget.testing import Answer

    with chat_page(browser, lab, lab_root, "readme", width=1000) as shot:
        e2e_sim.push(
            Answer(text="Transformer 用**自注意力**让每个词直接关注句中所有其他词，并行计算、捕捉长距离依赖；"
                        "编码器理解输入，解码器逐词生成输出。", chunk_size=3, delay=0.03),
            Answer(text="下面按月汇总收入并画柱状图 / monthly revenue as a bar chart:\n\n```python\nimport pandas as pd\n"
                        "df = pd.read_csv('sales.csv', parse_dates=['date'])\n"
                        "monthly = df.groupby(df['date'].dt.to_period('M'))['revenue'].sum()\n"
                        "monthly.plot.bar(title='Revenue by month')\n```\n\n**提示：** `date` 列需是日期。",
                   reasoning="用户想按月汇总并画图：先解析日期，再按月分组求和。", chunk_size=4, delay=0.03))
        send(shot, "用三句话解释 Transformer")
        shot.locator(CHAT).last.locator("text=解码器").wait_for(timeout=30_000)
        wait_idle(shot)
        send(shot, "用 pandas 按月画收入柱状图")
        shot.locator(CHAT).last.locator("text=Revenue by month").first.wait_for(timeout=30_000)
        wait_idle(shot)
        shot.wait_for_timeout(500)
        DOCS.mkdir(exist_ok=True)
        widget = shot.locator(".ernie-chat").first
        widget.screenshot(path=str(DOCS / "screenshot-light.png"))
        shot.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        shot.wait_for_timeout(2000)
        widget.screenshot(path=str(DOCS / "screenshot-dark.png"))
        bg = widget.evaluate("el => getComputedStyle(el).backgroundColor")
        text = widget.inner_text()
        shot.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
        shot.wait_for_timeout(1000)
    assert (DOCS / "screenshot-light.png").stat().st_size > 5000
    assert bg != "rgb(255, 255, 255)", "the dark theme must change the widget's colours"
    assert "persisted" not in text and "retry me" not in text  # no test traffic in the README's picture


def test_web_sources_are_listed_and_a_marker_opens_its_source_only_on_a_real_click(page: Any, e2e_sim: Any) -> None:
    """chat.web_search = True asks for citations; the answer's sources are listed under it (a hostile title as
    text, a javascript: URL without a link) and its ^[1]^ marker opens source 1 in a new tab, without opener or
    referrer, on a real click only: el.click() and a dispatched click open nothing, though the same synthetic
    clicks on a plain target=_blank link outside the chat do open a page in this browser."""
    from ernie_widget.testing import Answer

    source = f"{e2e_sim.url}/source/ernie-4.5?from=e2e"  # a local server, never the internet
    title = "本地来源 <img src=x onerror=alert(1)>"
    assert page.evaluate(f"() => {KERNEL}.requestExecute({{code: 'chat.web_search = True'}}).done.then(() => true)")
    try:
        e2e_sim.push(Answer(text="ERNIE 4.5 已开源^[1]^，另见^[2]^。", chunk_size=4, delay=0.02, search_results=[
            {"index": 1, "url": source, "title": title}, {"index": 2, "url": "javascript:alert(2)", "title": "坏链接"}]))
        send(page, "ERNIE 4.5 开源了吗？")
        answer = page.locator(CHAT).last
        items = answer.locator('[data-testid="ernie-sources"] li')
        items.nth(1).wait_for(timeout=20_000)
        wait_idle(page)
        assert e2e_sim.chat_requests[-1].json["web_search"]["enable_citation"] is True
    finally:
        page.evaluate(f"() => {KERNEL}.requestExecute({{code: 'chat.web_search = False'}}).done.then(() => true)")
    assert items.count() == 2
    assert items.nth(0).locator(".ernie-source-title").inner_text() == title
    assert items.nth(0).locator(".ernie-source-host").inner_text() == "127.0.0.1"
    assert items.nth(1).locator("a").count() == 0 and answer.locator("img").count() == 0
    assert "另见^[2]^" in answer.locator(".ernie-answer").inner_text()  # no usable source: the marker stays text
    marker = answer.locator(".ernie-cite a")
    assert marker.count() == 1 and marker.get_attribute("href") == source

    opened: list[Any] = []

    def record(new_page: Any) -> None:
        opened.append(new_page)

    page.context.on("page", record)
    synthetic = "a => { a.click(); a.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true})); }"
    marker.evaluate(synthetic)
    answer.locator(".ernie-source-link").evaluate(synthetic)
    page.wait_for_timeout(700)
    assert opened == [], [p.url for p in opened]
    # the control: outside the chat the same synthetic clicks do open a page, so the browser would have
    page.evaluate(f"""() => {{ const a = Object.assign(document.createElement('a'), {{href: {json.dumps(source + '&control=1')},
                                target: '_blank', id: 'ernie-e2e-control'}}); document.body.append(a); }}""")
    page.locator("#ernie-e2e-control").evaluate("a => { a.click(); a.remove(); }")
    page.wait_for_timeout(700)
    assert len(opened) == 1
    opened.pop().close()

    requests_before = len(e2e_sim.all_requests)
    with page.context.expect_page(timeout=10_000) as popup_info:
        marker.click()
    popup = popup_info.value
    popup.wait_for_load_state("domcontentloaded")
    assert popup.url == source
    assert popup.evaluate("() => window.opener === null && document.referrer === ''")
    visit = [r for r in e2e_sim.all_requests[requests_before:] if r.path.startswith("/source/")]
    assert visit and "referer" not in visit[0].headers
    popup.close()
    page.context.remove_listener("page", record)


def test_at_mention_sends_a_dataframe_as_context_and_an_ime_at_opens_nothing(page: Any, e2e_sim: Any) -> None:
    """Typing @ lists the notebook's variables, typing filters them, ↓ and Enter pick one as a chip; the question
    then carries the DataFrame's description (its real column names) to the model, and the sent message shows
    it. An @ composed by an IME, and the full-width ＠ a Chinese IME commits, open nothing."""
    code = ("import pandas as pd\nsales_by_region = pd.DataFrame({'region': ['north', 'south', 'east'], "
            "'units_sold': [3, 4, 5], 'unit_price': [9.5, 7.25, 8.0]})\nsales_note = 'q3'")
    assert page.evaluate(f"() => {KERNEL}.requestExecute({{code: {json.dumps(code)}}}).done.then(() => true)")
    wait_idle(page)
    box = page.locator('[data-testid="ernie-input"]')
    suggest = page.locator('[data-testid="ernie-suggest"]')
    box.click()
    cdp = page.context.new_cdp_session(page)
    for typed in ("@", "＠"):
        box.fill("")
        cdp.send("Input.imeSetComposition", {"text": typed, "selectionStart": 1, "selectionEnd": 1})
        page.wait_for_timeout(300)
        assert suggest.is_hidden()
        cdp.send("Input.insertText", {"text": typed})  # the IME commits it
        page.wait_for_timeout(300)
        assert suggest.is_hidden() and box.input_value() == typed

    box.fill("")
    box.press_sequentially("看看 @sal")
    options = suggest.locator('[role="option"]')
    options.filter(has_text="sales_note").wait_for(timeout=10_000)
    box.press_sequentially("es_")
    page.wait_for_timeout(300)  # past the debounce: the kernel's answer for "sales_" is in
    assert sorted(o.split()[0] for o in options.all_inner_texts()) == ["sales_by_region", "sales_note"]
    box.press("ArrowDown")
    assert box.get_attribute("aria-activedescendant") == options.nth(1).get_attribute("id")
    box.press_sequentially("by")
    page.wait_for_timeout(300)
    assert options.all_inner_texts()[0].split() == ["sales_by_region", "DataFrame", "3", "×", "3"]
    assert options.count() == 1
    assert box.get_attribute("aria-activedescendant") == options.first.get_attribute("id")
    box.press("Enter")
    chip = page.locator('[data-testid="ernie-chip"]')
    chip.wait_for(timeout=10_000)
    assert suggest.is_hidden() and box.input_value() == "看看 @sales_by_region "
    label = chip.inner_text()
    assert label.startswith("@sales_by_region DataFrame 3 × 3 · ") and " tok" in label, label

    e2e_sim.set_answer(text="mention answered", chunk_size=8)
    n = len(e2e_sim.chat_requests)
    box.press_sequentially("怎么样")
    box.press("Enter")
    page.locator(CHAT).last.locator("text=mention answered").wait_for(timeout=20_000)
    wait_idle(page)
    sent = json.dumps(e2e_sim.chat_requests[n].json["messages"], ensure_ascii=False)
    assert "sales_by_region" in sent and "units_sold" in sent and "unit_price" in sent
    assert chip.count() == 0
    user = page.locator('[data-testid="ernie-message"][data-role="user"]').last
    assert user.locator('[data-testid="ernie-context"] .ernie-chip').inner_text().startswith("@sales_by_region")
    user.locator(".ernie-context summary").click()
    assert "units_sold" in user.locator(".ernie-context pre").inner_text()


def test_no_remote_request_and_no_dialog_during_the_session(page: Any) -> None:
    assert page.recorder.remote() == [], json.dumps(page.recorder.remote()[:5])
    assert page.recorder.dialogs == []


# -- @-mentions: the mouse, the chip's preview and ×, a reload, %%ernie in a cell ------------------------------------

NOTEBOOK = "window.jupyterapp.shell.currentWidget.content"


def run_in_kernel(page: Any, code: str) -> None:
    """Run code in the module's kernel without a cell (defines the variables a test mentions)."""
    assert page.evaluate(f"() => {KERNEL}.requestExecute({{code: {json.dumps(code)}}}).done.then(() => true)")
    wait_idle(page)


def pick_by_mouse(page: Any, typed: str, name: str) -> None:
    """Type ``typed`` (it ends in a partial ``@name``) and click ``name`` in the @ list while another option is the
    highlighted one, so only the mouse can have chosen it."""
    box = page.locator('[data-testid="ernie-input"]')
    options = page.locator('[data-testid="ernie-suggest"] [role="option"]')
    box.press_sequentially(typed)
    page.wait_for_timeout(300)  # past the debounce: the kernel's answer for the whole prefix is in
    wanted = options.filter(has_text=name)
    wanted.wait_for(timeout=10_000)
    assert options.count() >= 2, options.all_inner_texts()
    if wanted.get_attribute("aria-selected") == "true":
        box.press("ArrowDown")
    assert wanted.get_attribute("aria-selected") == "false"
    wanted.click()


def test_at_mention_by_mouse_its_preview_is_what_is_sent_x_removes_it_and_a_reload_keeps_the_context(
        page: Any, e2e_sim: Any) -> None:
    """A chip chosen with the mouse; clicking it shows exactly the text the model then receives; × drops a chip and
    the next question goes without context; after a reload the sent message still shows its chip and its
    "上下文 / Context" section (from the saved `messages` trait), and the other one shows none."""
    run_in_kernel(page, "import pandas as pd\nmouse_df = pd.DataFrame({'alpha_col': [1, 2], 'beta_col': ['x', 'y']})\n"
                        "mouse_note = 'a short note'")
    box = page.locator('[data-testid="ernie-input"]')
    suggest = page.locator('[data-testid="ernie-suggest"]')
    chip = page.locator('[data-testid="ernie-chip"]')
    preview = page.locator('[data-testid="ernie-chip-preview"]')
    box.click()
    box.fill("")
    pick_by_mouse(page, "@mouse_", "mouse_df")
    chip.wait_for(timeout=10_000)
    assert suggest.is_hidden() and box.input_value() == "@mouse_df "
    assert chip.count() == 1 and chip.inner_text().startswith("@mouse_df DataFrame 2 × 2")
    assert preview.is_hidden()
    chip.locator(".ernie-chip-label").click()
    preview.wait_for(timeout=5000)
    shown = preview.evaluate("e => e.textContent")
    assert "alpha_col" in shown and "beta_col" in shown and "`" not in shown, shown
    assert chip.locator(".ernie-chip-label").get_attribute("aria-expanded") == "true"

    e2e_sim.set_answer(text="mouse mention answered", chunk_size=8)
    n = len(e2e_sim.chat_requests)
    box.press_sequentially("怎么样 mouse-e2e-1")
    box.press("Enter")
    page.locator(CHAT).last.locator("text=mouse mention answered").wait_for(timeout=20_000)
    wait_idle(page)
    content = e2e_sim.chat_requests[n].json["messages"][-1]["content"]
    assert content.startswith("@mouse_df 怎么样 mouse-e2e-1\n\n"), content
    # the only fenced block of the request's question is the chip's text, to the character
    assert content.count("```text\n") == 1 and content.split("```text\n", 1)[1].rsplit("\n```", 1)[0] == shown
    assert chip.count() == 0 and preview.is_hidden()

    box.click()
    pick_by_mouse(page, "@mouse_", "mouse_note")
    chip.wait_for(timeout=10_000)
    chip.locator(".ernie-chip-label").click()
    preview.wait_for(timeout=5000)
    chip.locator(".ernie-chip-remove").click()
    assert chip.count() == 0 and preview.is_hidden()
    e2e_sim.set_answer(text="no context answered", chunk_size=8)
    n = len(e2e_sim.chat_requests)
    box.press_sequentially("不带上下文 mouse-e2e-2")  # the words "@mouse_note" stay in the text: only chips attach
    box.press("Enter")
    page.locator(CHAT).last.locator("text=no context answered").wait_for(timeout=20_000)
    wait_idle(page)
    assert e2e_sim.chat_requests[n].json["messages"][-1]["content"] == "@mouse_note 不带上下文 mouse-e2e-2"

    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(500)
    page.reload(wait_until="domcontentloaded")
    page.wait_for_function(f"{KERNEL}?.status === 'idle'", timeout=120_000)
    users = page.locator('[data-testid="ernie-message"][data-role="user"]')
    with_context = users.filter(has_text="mouse-e2e-1").first
    with_context.wait_for(timeout=30_000)
    section = with_context.locator('[data-testid="ernie-context"]')
    assert section.locator(".ernie-chip").inner_text().startswith("@mouse_df DataFrame 2 × 2")
    summary = section.locator("summary")
    assert summary.inner_text() in ("上下文", "Context")
    assert section.locator("pre").is_hidden()  # collapsed until asked
    summary.click()
    assert section.locator("pre").evaluate("e => e.textContent") == shown
    assert users.filter(has_text="mouse-e2e-2").first.locator('[data-testid="ernie-context"]').is_hidden()


def test_ernie_magic_in_a_cell_sends_an_earlier_cells_dataframe_and_says_what_it_attached(
        page: Any, e2e_sim: Any) -> None:
    """``%%ernie -f code`` with ``@df`` in a notebook cell: the model gets df's real column names, the cell's output
    lists what was attached, and the answer's code becomes the next cell."""
    from ernie_widget.testing import Answer

    cells = ["%load_ext ernie_widget\nimport pandas as pd\n"
             "df = pd.DataFrame({'revenue_eur': [1.5, 2.5, 4.0], 'region_code': ['N', 'S', 'E']})",
             "%%ernie -f code\nplot @df by region"]
    start = page.evaluate(f"() => {NOTEBOOK}.model.cells.length")
    page.evaluate(f"([at, cells]) => {NOTEBOOK}.model.sharedModel.insertCells(at, "
                  "cells.map(source => ({cell_type: 'code', source})))", [start, cells])
    try:
        run_cell(page, start)
        wait_idle(page)
        e2e_sim.push(Answer(text="```python\ndf.plot.bar(x='region_code', y='revenue_eur')\n```", chunk_size=10))
        n = len(e2e_sim.chat_requests)
        run_cell(page, start + 1)
        assert e2e_sim.wait_for(lambda: len(e2e_sim.chat_requests) > n, timeout=20)
        wait_idle(page)
        question = e2e_sim.chat_requests[-1].json["messages"][-1]["content"]
        assert question.startswith("plot @df by region\n\n") and "### @df (DataFrame 3 × 2)" in question, question
        assert "revenue_eur" in question and "region_code" in question
        output = page.evaluate(f"() => {NOTEBOOK}.widgets[{start + 1}].node.querySelector('.jp-OutputArea').innerText")
        assert "attached: @df (DataFrame 3 × 2 · " in output, output
        inserted = page.evaluate(f"() => {NOTEBOOK}.model.cells.get({start + 2})?.sharedModel.getSource()")
        assert inserted == "df.plot.bar(x='region_code', y='revenue_eur')"
    finally:  # the module's notebook as it was, for the tests after this one
        page.evaluate(f"() => {{ const shared = {NOTEBOOK}.model.sharedModel; "
                      f"shared.deleteCellRange({start}, shared.cells.length); }}")


def test_agent_mode_asks_before_running_code_and_only_a_real_click_runs_it(browser: Any, lab: Any, lab_root: Path,
                                                                          e2e_sim: Any) -> None:
    """``ErnieChat(agent=True)``: the model asks to run Python; the chat shows the step's approval card; a click
    dispatched by page script runs nothing; the user's click on Run runs the code in this kernel, and the answer
    follows with the step shown as done."""
    from ernie_widget.testing import Answer

    write_notebook(lab_root / "agent.ipynb", ["from ernie_widget import ErnieChat\nErnieChat(agent=True)"])
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    other = context.new_page()
    try:
        open_chat(other, lab, "agent.ipynb", "agent")
        e2e_sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "agent_x = 41 + 1"}}]),
                     Answer(text="agent done"))
        send(other, "compute agent_x")
        step = other.locator('[data-testid="ernie-tool-step"]').first
        run = other.locator('[data-testid="ernie-tool-approve"]')
        run.wait_for(timeout=20_000)
        assert step.get_attribute("data-status") == "waiting"
        assert step.locator(".ernie-tool-code").inner_text() == "agent_x = 41 + 1"
        other.evaluate("() => document.querySelector('[data-testid=\"ernie-tool-approve\"]').click()")  # page script
        other.wait_for_timeout(1000)
        assert step.get_attribute("data-status") == "waiting" and run.is_enabled()
        run.click()  # the user's
        other.locator(CHAT).last.locator("text=agent done").wait_for(timeout=30_000)
        wait_idle(other)
        assert other.locator('[data-testid="ernie-tool-step"]').first.get_attribute("data-status") == "done"
        status = other.evaluate(f"() => {KERNEL}.requestExecute({{code: 'assert agent_x == 42'}})"
                                ".done.then(r => r.content.status)")
        assert status == "ok"
    finally:
        context.close()


@pytest.fixture(scope="module")
def agent_page(browser: Any, lab: Any, lab_root: Path) -> Iterator[Any]:
    """One agent chat for the tests below (a fresh kernel: the module's other notebook may be busy)."""
    with chat_page(browser, lab, lab_root, "agent2", height=1000,
                   chat="from ernie_widget import ErnieChat\nagent = ErnieChat(agent=True)\nagent") as page:
        yield page


def _step(page: Any, n: int) -> Any:
    return page.locator('[data-testid="ernie-tool-step"]').nth(n)


def test_agent_stop_interrupts_tool_code_within_two_seconds_and_the_next_turn_works(agent_page: Any,
                                                                                    e2e_sim: Any) -> None:
    """While `time.sleep(30)` holds the kernel's main thread the kernel cannot read the Stop message; the Stop
    click (a real one) has the companion extension interrupt the kernel, which ends the tool and the turn."""
    from ernie_widget.testing import Answer

    page = agent_page
    before = page.locator('[data-testid="ernie-tool-step"]').count()
    e2e_sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "import time\ntime.sleep(30)"}}]))
    send(page, "sleep a while")
    page.locator('[data-testid="ernie-tool-approve"]').wait_for(timeout=20_000)
    page.locator('[data-testid="ernie-tool-approve"]').click()
    step = _step(page, before)
    page.wait_for_function("() => document.querySelector('[data-testid=\"ernie-stop\"]')"
                           "?.hasAttribute('data-ernie-interrupt')", timeout=20_000)
    assert step.get_attribute("data-status") == "running"
    page.wait_for_timeout(500)  # well inside the sleep
    started = page.evaluate("() => performance.now()")
    page.locator('[data-testid="ernie-stop"]').click()
    page.wait_for_function("() => document.querySelector('[data-testid=\"ernie-stop\"]').hidden", timeout=10_000)
    took = (page.evaluate("() => performance.now()") - started) / 1000
    assert took < 2.0, f"Stop took {took:.2f} s"
    assert step.get_attribute("data-status") in ("failed", "skipped")
    wait_idle(page, timeout=10_000)
    e2e_sim.push(Answer(text="after the stop"))
    send(page, "still there?")
    page.locator(CHAT).last.locator("text=after the stop").wait_for(timeout=30_000)


def test_agent_edit_skip_figures_html_as_text_and_a_reload_keeps_the_steps(agent_page: Any, e2e_sim: Any) -> None:
    from ernie_widget.testing import Answer

    page = agent_page
    first = page.locator('[data-testid="ernie-tool-step"]').count()
    html = "<b id=evil>bold</b><img src=x onerror=alert(1)>"
    e2e_sim.push(
        Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "print('unchanged')"}}]),
        Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "skipped_ran = True"}}]),
        Answer(text="all three done"),
    )
    send(page, "edit, skip, plot")
    # 1. Edit: what runs is the code the user wrote, and its HTML-looking output is text
    page.locator('[data-testid="ernie-tool-edit"]').wait_for(timeout=20_000)
    page.locator('[data-testid="ernie-tool-edit"]').click()
    editor = page.locator('[data-testid="ernie-tool-editor"]')
    editor.fill("import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n"
                f"plt.plot([1, 3, 2])\nprint({html!r})")
    page.locator('[data-testid="ernie-tool-approve"]').click()
    # 2. Skip: nothing runs; the model reads a denial
    page.locator('[data-testid="ernie-tool-deny"]').wait_for(timeout=30_000)
    page.locator('[data-testid="ernie-tool-deny"]').click()
    page.locator(CHAT).last.locator("text=all three done").wait_for(timeout=30_000)
    wait_idle(page)
    edited, skipped = _step(page, first), _step(page, first + 1)
    assert edited.get_attribute("data-status") == "done" and skipped.get_attribute("data-status") == "skipped"
    if edited.get_attribute("open") is None:
        edited.locator("summary").click()
    result = edited.locator('[data-testid="ernie-tool-result"]').inner_text()
    assert html in result and "unchanged" not in result
    assert page.locator("#evil").count() == 0  # shown as text, never as HTML
    assert edited.locator("img.ernie-tool-image").count() == 1  # the new figure, in the step
    denial = json.dumps(e2e_sim.chat_requests[-1].json["messages"][-1], ensure_ascii=False)
    assert "declin" in denial.lower() or "拒绝" in denial or "skip" in denial.lower(), denial
    ran = page.evaluate(f"() => {KERNEL}.requestExecute({{code: 'assert \"skipped_ran\" not in globals()'}})"
                        ".done.then(r => r.content.status)")
    assert ran == "ok"
    # 3. a reload shows the steps again, from the transcript the kernel holds
    n = page.locator('[data-testid="ernie-tool-step"]').count()
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(1000)
    page.reload()
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=\"ernie-tool-step\"]').length >= {n}",
                           timeout=60_000)
    assert page.locator("#evil").count() == 0
