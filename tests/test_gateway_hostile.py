"""Hostile and malformed requests: whatever the body, the gateway answers in the API's shape.

Every response is a 2xx answer (a stream that ends with ``[DONE]``, or a JSON completion) or a 4xx/5xx
JSON error — never a traceback, an empty 200, a stream that just stops, or a WebSocket dropped without
a close frame. Real uvicorn over real sockets, in front of the simulator.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from ernie_widget.gateway import answer as answer_module
from ernie_widget.gateway.accesslog import ACCESS_LOGGER
from ernie_widget.gateway.testing import GatewayThread, gateway_for
from ernie_widget.testing import Answer, ErnieSimulator, Fault

pytestmark = pytest.mark.timeout(120)

HTTP = httpx.Client(timeout=30)
MSG = [{"role": "user", "content": "hi"}]
DEEP = b"[" * 100_000 + b"]" * 100_000  # ~200 KB: the probe's RecursionError


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))


@pytest.fixture
def access_log() -> Iterator[list[dict[str, Any]]]:
    handler = _Lines()
    log = logging.getLogger(ACCESS_LOGGER)
    old = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler.lines
    log.removeHandler(handler)
    log.setLevel(old)


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayThread]:
    # one simulator and gateway for the module: hypothesis sends many requests
    with ErnieSimulator() as sim, gateway_for(sim) as g:
        sim.set_answer(text="ok", chunk_size=1)
        yield g


def _check_http(r: httpx.Response, stream_asked: bool) -> None:
    """The class invariant of an HTTP answer."""
    if 200 <= r.status_code < 300:
        assert r.content, "an empty 200"
        if stream_asked:
            assert r.headers["content-type"].startswith("text/event-stream")
            data = [ln[6:] for ln in r.text.split("\n") if ln.startswith("data: ")]
            assert data and data[-1] == "[DONE]", r.text
            assert all("error" not in json.loads(d) for d in data[:-1]), r.text
        else:
            assert r.json()["choices"][0]["message"]["role"] == "assistant"
        return
    assert 400 <= r.status_code < 600, r.status_code
    err = r.json()["error"]  # JSON, in the OpenAI shape — never a traceback
    assert err["message"] and err["code"] and err["type"]
    assert " / " in err["message"]  # bilingual
    assert r.status_code != 500, err  # the simulator is healthy: nothing here is the gateway's own fault


# -- the probe's findings, one by one -----------------------------------------------------------------


def test_deep_nesting_is_a_400_not_a_recursion_error(gw: GatewayThread, access_log: list[dict[str, Any]]) -> None:
    url = gw.url + "/v1/chat/completions"
    r = HTTP.post(url, content=DEEP, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    nested_inside = b'{"messages":[{"role":"user","content":' + DEEP + b"}]}"
    r2 = HTTP.post(url, content=nested_inside)
    assert r2.status_code == 400 and "32" in r2.json()["error"]["message"]
    assert [rec["status"] for rec in access_log] == [400, 400]


def test_hostile_bodies_cost_linear_time(gw: GatewayThread) -> None:
    import time

    url = gw.url + "/v1/chat/completions"
    for body, status in ((b'"' + b'\\"' * 1_000_000, 400),  # an unterminated string of escaped quotes (2 MB)
                         (b"[" + b"[]," * 200_000 + b"1]", 400),  # 200 000 empty lists, one level deep
                         (b'{"messages":[{"role":"user","content":"' + b'\\"[' * 100_000 + b'"}]}', 200)):
        started = time.monotonic()
        r = HTTP.post(url, content=body)
        assert r.status_code == status and time.monotonic() - started < 5, (r.status_code, body[:20])


@pytest.mark.parametrize(("field", "raw"), [
    ("temperature", b'"hot"'), ("max_tokens", b'"many"'), ("max_tokens", b"[1]"), ("max_tokens", b"1e400"),
    ("temperature", b"1e400"), ("stream", b'"yes"'), ("top_p", b"{}"), ("messages", b'"hi"'),
])
@pytest.mark.parametrize("stream", [True, False])
def test_wrongly_typed_parameters_are_400s_naming_the_parameter(
        gw: GatewayThread, access_log: list[dict[str, Any]], field: str, raw: bytes, stream: bool) -> None:
    body = b'{"messages":[{"role":"user","content":"x"}],"stream":' + (b"true" if stream else b"false")
    body = body + b',"' + field.encode() + b'":' + raw + b"}"
    r = HTTP.post(gw.url + "/v1/chat/completions", content=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request" and err["param"] == field and field in err["message"]
    assert access_log[-1]["status"] == 400


def test_a_bug_inside_a_stream_ends_it_with_an_error_event(gw: GatewayThread, monkeypatch: pytest.MonkeyPatch,
                                                           access_log: list[dict[str, Any]]) -> None:
    original = answer_module.AnswerRun._item
    calls = {"n": 0}

    def buggy(self: Any, ev: Any) -> Any:
        item = original(self, ev)
        if item is not None:
            calls["n"] += 1
            if calls["n"] == 2:
                raise TypeError("a bug after the first token")
        return item

    monkeypatch.setattr(answer_module.AnswerRun, "_item", buggy)
    gw_sim_answer = {"stream": True, "messages": [{"role": "user", "content": "long"}]}
    r = HTTP.post(gw.url + "/v1/chat/completions", json=gw_sim_answer)
    assert r.status_code == 200
    data = [ln[6:] for ln in r.text.split("\n") if ln.startswith("data: ")]
    assert json.loads(data[-2])["error"]["code"] == "internal_error" and data[-1] == "[DONE]"
    assert access_log[-1]["status"] == 500 and access_log[-1]["error"] == "internal_error"
    calls["n"] = 1  # fail on the first token: the non-stream answer is a 500 JSON error
    r2 = HTTP.post(gw.url + "/v1/chat/completions", json={"messages": MSG})
    assert r2.status_code == 500 and r2.json()["error"]["code"] == "internal_error"
    assert "Traceback" not in r.text + r2.text


def test_an_upstream_failure_after_content_is_logged_as_what_it_was(access_log: list[dict[str, Any]]) -> None:
    with ErnieSimulator() as sim, gateway_for(sim) as g:
        sim.push(Fault.error_midstream(after_chunks=2, code="internal_error", message="boom",
                                       answer=Answer(text="abcdefghijkl", chunk_size=2)))
        r = HTTP.post(g.url + "/v1/chat/completions", json={"stream": True, "messages": MSG})
    assert r.status_code == 200 and "upstream_server_error" in r.text
    assert access_log[-1]["status"] == 502 and access_log[-1]["error"] == "upstream_server_error"


# -- the class: hypothesis over shapes and types ------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_good_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": st.text(max_size=6)})
_message = st.one_of(_good_message, st.dictionaries(st.sampled_from(["role", "content", "name"]), _json, max_size=3),
                     _json)
_FIELDS = ["temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "n", "model",
           "stream_options", "presence_penalty", "frequency_penalty", "penalty_score", "enable_thinking",
           "web_search", "response_format", "anything"]
# values of every type for every field — the right type (in and out of range) and the wrong ones
_value = st.one_of(_json, st.integers(0, 64), st.floats(0, 2), st.text(max_size=4), st.lists(st.integers(), max_size=2))
_params = st.dictionaries(st.sampled_from(_FIELDS), _value, max_size=3)
_good_messages = st.lists(_good_message, min_size=1, max_size=2)
_body = st.one_of(
    # mostly well-formed messages, so that what the parameters do is what is tested
    st.builds(lambda m, p, s: {"messages": m, **p, "stream": s}, _good_messages, _params, st.booleans()),
    st.builds(lambda m, p: {"messages": m, **p}, _good_messages, _params),
    st.builds(lambda m, p, s: {"messages": m, **p, "stream": s},
              st.lists(_message, min_size=1, max_size=3), _params, _json),
    st.builds(lambda m, p: {"messages": m, **p}, _json, _params),
    _json,
)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_body)
def test_any_json_body_gets_an_answer_or_a_json_error(gw: GatewayThread, body: Any) -> None:
    r = HTTP.post(gw.url + "/v1/chat/completions", json=body)
    _check_http(r, isinstance(body, dict) and body.get("stream") is True)


# -- WebSocket ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _ws(g: GatewayThread) -> Iterator[ClientConnection]:
    with connect(g.url.replace("http://", "ws://") + "/v1/ws", open_timeout=5, max_size=None) as ws:
        ws.send(json.dumps({"type": "auth", "token": "x"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        yield ws


def _until_terminal(ws: ClientConnection, mid: Any) -> dict[str, Any]:
    while True:
        msg = json.loads(ws.recv(timeout=10))
        if msg["type"] == "error" and msg.get("mid") in (mid, None):
            return msg
        if msg["type"] == "done" and msg.get("mid") == mid:
            return msg


def test_deep_nesting_on_the_websocket_is_an_error_message_and_the_connection_lives(gw: GatewayThread) -> None:
    with _ws(gw) as ws:
        ws.send(DEEP.decode())
        err = json.loads(ws.recv(timeout=5))
        assert err["type"] == "error" and err["code"] == "invalid_message" and " / " in err["message"]
        ws.send('{"type":"chat","mid":1,"messages":[{"role":"user","content":' + DEEP.decode() + "}]}")
        assert json.loads(ws.recv(timeout=5))["code"] == "invalid_message"
        ws.send(json.dumps({"type": "chat", "mid": 2, "messages": MSG, "temperature": "hot"}))
        bad = _until_terminal(ws, 2)
        assert bad["type"] == "error" and bad["status"] == 400 and "temperature" in bad["message"]
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_body)
def test_any_websocket_chat_gets_done_or_an_error_and_the_connection_lives(gw: GatewayThread, body: Any) -> None:
    with _ws(gw) as ws:
        msg = {**body, "type": "chat", "mid": 1} if isinstance(body, dict) else body
        ws.send(json.dumps(msg))
        end = _until_terminal(ws, 1)
        if end["type"] == "error":
            assert 400 <= end.get("status", 400) < 500 and " / " in end["message"], end
        else:  # a real end, not the "cancelled" of an answer whose run died
            assert end["finish_reason"] in ("stop", "length"), end
        ws.send(json.dumps({"type": "ping"}))
        while (reply := json.loads(ws.recv(timeout=5)))["type"] != "pong":
            assert reply["type"] in ("delta", "done", "safety", "error")


def test_binary_frames_get_an_answer_not_a_dropped_connection(gw: GatewayThread) -> None:
    from websockets.exceptions import ConnectionClosed

    url = gw.url.replace("http://", "ws://") + "/v1/ws"
    with connect(url, open_timeout=5) as ws:  # before auth: refused, with a close frame
        ws.send(b"\xff\x00")
        assert json.loads(ws.recv(timeout=5))["code"] == "auth_required"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    with _ws(gw) as ws:
        ws.send(b"\xff\x00")  # not UTF-8
        assert json.loads(ws.recv(timeout=5))["code"] == "invalid_message"
        ws.send(b'{"type": "ping"}')  # UTF-8 JSON in a binary frame is read as text
        assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}
