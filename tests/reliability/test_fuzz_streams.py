"""Fuzzing end to end, through a real socket: any chunking, any garbage, any size, and any markdown.

tests/test_client_parsing.py checks the line parser on bytes in memory; here the same questions go through
the whole client (httpx2, the clock, the provider, the sync facade), with the body written by a raw server
in the pieces hypothesis chooses. Every example runs under a wall-clock bound: a hang is a failure.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ernie_widget.client import Ernie, ErnieError, IncompleteStreamError
from ernie_widget.render import FORMATS, HIGHLIGHT_CSS, bundle
from ernie_widget.testing import Answer, ErnieSimulator
from tests.test_render import assert_safe

from ._raw_server import RawServer, Reply
from ._support import rss_bytes, save_result

PROVIDERS = ("qianfan", "qianfan-v1", "aistudio", "openai")
BASE_PATHS = {"qianfan": "/v2", "qianfan-v1": "", "aistudio": "/llm/lmapi/v3", "openai": "/v1"}
ANSWERS = {
    "qianfan": Answer(text="你好，世界！Hello 🌍 ok", reasoning="想一想…🤔", chunk_size=3),
    "qianfan-v1": Answer(text="你好，世界！Hello 🌍 ok", chunk_size=3),
    "aistudio": Answer(text="数学：x² ≥ 0 ✓", reasoning="嗯", chunk_size=2),
    "openai": Answer(text="ERNIE-4.5 说：“好”。", chunk_size=4),
}
LIMITS: dict[str, Any] = {"timeout": 3.0, "stream_idle_timeout": 2.0, "max_stream_seconds": 4.0, "max_retries": 0}
BOUND = 8.0  # seconds any one example may take, whatever the bytes
_fuzz: dict[str, Any] = {}


def _record(name: str, **figures: Any) -> None:
    entry = _fuzz.setdefault(name, {"examples": 0})
    entry["examples"] += 1
    for key, value in figures.items():
        entry[key] = entry.get(key, 0) + value


@pytest.fixture(scope="module", autouse=True)
def _save() -> Iterator[None]:
    yield
    if _fuzz:
        save_result("fuzz", _fuzz)


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


@pytest.fixture(scope="module")
def clients(raw: RawServer) -> Iterator[dict[str, Ernie]]:
    made = {p: Ernie(p, base_url=raw.url(BASE_PATHS[p]), api_key="fuzz-key-0123456789", secret_key="fuzz-sk-0123456789",
                     **LIMITS) for p in PROVIDERS}
    yield made
    for client in made.values():
        client.close()


@pytest.fixture(scope="module")
def recorded() -> dict[str, bytes]:
    """Real stream bodies, as the protocol simulator writes them for each surface (dechunked)."""
    bodies = {}
    with ErnieSimulator() as sim, httpx2.Client() as http:
        for provider in PROVIDERS:
            sim.push(ANSWERS[provider])
            params = {"access_token": sim.issue_token()} if provider == "qianfan-v1" else {}
            path = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/ernie-speed-8k" if provider == "qianfan-v1" \
                else "/chat/completions"
            payload = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            response = http.post(sim.base_url(provider) + path, json=payload, params=params,
                                 headers={"Authorization": "Bearer bce-v3/ALTAK-x/y"})
            assert response.status_code == 200 and "event-stream" in response.headers["content-type"]
            bodies[provider] = response.content
    return bodies


_pool = ThreadPoolExecutor(1, thread_name_prefix="fuzz-consumer")


def consume(client: Ernie) -> tuple[str, Any]:
    """Stream one answer in a worker with a wall-clock bound: ("ok", (text, reasoning, finish)) or
    ("error", ErnieError); any other exception propagates, and a hang fails the example."""

    def run() -> tuple[str, Any]:
        text, reasoning = [], []
        try:
            with client.stream("hi") as stream:
                for ev in stream:
                    if ev.type == "text":
                        text.append(ev.text)
                    elif ev.type == "reasoning":
                        reasoning.append(ev.text)
            assert stream.reply is not None
            return "ok", ("".join(text), "".join(reasoning), stream.reply.finish_reason)
        except ErnieError as err:
            return "error", err

    t0 = time.monotonic()
    outcome = _pool.submit(run).result(timeout=BOUND)
    assert time.monotonic() - t0 < BOUND
    return outcome


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a] or [b""]


# -- any chunking of a real stream --------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_chunking_over_a_socket_yields_the_same_answer(provider: str, data: st.DataObject, raw: RawServer,
                                                           clients: dict[str, Ernie], recorded: dict[str, bytes]) -> None:
    body = recorded[provider]
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=40))
    raw.serve(Reply(split(body, cuts)))
    kind, value = consume(clients[provider])
    assert kind == "ok", value
    answer = ANSWERS[provider]
    assert value[0] == answer.text and value[1] == answer.reasoning and value[2]
    _record("chunking", pieces=len(split(body, cuts)))


# -- garbage never hangs and never raises anything but an ErnieError ------------------------------------

_JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                        max_leaves=6)
_LINE = st.one_of(
    st.binary(max_size=60),  # anything, invalid UTF-8 included
    st.binary(max_size=30).map(lambda b: b"data: " + b),
    st.binary(max_size=30).map(lambda b: b'data: {"choices":[{"delta":{"content":"' + b + b'"}}]}'),
    st.binary(max_size=30).map(lambda b: b'data: {"result": "' + b + b'", "is_end": false}'),
    st.binary(max_size=30).map(lambda b: b"{" + b),
    st.binary(max_size=30).map(lambda b: b"error: " + b),
    _JSONISH.map(lambda v: b"data: " + json.dumps(v).encode()),
    st.sampled_from([b"data: [DONE]", b": keep-alive", b"event: error", b"data:", b"retry: 1", b"\xef\xbb\xbf",
                     b"data: \xe4\xbd", b'{"error_code": 336100, "error_msg": "x"}', b"\x00" * 8]),
    st.integers(1, 64).map(lambda n: b"data: " + b"x" * (1024 * n)),  # long lines, under the 1 MiB limit
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(provider=st.sampled_from(PROVIDERS), lines=st.lists(_LINE, min_size=1, max_size=8),
       newline=st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\r\n\r\n", b"\r"]),
       cuts=st.lists(st.integers(0, 1 << 20), max_size=12),
       status=st.sampled_from([200, 200, 200, 400, 429, 500, 503]),
       content_type=st.sampled_from(["text/event-stream", "text/event-stream; charset=utf-8", "application/json",
                                     "text/html", "application/octet-stream"]))
def test_garbage_over_a_socket_never_hangs(provider: str, lines: list[bytes], newline: bytes, cuts: list[int],
                                           status: int, content_type: str, raw: RawServer,
                                           clients: dict[str, Ernie]) -> None:
    body = newline.join(lines)
    raw.serve(Reply(split(body, cuts), status=status, content_type=content_type))
    kind, value = consume(clients[provider])
    if kind == "ok":
        assert isinstance(value[0], str) and isinstance(value[1], str)
    else:
        assert isinstance(value, ErnieError) and value.message
    _record("garbage", errors=int(kind == "error"), ok=int(kind == "ok"), bytes=len(body))


# -- memory stays bounded under a huge event ----------------------------------------------------------

BIG = 50 * 1024 * 1024
PIECE = b"x" * 65536


def _endless_line(prefix: bytes) -> Iterator[bytes]:
    """`prefix` then 50 MB of one line with no newline, produced lazily (the server holds 64 KiB)."""
    yield prefix
    for _ in range(BIG // len(PIECE)):
        yield PIECE


def _peak_rss_growth(action: Callable[[], Any]) -> tuple[Any, int]:
    """Run `action` while sampling RSS every 2 ms; return its result and the peak growth in bytes."""
    base = rss_bytes()
    peak = base
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, name="rss-sampler")
    sampler.start()
    try:
        result = action()
    finally:
        stop.set()
        sampler.join()
    return result, max(peak, rss_bytes()) - base


@pytest.mark.parametrize(("content_type", "prefix"), [
    ("text/event-stream", b"data: "),
    ("application/json", b'{"result": "'),
], ids=["sse-line", "json-body"])
def test_a_50mb_event_without_newline_is_rejected_early_with_bounded_memory(
        content_type: str, prefix: bytes, raw: RawServer, clients: dict[str, Ernie]) -> None:
    client = clients["qianfan"]
    served = raw.serve(Reply(_endless_line(prefix), content_type=content_type, gap=0))
    (kind, err), growth = _peak_rss_growth(lambda: consume(client))
    assert served.done.wait(5)
    assert kind == "error" and isinstance(err, IncompleteStreamError), err
    assert growth < 20 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB"
    assert served.bytes_sent < 16 * 1024 * 1024  # the client stopped reading long before 50 MB
    _fuzz[f"huge_{content_type.split('/')[1]}"] = {"offered_bytes": BIG, "bytes_sent": served.bytes_sent,
                                                   "peak_rss_growth": growth, "error": str(err)}


# -- the kernel-side markdown renderer ------------------------------------------------------------------

_URL = st.builds(lambda scheme, host: scheme + host,
                 st.sampled_from(["http://", "https://", "javascript:", "JaVaScRiPt:", "java\tscript:", "data:text/html,",
                                  "vbscript:", "file:///", "//", "/api/", "../", "#", "mailto:", "&#106;avascript:",
                                  "jav&#x09;ascript:", " javascript:", "\x00javascript:"]),
                 st.sampled_from(["x.example/a", "alert(1)", "<script>", "a b", "(1)", "%0a", '"onmouseover=1'], ))
_TAG = st.sampled_from(["script", "img", "svg", "iframe", "style", "a", "math", "details", "video", "object", "b",
                        "form", "input", "base", "meta", "table", "span", "div"])
_ATTR = st.sampled_from(["onerror", "onload", "src", "href", "style", "srcdoc", "formaction", "class", "xlink:href"])
_INLINE = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    st.builds(lambda t: f"**{t}**", st.text(max_size=6)),
    st.builds(lambda t: f"`{t}`", st.text(max_size=6)),
    st.builds(lambda t, u: f"[{t}]({u})", st.text(max_size=6), _URL),
    st.builds(lambda t, u: f"![{t}]({u})", st.text(max_size=6), _URL),
    st.builds(lambda u: f"<{u}>", _URL),
    st.builds(lambda tag, attr, u: f"<{tag} {attr}={u!r}>x</{tag}>", _TAG, _ATTR, _URL),
    st.builds(lambda tag, attr, u: f"<{tag}/{attr}={u}>", _TAG, _ATTR, _URL),
    st.sampled_from(["$x^2$", "$$\\frac{a}{b}$$", "\\(x\\)", "<!-- c -->", "&lt;script&gt;", "&#60;img&#62;", "\\",
                     "***", "~~s~~", "<", ">", "]]>", "<![CDATA[", "</", "{{", "[x]: javascript:alert(1)"]),
)
_LINE_MD = st.lists(_INLINE, max_size=6).map("".join)


@st.composite
def markdown_doc(draw: st.DrawFn) -> str:
    blocks = []
    for _ in range(draw(st.integers(1, 6))):
        line = draw(_LINE_MD)
        kind = draw(st.sampled_from(["p", "h", "quote", "list", "olist", "fence", "table", "html", "indent", "math"]))
        blocks.append({
            "p": line,
            "h": "#" * draw(st.integers(1, 7)) + " " + line,
            "quote": "> " + line + "\n> > " + draw(_LINE_MD),
            "list": "- " + line + "\n  - " + draw(_LINE_MD),
            "olist": f"{draw(st.integers(0, 10**9))}. " + line,
            "fence": "```" + draw(st.sampled_from(["", "python", "js\" onload=\"x", "<script>", "html"])) + "\n" + line + "\n```",
            "table": f"| {line} | b |\n|:-|-:|\n| {draw(_LINE_MD)} | c |",
            "html": f"<{draw(_TAG)} {draw(_ATTR)}=\"{draw(_URL)}\">\n{line}\n",
            "indent": "    " + line,
            "math": "$$\n" + line + "\n$$",
        }[kind])
    return draw(st.sampled_from(["\n\n", "\n", "\r\n"])).join(blocks)


def _html(text: str, fmt: str, trust: bool, streaming: bool) -> str:
    return bundle(text, fmt, trust_html=trust, streaming=streaming)["text/html"].replace(f"<style>{HIGHLIGHT_CSS}</style>", "")


@settings(max_examples=200, deadline=None)
@given(doc=markdown_doc(), fmt=st.sampled_from(FORMATS), trust=st.booleans(),
       cuts=st.lists(st.integers(0, 10_000), max_size=4))
def test_random_markdown_renders_sanitized_at_every_streamed_prefix(doc: str, fmt: str, trust: bool,
                                                                    cuts: list[int]) -> None:
    # the magic re-renders the partial answer as it streams: every prefix must be as safe as the whole
    for cut in sorted({c % (len(doc) + 1) for c in cuts}):
        assert_safe(_html(doc[:cut], fmt, trust, streaming=True))
    assert_safe(_html(doc, fmt, trust, streaming=False))
    _record("markdown", prefixes=len(set(cuts)) + 1)
