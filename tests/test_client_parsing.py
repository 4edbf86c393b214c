"""The line-level parser (LineSplitter → classify_line → provider.parse_data), tested as properties.

Any chunking of the same SSE bytes yields the same events; garbage yields an `ErnieError`, never
another exception and never a hang (hypothesis' deadline bounds every example).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ernie_widget.client import ErnieError, IncompleteStreamError
from ernie_widget.client.classify import error_from_body, error_in
from ernie_widget.client.config import ProviderConfig
from ernie_widget.client.lines import DATA, DONE, ERROR, SKIP, LineSplitter, classify_line
from ernie_widget.client.providers import HTTPProvider, make_provider

PROVIDERS: dict[str, HTTPProvider] = {
    name: make_provider(ProviderConfig(name, "m", "http://127.0.0.1:1", "k" * 8, "s" * 8))  # type: ignore[misc]
    for name in ("qianfan", "qianfan-v1", "aistudio", "openai")
}

# any text a model could send: every plane, no lone surrogates (they cannot be UTF-8 encoded)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
NEWLINE = st.sampled_from(["\n", "\r\n"])


def parse(provider: HTTPProvider, pieces: list[bytes]) -> list[tuple[Any, ...]]:
    """Feed `pieces` to one parser; return what it understood, in order."""
    splitter = LineSplitter()
    out: list[tuple[Any, ...]] = []

    def handle(line: bytes) -> None:
        kind, obj = classify_line(line)
        if kind == SKIP:
            return
        if kind == DONE:
            out.append(("done",))
            return
        # what the core does with an error line or an error object: classify it, then raise it
        if kind == ERROR:
            raise error_from_body(error_in(obj) or obj)
        assert kind == DATA
        if not isinstance(obj, dict):
            raise IncompleteStreamError("not an object")
        if error_in(obj) is not None:
            raise error_from_body(error_in(obj))
        c = provider.parse_data(obj)
        out.append(("chunk", c.text, c.reasoning, c.finish_reason, c.usage, c.safety, c.search_results,
                    c.is_end))

    for piece in pieces:
        for line in splitter.feed(piece):
            handle(line)
    for line in splitter.flush():
        handle(line)
    return out


def outcome(provider: HTTPProvider, pieces: list[bytes]) -> tuple[str, Any]:
    """("ok", events) or ("error", the ErnieError's type and message); anything else propagates."""
    try:
        return "ok", parse(provider, pieces)
    except ErnieError as err:
        return "error", (type(err).__name__, err.message)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# -- well-formed streams -----------------------------------------------------------------------------


def v2_event(kind: str, text: str) -> dict[str, Any]:
    delta = {"content": text} if kind == "text" else {"content": "", "reasoning_content": text}
    return {"id": "as-1", "object": "chat.completion.chunk", "model": "ernie",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None, "flag": 0}]}


def v1_event(kind: str, text: str) -> dict[str, Any]:
    return {"id": "as-1", "result": text, "is_end": False, "need_clear_history": False}


@st.composite
def sse_stream(draw: Callable[..., Any], provider: str) -> bytes:
    """A valid stream for `provider`: data events, comments, event: lines, CRLF or LF, and its end."""
    make = v1_event if provider == "qianfan-v1" else v2_event
    kinds = ["text"] if provider == "qianfan-v1" else ["text", "reasoning"]
    parts: list[str] = []
    for kind, text in draw(st.lists(st.tuples(st.sampled_from(kinds), TEXT), max_size=8)):
        nl = draw(NEWLINE)
        extra = draw(st.sampled_from(["", ": keep-alive" + nl, "event: chat" + nl, "id: 7" + nl]))
        space = draw(st.sampled_from(["", " "]))  # FastDeploy writes a space after the JSON
        parts.append(f"{extra}data: {json.dumps(make(kind, text), ensure_ascii=draw(st.booleans()))}{space}{nl}{nl}")
    nl = draw(NEWLINE)
    if provider == "qianfan-v1":
        end = {"id": "as-1", "result": "", "is_end": True, "finish_reason": "normal",
               "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
        parts.append(f"data: {json.dumps(end)}{nl}{nl}")
    else:
        usage = {"id": "as-1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2,
                                                        "total_tokens": 3}}
        parts.append(f"data: {json.dumps(usage)}{nl}{nl}data: [DONE]{nl}{nl}")
    return "".join(parts).encode()


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_chunking_of_a_stream_yields_the_same_events(provider, data):
    stream = data.draw(sse_stream(provider))
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=30))
    whole = parse(PROVIDERS[provider], [stream])
    assert parse(PROVIDERS[provider], split(stream, cuts)) == whole
    assert parse(PROVIDERS[provider], [bytes([b]) for b in stream]) == whole  # one byte at a time


@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1"])
@settings(max_examples=50)
@given(data=st.data())
def test_the_text_of_a_stream_survives_any_chunking(provider, data):
    make = v1_event if provider == "qianfan-v1" else v2_event
    texts = data.draw(st.lists(TEXT, min_size=1, max_size=6))
    stream = "".join(f"data: {json.dumps(make('text', t), ensure_ascii=False)}\r\n\r\n" for t in texts).encode()
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=20))
    events = parse(PROVIDERS[provider], split(stream, cuts))
    assert "".join(e[1] for e in events) == "".join(texts)


# -- garbage -----------------------------------------------------------------------------------------

JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
FIELDS = ["choices", "delta", "message", "content", "reasoning_content", "reasoning", "finish_reason",
          "usage", "flag", "ban_round", "need_clear_history", "result", "is_end", "is_truncated",
          "search_results", "search_info", "web_search", "id", "model", "error", "error_code", "code", "msg",
          "tool_calls", "function_call", "index", "function", "name", "arguments", "thoughts"]


@st.composite
def odd_object(draw: Callable[..., Any]) -> Any:
    """A JSON object shaped almost like a chunk, with any value in any field."""
    obj = draw(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUE, max_size=5))
    if draw(st.booleans()):
        choice = draw(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUE, max_size=4))
        if draw(st.booleans()):
            choice["delta"] = draw(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUE, max_size=3))
        obj["choices"] = [choice]
    return obj


GARBAGE_LINE = st.one_of(
    st.binary(max_size=40),  # anything, including invalid UTF-8
    st.binary(max_size=20).map(lambda b: b"data: " + b),
    st.binary(max_size=20).map(lambda b: b"data: {\"result\": \"" + b + b"\"}"),  # bad bytes inside JSON
    st.binary(max_size=20).map(lambda b: b"{" + b),
    st.binary(max_size=20).map(lambda b: b"error: " + b),
    odd_object().map(lambda o: b"data: " + json.dumps(o).encode()),
    odd_object().map(lambda o: json.dumps(o).encode()),
    JSON_VALUE.map(lambda v: b"data: " + json.dumps(v).encode()),
)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_garbage_gives_an_ernie_error_or_events_never_anything_else(provider, data):
    lines = data.draw(st.lists(GARBAGE_LINE, min_size=1, max_size=6))
    stream = b"\n".join(lines) + data.draw(st.sampled_from([b"", b"\n", b"\r\n\r\n"]))
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=10))
    whole = outcome(PROVIDERS[provider], [stream])  # raises if parsing fails with a non-ErnieError
    assert outcome(PROVIDERS[provider], split(stream, cuts)) == whole
    if whole[0] == "ok":
        for event in whole[1]:
            if event[0] == "chunk":
                assert isinstance(event[1], str) and isinstance(event[2], str)  # text is always text


@pytest.mark.parametrize("line", [
    b"data: {\"result\": \"\xe4\xbd\"}",  # a character cut short
    b"data: \xff\xfe{}",
    b"data: \xc3\x28",
    b"{\"error_code\": \"\xff\"}",
])
def test_invalid_utf8_is_an_incomplete_stream_error(line):
    with pytest.raises(IncompleteStreamError):
        parse(PROVIDERS["qianfan-v1"], [line + b"\n"])


def test_a_line_over_the_limit_raises_even_without_a_newline():
    splitter = LineSplitter(limit=1024)
    splitter.feed(b"data: " + b"x" * 1000)
    with pytest.raises(IncompleteStreamError):
        splitter.feed(b"x" * 100)
