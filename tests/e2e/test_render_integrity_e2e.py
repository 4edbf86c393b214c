"""Renderer integrity in a real JupyterLab and Chromium (issue 19): hostile answers cannot hide, reverse or drop text.

Pixel-level checks on screenshots: the user's question bubble looks exactly the same whether the answer under it is
harmless or raises a white rule over it, and the words around a covering rule still show dark text on the light
background. Direction: the word after a U+202E link reads left to right (bounding boxes of its first and last
letter), in the widget and in `%%ernie` output. Text after a nesting bomb is shown. A transcript with pathological
answers renders again when the page is reopened, and the chat still works after it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from .conftest import PageRecorder, open_chat, run_cell, send, wait_idle, write_notebook

pytestmark = pytest.mark.e2e

CHAT = '[data-testid="ernie-message"][data-role="assistant"]'
USER = '[data-testid="ernie-message"][data-role="user"]'
QUESTION = "QUESTION-MUST-STAY-VISIBLE please answer"
# a white rule raised over everything above the answer: the question bubble, the paragraph before
COVER = "$\\raisebox{4em}{\\color{white}\\rlap{\\rule{60em}{9em}}}$"
BLACK = "$\\rlap{\\rule{40em}{1.6em}}$"
BOMB_TEX = "$" + "{" * 2400 + "x" + "}" * 2400 + "$"
NEST_BOMB = "- " * 60 + "deep"

# Where a string is on screen: the client rect of its first occurrence in a text node under `root`, or of its
# `k`-th character (k >= 0).
RECT = """([root, needle, k]) => {
  for (const el of document.querySelectorAll(root)) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const i = n.data.indexOf(needle);
      if (i < 0) continue;
      const r = document.createRange();
      r.setStart(n, k >= 0 ? i + k : i);
      r.setEnd(n, k >= 0 ? i + k + 1 : i + needle.length);
      const b = r.getBoundingClientRect();
      return { x: b.left, y: b.top, width: b.width, height: b.height };
    }
  }
  return null;
}"""


@pytest.fixture(scope="module")
def page(browser: Any, lab: Any, lab_root: Path) -> Any:
    write_notebook(lab_root / "integrity.ipynb", [
        "from ernie_widget import ErnieChat\nchat = ErnieChat()\nchat",
        "%load_ext ernie_widget",
        "%%ernie\nkernel vectors",
    ])
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    pg.recorder = PageRecorder(pg)
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    open_chat(pg, lab, "integrity.ipynb", "integrity")
    yield pg
    context.close()


def ask(page: Any, sim: Any, question: str, answer: str, until: str) -> Any:
    sim.set_answer(text=answer, chunk_size=40)
    send(page, question)
    last = page.locator(CHAT).last
    last.locator(f"text={until}").first.wait_for(timeout=30_000)
    page.locator('[data-testid="ernie-send"]').wait_for(state="visible", timeout=30_000)
    page.wait_for_timeout(200)
    return last


def pixels(page: Any, locator: Any) -> Image.Image:
    locator.scroll_into_view_if_needed()
    return Image.open(io.BytesIO(locator.screenshot())).convert("L")


# Wraps the first occurrence of a string under `root` in a plain <span data-probe> (no style: layout unchanged), so
# Playwright can scroll it into view and screenshot exactly its box.
MARK = """([root, needle]) => {
  for (const el of document.querySelectorAll(root)) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const i = n.data.indexOf(needle);
      if (i < 0 || n.parentElement.dataset.probe === needle) continue;
      const r = document.createRange();
      r.setStart(n, i);
      r.setEnd(n, i + needle.length);
      const span = document.createElement("span");
      span.dataset.probe = needle;
      r.surroundContents(span);
      return true;
    }
  }
  return document.querySelector(`[data-probe="${needle}"]`) !== null;
}"""


def word_pixels(page: Any, root: str, word: str) -> Image.Image:
    assert page.evaluate(MARK, [root, word]), f"{word!r} is not in the page"
    probe = page.locator(f'{root} [data-probe="{word}"]').first
    box = probe.bounding_box()
    assert box and box["width"] > 0, f"{word!r} is not laid out"
    return Image.open(io.BytesIO(probe.screenshot())).convert("L")


def shows_text(img: Image.Image) -> bool:
    """Dark glyphs on the light theme's background: some pixels dark, most light (not covered by a black or a
    white rule: those leave one flat colour)."""
    values = img.tobytes()
    dark = sum(v < 110 for v in values)
    light = sum(v > 200 for v in values)
    return dark >= 6 and light >= len(values) // 3


def reads_left_to_right(page: Any, root: str, word: str) -> bool:
    first, last = page.evaluate(RECT, [root, word, 0]), page.evaluate(RECT, [root, word, len(word) - 1])
    return bool(first and last and first["x"] < last["x"])


def test_math_cannot_cover_the_question_or_the_words_around_it(page: Any, e2e_sim: Any) -> None:
    ask(page, e2e_sim, QUESTION, "A harmless answer. BASELINE-DONE", "BASELINE-DONE")
    before = pixels(page, page.locator(USER).last.locator(".ernie-bubble"))
    ask(page, e2e_sim, QUESTION,
        f"{COVER} first line FIRST-WORDS\n\nLead paragraph LEAD-WORDS here.\n\n{COVER} white cover AROUND-WHITE words\n\n"
        f"Before {BLACK} COVERED-WORDS after. HOSTILE-DONE", "HOSTILE-DONE")
    after = pixels(page, page.locator(USER).last.locator(".ernie-bubble"))
    assert before.size == after.size, (before.size, after.size)
    diff = sum(a != b for a, b in zip(before.tobytes(), after.tobytes(), strict=True))
    assert diff <= before.size[0] * before.size[1] // 200, f"the question bubble changed in {diff} pixels"
    for word in ("FIRST-WORDS", "LEAD-WORDS", "AROUND-WHITE", "COVERED-WORDS"):
        assert shows_text(word_pixels(page, ".ernie-chat .ernie-answer", word)), f"{word} is covered"


def test_bidi_override_and_nesting_bomb_in_the_widget(page: Any, e2e_sim: Any) -> None:
    ask(page, e2e_sim, "bidi and bomb",
        f"See [\u202egpj.exe](https://example.com/f) Post113word end, `\u202ecode` Codeafter9 "
        f"and $\\text{{\u202eabc}}$ Mathafter7.\n\n{NEST_BOMB}\nAFTER-THE-NEST\n\n{BOMB_TEX} AFTER-THE-TEX",
        "AFTER-THE-TEX")
    root = ".ernie-chat .ernie-answer"
    for word in ("Post113word", "Codeafter9", "Mathafter7"):
        assert reads_left_to_right(page, root, word), f"{word} was reversed"
    isolate = page.evaluate("""() => { const a = [...document.querySelectorAll('.ernie-chat .ernie-answer a')].pop();
                                   return getComputedStyle(a).unicodeBidi; }""")
    assert isolate == "isolate"
    for word in ("AFTER-THE-NEST", "AFTER-THE-TEX"):
        assert shows_text(word_pixels(page, root, word)), f"{word} is not shown"


def test_kernel_output_keeps_bidi_in_its_element_and_math_in_its_box(page: Any, e2e_sim: Any) -> None:
    e2e_sim.set_answer(
        text=f"Kernel [\u202egpj.exe](https://example.com/f) Kpost113word end and `\u202ecode` Kcode9 after.\n\n"
             f"Lead KLEAD-WORDS here.\n\n{COVER} white KWHITE-WORDS here\n\n"
             f"Before {BLACK} KBLACK-WORDS after, and $x^2$ typeset. [$\\rlap{{x}}$](https://example.com/) KDONE",
        chunk_size=40)
    run_cell(page, 1)
    wait_idle(page)
    run_cell(page, 2)
    out = ".jp-OutputArea-output .ernie-output"
    page.locator(out).locator("text=KDONE").first.wait_for(timeout=30_000)
    wait_idle(page)
    page.wait_for_function(f"() => document.querySelector('{out} mjx-container')", timeout=30_000)
    page.wait_for_timeout(300)
    page.locator(out).first.scroll_into_view_if_needed()
    for word in ("Kpost113word", "Kcode9"):
        assert reads_left_to_right(page, out, word), f"{word} was reversed"
    for word in ("KLEAD-WORDS", "KWHITE-WORDS", "KBLACK-WORDS"):
        assert shows_text(word_pixels(page, out, word)), f"{word} is covered"
    typeset = page.evaluate(f"""() => [...document.querySelectorAll('{out} mjx-container')].map(
        m => m.closest('.ernie-math') !== null)""")
    assert typeset == [True], typeset  # only "$x^2$": the rules (and the \\rlap in the link's text) are source text
    assert page.locator(f"{out} code.ernie-math-source").count() == 3


LONG_TASKS = """() => {
  window.ernieLongTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.ernieLongTasks.push(e.duration);
  }).observe({ type: "longtask" });
}"""


def test_an_answer_too_big_to_format_shows_every_word_as_text_without_freezing_the_tab(
        page: Any, e2e_sim: Any) -> None:
    fence = "```python\n" + "\n".join(f"value_{i} = {i}" for i in range(2_500)) + "\n```\n\n"  # > 20 k: text
    formula = "$$\n" + "a+b\\\\\n" * 4_000 + "$$\n\n"  # 24 k of TeX: its source (KaTeX took seconds)
    headings = "".join(f"heading {i}\n===\n" for i in range(2_300))  # past 2,000 blocks: the rest is plain text
    text = fence + formula + "MIDDLE-WORD\n\n" + headings + "TOO-BIG-END"
    page.evaluate(LONG_TASKS)
    e2e_sim.set_answer(text=text, chunk_size=500)
    send(page, "a very long answer")
    last = page.locator(CHAT).last
    last.locator("text=TOO-BIG-END").first.wait_for(timeout=60_000)
    page.locator('[data-testid="ernie-send"]').wait_for(state="visible", timeout=30_000)
    assert last.locator("pre, .katex").count() == 0  # the fence and the formula are shown as their text
    assert last.locator("h1").count() < 2_000 and last.locator(".ernie-rest").count() == 1
    root = f"{CHAT} .ernie-answer"
    for word in ("value_2499", "a+b", "MIDDLE-WORD", "heading 2299", "TOO-BIG-END"):
        assert shows_text(word_pixels(page, root, word)), f"{word} is not shown"
    # before the limits: 450 ms per update for the fence, 7.8 s for the formula in one task
    assert max(page.evaluate("() => window.ernieLongTasks"), default=0) < 1_000
    assert page.errors == [], page.errors


def test_a_restored_transcript_with_pathological_answers_renders_and_the_chat_works(
        page: Any, e2e_sim: Any) -> None:
    ask(page, e2e_sim, "pathological",
        f"{BOMB_TEX}\n\n{NEST_BOMB}\nRESTORE-NEST\n\n" + "![[" * 3000 + " RESTORE-BRACKETS\n\n"
        f"{BLACK} RESTORE-END", "RESTORE-END")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(800)
    page.errors.clear()
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="ernie-input"]', timeout=60_000)
    answer = page.locator(CHAT).filter(has_text="RESTORE-END").first
    answer.wait_for(timeout=30_000)
    wait_idle(page)
    root = ".ernie-chat .ernie-answer"
    for word in ("RESTORE-NEST", "RESTORE-BRACKETS", "RESTORE-END"):
        assert shows_text(word_pixels(page, root, word)), f"{word} is not shown after reopening"
    assert page.locator(USER).filter(has_text=QUESTION).count() >= 2  # the earlier turns are back too
    ask(page, e2e_sim, "still working?", "yes, STILL-WORKING", "STILL-WORKING")
    assert page.errors == [], page.errors
