"""XSS corpus (tests/e2e/xss_vectors.py) streamed as model output into a real JupyterLab in Chromium.

Two surfaces: the ErnieChat widget (markdown-it + DOMPurify in the browser) and `%%ernie` output (markdown-it-py
+ nh3 in the kernel, shown by JupyterLab as trusted HTML). For each, nothing may execute (no `__xss_*` global,
no dialog), nothing may load (no request to the probe server, no request leaving 127.0.0.1), and the payloads
stay readable as text. A positive control injects the same payloads as raw HTML into a plain page and checks
that the probes do fire there, so the detectors are known to work.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    CHROMIUM_ARGS,
    KERNEL,
    PageRecorder,
    chromium_path,
    open_chat,
    run_cell,
    wait_idle,
    write_notebook,
)
from .xss_vectors import EXTERNAL_HOST, Vector, vectors

pytestmark = pytest.mark.e2e

CHAT = '[data-testid="ernie-message"][data-role="assistant"]'
MAGIC_BATCH = 40  # JupyterLab renders at most 50 outputs per cell (notebook setting maxNumberOutputs)
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4a80000000049454e44ae426082")
PAGE = b"<!doctype html><html><head><meta charset=utf-8></head><body></body></html>"

# Where the probes can leave a trace: globals in any frame, and the elements/attributes that run or load.
FIRED_FLAGS = "() => Object.keys(window).filter(k => k.startsWith('__xss_'))"
# Elements and attributes that run script or load something; `auditElement(el)` lists those found on `el`.
AUDIT_ELEMENT = r"""(el) => {
  const BAD_TAGS = new Set(["script", "iframe", "frame", "frameset", "object", "embed", "img", "image", "svg",
    "video", "audio", "source", "picture", "track", "link", "meta", "base", "form", "input", "textarea", "select",
    "template", "noscript", "marquee", "details", "isindex", "applet", "portal", "foreignobject", "animate", "set",
    "use"]);
  const URL_ATTRS = ["src", "srcdoc", "srcset", "poster", "background", "action", "formaction", "data", "dynsrc",
    "lowsrc", "xlink:href", "ping", "codebase", "manifest"];
  const SAFE_HREF = /^(https?:|mailto:|#)/i;
  const bad = [];
  const tag = el.localName.toLowerCase();
  // the kernel's own stylesheet for highlighted code (render.py HIGHLIGHT_CSS)
  const ours = tag === "style" && el.parentElement?.classList.contains("ernie-output")
    && el.textContent.startsWith(".ernie-output pre.highlight");
  if (BAD_TAGS.has(tag) || (tag === "style" && !ours)) bad.push(`<${tag}>`);
  for (const attr of el.attributes) {
    const name = attr.name.toLowerCase();
    if (name.startsWith("on")) bad.push(`${tag}[${name}]`);
    if (URL_ATTRS.includes(name)) bad.push(`${tag}[${name}=${attr.value.slice(0, 40)}]`);
    // MathJax styles its own mjx-* elements
    if (name === "style" && !tag.startsWith("mjx-")) bad.push(`${tag}[style=${attr.value.slice(0, 40)}]`);
    if (name === "href" && !SAFE_HREF.test(attr.value.trim())) bad.push(`${tag}[href=${attr.value.slice(0, 40)}]`);
  }
  return bad;
}"""
# Everything inside the elements matching a selector.
DOM_AUDIT = f"""(roots) => {{
  const audit = {AUDIT_ELEMENT};
  return [...document.querySelectorAll(roots)].flatMap((root) => [...root.querySelectorAll("*")].flatMap(audit));
}}"""
ROOTS = {"widget": ".ernie-chat .ernie-answer", "magic": ".jp-OutputArea-output .ernie-output"}
# Every element ever added inside a root, also ones that lived for a single frame while streaming (init script:
# it also watches the first render after a reload).
WATCH_DOM = f"""(() => {{
  const audit = {AUDIT_ELEMENT};
  const roots = {json.dumps(", ".join(ROOTS.values()))};
  window.ernieAuditLog = [];
  window.ernieAudited = 0;
  new MutationObserver((records) => {{
    for (const record of records) {{
      // the parent decides, not the node: a node may already be detached again when this runs
      const target = record.target.nodeType === 1 ? record.target : null;
      for (const node of record.addedNodes) {{
        if (node.nodeType !== 1) continue;
        const inside = target?.closest(roots) ? [node, ...node.querySelectorAll("*")] : [];
        const newRoots = [...(node.matches(roots) ? [node] : []), ...node.querySelectorAll(roots)];
        const below = newRoots.flatMap((root) => [...root.querySelectorAll("*")]);
        for (const el of [...inside, ...below]) window.ernieAuditLog.push(...audit(el));
        window.ernieAudited += inside.length + below.length;
      }}
    }}
  }}).observe(document, {{childList: true, subtree: true}});
}})();"""


class ProbeServer:
    """A logger on 127.0.0.1: every request a payload could make to it is a hit (`/hit?<n>`, `/probe?<n>`)."""

    PAGES = ("/control.html", "/blank.html")

    def __init__(self) -> None:
        self.log: list[str] = []
        probe = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                probe.log.append(self.path)
                if self.path.startswith(ProbeServer.PAGES):
                    self._reply(200, "text/html; charset=utf-8", PAGE)
                elif self.path.startswith("/probe"):
                    self._reply(200, "image/png", PNG)
                else:
                    self._reply(204, "text/plain", b"")

            do_POST = do_GET

            def _reply(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def hits(self) -> list[str]:
        return [p for p in self.log if not p.startswith(self.PAGES)]

    def wait_for_hit(self, path: str, since: int = 0, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path in self.log[since:]:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def probe() -> Iterator[ProbeServer]:
    server = ProbeServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def corpus(probe: ProbeServer) -> list[Vector]:
    return vectors(probe.host)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium that resolves no host but 127.0.0.1: an external fetch is recorded as attempted, never sent."""
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=args)
        try:
            yield b
        finally:
            b.close()


def _answers(corpus: list[Vector], chunk_size: int, delay: float) -> list[Any]:
    from ernie_widget.testing import Answer

    return [Answer(text=v.payload, chunk_size=chunk_size, delay=delay) for v in corpus]


@pytest.fixture(scope="module")
def page(browser: Any, lab: Any, lab_root: Path, corpus: list[Vector]) -> Iterator[Any]:
    n = len(corpus)
    magic_cells = [
        "ip = get_ipython()\n"
        f"for i in range({start}, {min(start + MAGIC_BATCH, n)}):\n"
        "    ip.run_cell_magic('ernie', '', f'vector {i}')\n"
        for start in range(0, n, MAGIC_BATCH)
    ]
    write_notebook(lab_root / "xss.ipynb", [
        "from ernie_widget import ErnieChat\nchat = ErnieChat()\nchat",
        f"for i in range({n}):\n    chat.ask(f'vector {{i}}').wait(60)\nprint('widget-done')",
        "%load_ext ernie_widget",
        *magic_cells,
    ])
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.add_init_script(WATCH_DOM)
    pg = context.new_page()
    pg.recorder = PageRecorder(pg)
    pg.magic_cells = len(magic_cells)
    open_chat(pg, lab, "xss.ipynb", "xss")
    yield pg
    context.close()


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _fired_flags(page: Any) -> list[str]:
    flags: list[str] = []
    for frame in page.frames:
        try:
            flags += frame.evaluate(FIRED_FLAGS)
        except Exception:  # a frame that navigated away meanwhile
            continue
    return flags


def _audited(page: Any) -> int:
    return int(page.evaluate("() => window.ernieAudited"))


def _assert_inert(page: Any, probe: ProbeServer, roots: str, watched: int) -> None:
    """Nothing ran or loaded; `watched`: how many rendered elements the streaming watcher must have seen."""
    page.wait_for_timeout(1500)  # let any error/load event, refresh or fetch happen
    rec = page.recorder
    assert _fired_flags(page) == [], "a payload executed"
    assert rec.dialogs == [], f"a payload opened a dialog: {rec.dialogs[:5]}"
    assert probe.hits() == [], f"a payload reached the probe server: {probe.hits()[:10]}"
    to_probe = [u for u in rec.requests if f":{probe.port}" in u]
    assert to_probe == [], f"the page requested the probe server: {to_probe[:10]}"
    external = [u for u in rec.requests if EXTERNAL_HOST in u] + rec.remote()
    assert external == [], f"the page attempted a remote request: {external[:10]}"
    assert page.evaluate(DOM_AUDIT, roots) == []
    assert page.evaluate("() => window.ernieAuditLog") == [], "a dangerous element existed while streaming"
    assert _audited(page) >= watched, "the streaming watcher saw too little: is it watching the right roots?"
    assert len(page.frames) == 1, [f.url for f in page.frames]


def _assert_readable(texts: list[str], corpus: list[Vector]) -> None:
    assert len(texts) == len(corpus)
    missing = [(v.n, v.name, r, _collapse(t)[:120]) for v, t in zip(corpus, texts, strict=True)
               for r in v.readable if _collapse(r) not in _collapse(t)]
    assert missing == [], json.dumps(missing[:10], ensure_ascii=False, indent=1)


def test_chat_widget_streams_every_vector_as_inert_text(page: Any, e2e_sim: Any, probe: ProbeServer,
                                                        corpus: list[Vector]) -> None:
    e2e_sim.push(*_answers(corpus, chunk_size=5, delay=0.008))  # several deltas per answer
    watched = _audited(page) + len(corpus)
    run_cell(page, 1)
    page.wait_for_function(f"() => document.querySelectorAll('{CHAT}').length >= {len(corpus)}", timeout=90_000)
    wait_idle(page, timeout=90_000)
    page.wait_for_function("() => !document.querySelector('.ernie-chat .ernie-streaming')", timeout=20_000)
    assert e2e_sim.pending == 0
    texts = page.evaluate(f"() => [...document.querySelectorAll('{CHAT} .ernie-answer')].map(e => e.textContent)")
    _assert_readable(texts, corpus)
    _assert_inert(page, probe, ROOTS["widget"], watched)


def test_restored_transcript_renders_inertly(page: Any, probe: ProbeServer, corpus: list[Vector]) -> None:
    """A reload re-renders the whole transcript from widget state (untrusted input too, §9.6)."""
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(1000)
    page.reload(wait_until="domcontentloaded")
    page.wait_for_function(f"{KERNEL}?.status === 'idle'", timeout=120_000)
    page.wait_for_function(f"() => document.querySelectorAll('{CHAT}').length >= {len(corpus)}", timeout=60_000)
    texts = page.evaluate(f"() => [...document.querySelectorAll('{CHAT} .ernie-answer')].map(e => e.textContent)")
    _assert_readable(texts, corpus)
    _assert_inert(page, probe, ROOTS["widget"], len(corpus))


def test_magic_output_renders_every_vector_as_inert_text(page: Any, e2e_sim: Any, probe: ProbeServer,
                                                         corpus: list[Vector]) -> None:
    e2e_sim.push(*_answers(corpus, chunk_size=8, delay=0.01))
    watched = _audited(page) + len(corpus)
    run_cell(page, 2)
    wait_idle(page)
    for k in range(page.magic_cells):
        run_cell(page, 3 + k)
        wait_idle(page, timeout=90_000)
    assert e2e_sim.pending == 0
    outputs = ROOTS["magic"]
    page.wait_for_function(f"() => document.querySelectorAll('{outputs}').length >= {len(corpus)}",
                           timeout=20_000)
    page.wait_for_function(f"() => !document.querySelector('{outputs}.ernie-streaming')", timeout=20_000)
    texts = page.evaluate(f"() => [...document.querySelectorAll('{outputs}')].map(e => e.textContent)")
    _assert_readable(texts, corpus)
    _assert_inert(page, probe, outputs, watched)


def test_the_lab_page_itself_would_show_an_injection(page: Any, probe: ProbeServer) -> None:
    """Control inside JupyterLab: no CSP or sandbox there stops inline handlers, so the checks above can fail."""
    before = len(probe.log)
    page.evaluate("""(host) => {
      const div = document.createElement("div");
      div.id = "xss-control";
      div.innerHTML = `<img src=x onerror="top.__xss_control=1; fetch('http://${host}/hit?control', {mode: 'no-cors'})">`;
      document.body.append(div);
    }""", probe.host)
    try:
        page.wait_for_function("() => window.__xss_control === 1", timeout=5000)
        assert probe.wait_for_hit("/hit?control", since=before)
        assert sorted(page.evaluate(DOM_AUDIT, "#xss-control")) == ["<img>", "img[onerror]", "img[src=x]"]
        # the streaming watcher sees an element that appears inside an answer, even briefly
        page.evaluate("""() => {
          const answer = document.querySelector(".ernie-chat .ernie-answer");
          const probe = document.createElement("iframe");
          answer.append(probe);
          probe.remove();
        }""")
        page.wait_for_function("() => window.ernieAuditLog.includes('<iframe>')", timeout=5000)
    finally:
        page.evaluate("() => { document.getElementById('xss-control')?.remove(); delete window.__xss_control; "
                      "window.ernieAuditLog = []; }")


def test_positive_control_raw_html_fires_the_probes(browser: Any, probe: ProbeServer, corpus: list[Vector]) -> None:
    """The same payloads as raw HTML (innerHTML) in a plain page: the detectors must see them fire."""
    context = browser.new_context()
    pg = context.new_page()
    rec = PageRecorder(pg)
    before = len(probe.log)
    try:
        pg.goto(f"http://{probe.host}/control.html")
        # One same-origin iframe per payload: a <base> or <meta refresh> only affects its own frame.
        pg.evaluate("""async (payloads) => {
          for (const [n, html] of payloads) {
            const frame = document.createElement("iframe");
            frame.src = "/blank.html?" + n;
            document.body.append(frame);
            await new Promise((resolve) => { frame.onload = resolve; });
            frame.contentDocument.body.innerHTML = html;
          }
        }""", [[v.n, v.payload] for v in corpus])
        pg.wait_for_timeout(2500)
        # the DOM audit used on the real pages flags the raw payloads
        audited = 0
        for frame in pg.frames[1:]:
            try:
                audited += bool(frame.evaluate(DOM_AUDIT, "body"))
            except Exception:  # navigated away (meta refresh) or cross-origin (data:, javascript:)
                continue
        fired: set[int] = set()
        fired |= {int(k.removeprefix("__xss_")) for k in pg.evaluate(FIRED_FLAGS)}
        fired |= {int(m) for m in rec.dialogs if m.isdigit()}
        fired |= {int(m.group(1)) for p in probe.log[before:] if (m := re.search(r"^/(?:hit|probe)\?(\d+)", p))}
        attempted_external = [u for u in rec.requests if EXTERNAL_HOST in u]
    finally:
        context.close()
    names = sorted(f"{n}:{corpus[n - 1].name}" for n in fired)
    print(f"control: {len(fired)}/{len(corpus)} fired: {names}")
    assert len(fired) >= 20, f"only {len(fired)} probes fired in the control: {names}"
    assert audited >= 40, f"the DOM audit flagged only {audited} raw payloads"
    # the external-host vectors do try to reach out when rendered raw (and the browser refuses to resolve it)
    assert attempted_external, "the control should attempt the external image"
