"""The gateway's WebSocket protocol: first-message auth, deltas with seq, done, errors, stop, and resume."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from ernie_widget.gateway import KeyStore
from ernie_widget.gateway.testing import gateway_for
from ernie_widget.testing import Answer, ErnieSimulator, Fault, echo_answer

from .ws_support import drop as _drop
from .ws_support import recv as _recv
from .ws_support import until_end as _until_end

pytestmark = pytest.mark.timeout(60)


def _open(gw) -> ClientConnection:  # type: ignore[no-untyped-def]
    return connect(gw.url.replace("http://", "ws://") + "/v1/ws", open_timeout=5)



@contextlib.contextmanager
def _session(gw, token: str = "anything") -> Iterator[ClientConnection]:  # type: ignore[no-untyped-def]
    """An authenticated connection (``ready`` received)."""
    with _open(gw) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        ready = _recv(ws)
        assert ready["type"] == "ready", ready
        yield ws




def _text(msgs: list[dict[str, Any]]) -> str:
    return "".join(m.get("text", "") for m in msgs if m["type"] == "delta")


def test_chat_streams_deltas_with_seq_then_done(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.set_answer(reasoning="想", chunk_size=3)
    with gateway_for(ernie_simulator) as gw, _session(gw) as ws:
        ws.send(json.dumps({"type": "chat", "mid": "m1", "messages": [{"role": "user", "content": "你好"}],
                            "temperature": 0.3}))
        msgs = _until_end(ws, "m1")
    deltas = [m for m in msgs if m["type"] == "delta"]
    assert [m["seq"] for m in deltas] == list(range(1, len(deltas) + 1))
    assert deltas[0] == {"type": "delta", "mid": "m1", "seq": 1, "reasoning": "想"}
    assert _text(msgs) == echo_answer("你好")
    done = msgs[-1]
    assert done["type"] == "done" and done["finish_reason"] == "stop" and done["usage"]["total_tokens"] > 0
    assert ernie_simulator.chat_requests[-1].json["temperature"] == 0.3


def test_the_first_message_must_authenticate(ernie_simulator: ErnieSimulator, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "k.db")
    key = keys.add("olga")
    with gateway_for(ernie_simulator, keys=keys) as gw:
        with _open(gw) as ws:
            ws.send(json.dumps({"type": "chat", "mid": 1, "messages": [{"role": "user", "content": "x"}]}))
            assert _recv(ws)["code"] == "auth_required"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        with _open(gw) as ws:
            ws.send(json.dumps({"type": "auth", "token": "ewk_wrong"}))
            assert _recv(ws)["code"] == "invalid_api_key"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
        with _session(gw, key) as ws:
            keys.revoke("olga")  # checked again on every chat message
            ws.send(json.dumps({"type": "chat", "mid": 2, "messages": [{"role": "user", "content": "x"}]}))
            err = _recv(ws)
            assert err["type"] == "error" and err["mid"] == 2 and err["code"] == "revoked_api_key"
    assert not ernie_simulator.chat_requests


def test_errors_are_per_message(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.status(500))
    with gateway_for(ernie_simulator, default_rpm=2) as gw, _session(gw) as ws:
        ws.send(json.dumps({"type": "chat", "mid": 1, "messages": [{"role": "user", "content": "x"}]}))
        assert _until_end(ws, 1)[-1]["code"] == "upstream_server_error"
        ws.send(json.dumps({"type": "chat", "mid": 2, "messages": []}))
        assert _recv(ws)["code"] == "invalid_request"
        ws.send("not json")
        assert _recv(ws)["code"] == "invalid_message"
        ws.send(json.dumps({"type": "chat", "mid": 3, "messages": [{"role": "user", "content": "x"}]}))
        assert _until_end(ws, 3)[-1]["type"] == "done"
        ws.send(json.dumps({"type": "chat", "mid": 4, "messages": [{"role": "user", "content": "x"}]}))
        limited = _until_end(ws, 4)[-1]
        assert limited["code"] == "rate_limit_exceeded" and int(limited["retry_after"]) >= 1
        ws.send(json.dumps({"type": "ping"}))
        assert _recv(ws) == {"type": "pong"}


def test_resume_after_a_dropped_connection(ernie_simulator: ErnieSimulator) -> None:
    text = "".join(f"{i:02d}" for i in range(40))
    ernie_simulator.set_answer(text=text, chunk_size=2, delay=0.03)
    with gateway_for(ernie_simulator) as gw:
        with _session(gw) as ws:
            ws.send(json.dumps({"type": "chat", "mid": 9, "messages": [{"role": "user", "content": "count"}]}))
            first = [_recv(ws) for _ in range(5)]
            assert [m["seq"] for m in first] == [1, 2, 3, 4, 5]
            _drop(ws)
        time.sleep(0.2)  # the answer keeps streaming into the replay buffer meanwhile
        with _session(gw) as ws2:
            ws2.send(json.dumps({"type": "resume", "mid": 9, "seq": 5}))
            rest = _until_end(ws2, 9)
    deltas = [m for m in rest if m["type"] == "delta"]
    assert deltas[0]["seq"] == 6 and [m["seq"] for m in deltas] == list(range(6, 6 + len(deltas)))
    assert _text(first) + _text(rest) == text
    assert rest[-1]["type"] == "done"
    assert not ernie_simulator.chat_requests[-1].disconnected  # upstream never noticed the drop


def test_resume_a_finished_answer_and_what_cannot_be_resumed(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.set_answer(text="x" * 400, chunk_size=4)
    with gateway_for(ernie_simulator, replay_bytes=4000) as gw:
        with _session(gw) as ws:
            ws.send(json.dumps({"type": "chat", "mid": "a", "messages": [{"role": "user", "content": "q"}]}))
            full = _until_end(ws, "a")
        with _session(gw) as ws:
            ws.send(json.dumps({"type": "resume", "mid": "a", "seq": len(full) - 3}))
            tail = _until_end(ws, "a")
            assert _text(tail) == "xxxx" * 2 and tail[-1]["type"] == "done"
            ws.send(json.dumps({"type": "resume", "mid": "a", "seq": 0}))  # older than the 4 kB window
            assert _recv(ws)["code"] == "resume_gap"
            ws.send(json.dumps({"type": "resume", "mid": "nope", "seq": 0}))
            assert _recv(ws)["code"] == "resume_unavailable"


def test_users_cannot_resume_each_others_answers(ernie_simulator: ErnieSimulator, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "k.db")
    alice, bob = keys.add("alice"), keys.add("bob")
    with gateway_for(ernie_simulator, keys=keys) as gw:
        with _session(gw, alice) as ws:
            ws.send(json.dumps({"type": "chat", "mid": 1, "messages": [{"role": "user", "content": "private"}]}))
            _until_end(ws, 1)
        with _session(gw, bob) as ws:
            ws.send(json.dumps({"type": "resume", "mid": 1, "seq": 0}))
            assert _recv(ws)["code"] == "resume_unavailable"


def test_stop_and_normal_close_cancel_upstream_at_once(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.endless(interval=0.01), Fault.endless(interval=0.01))
    with gateway_for(ernie_simulator) as gw:
        with _session(gw) as ws:
            ws.send(json.dumps({"type": "chat", "mid": 1, "messages": [{"role": "user", "content": "go"}]}))
            _recv(ws)
            ws.send(json.dumps({"type": "stop", "mid": 1}))
            end = _until_end(ws, 1)[-1]
            assert end == {"type": "done", "mid": 1, "usage": None, "finish_reason": "stopped"}
            assert ernie_simulator.wait_for(lambda: ernie_simulator.chat_requests[0].disconnected, 3)
            ws.send(json.dumps({"type": "chat", "mid": 2, "messages": [{"role": "user", "content": "go"}]}))
            _recv(ws)
        # leaving the with-block sent a close frame with code 1000
        assert ernie_simulator.wait_for(lambda: ernie_simulator.chat_requests[1].disconnected, 3)


def test_an_abandoned_answer_is_cancelled_after_the_grace_period(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.endless(interval=0.01))
    with gateway_for(ernie_simulator, resume_grace=0.3) as gw:
        with _session(gw) as ws:
            ws.send(json.dumps({"type": "chat", "mid": 1, "messages": [{"role": "user", "content": "go"}]}))
            _recv(ws)
            _drop(ws)
        time.sleep(0.15)
        assert not ernie_simulator.chat_requests[0].disconnected  # still within the grace period
        assert ernie_simulator.wait_for(lambda: ernie_simulator.chat_requests[0].disconnected, 3)
        with _session(gw) as ws2:
            ws2.send(json.dumps({"type": "resume", "mid": 1, "seq": 1}))
            assert _until_end(ws2, 1)[-1]["finish_reason"] == "abandoned"


def test_output_filter_withdraws_on_the_websocket_too(ernie_simulator: ErnieSimulator, tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("badword\n")
    ernie_simulator.push(Answer(text="fine text then badword and more", chunk_size=4, delay=0.01))
    with gateway_for(ernie_simulator, content_filter=str(tmp_path / "b.txt"), filter_notice="[gone]") as gw:
        with _session(gw) as ws:
            ws.send(json.dumps({"type": "chat", "mid": 1, "messages": [{"role": "user", "content": "x"}]}))
            msgs = _until_end(ws, 1)
        with _session(gw) as ws:
            ws.send(json.dumps({"type": "resume", "mid": 1, "seq": 0}))
            replay = _until_end(ws, 1)
    withdraw = next(m for m in msgs if m["type"] == "withdraw")
    assert withdraw["notice"] == "[gone]" and msgs[-1]["finish_reason"] == "content_filter"
    assert [m["type"] for m in replay] == ["withdraw", "done"]  # the withdrawn text is not replayed


def test_the_replay_store_stays_bounded_in_answers_bytes_and_time() -> None:
    from ernie_widget.gateway.items import Item
    from ernie_widget.gateway.resume import ReplayStore

    store = ReplayStore(max_bytes=1000, ttl=5.0, grace=1.0, max_answers=20)
    for i in range(50):
        a = store.create("u", i)
        for _ in range(30):
            a.put(Item("text", text="0123456789"))
        a.put(Item("end", finish_reason="stop"))
        assert a.bytes <= 1000 and a.entries[-1][0] == 30  # oldest deltas dropped, numbering kept
    assert len(store.answers) <= 20 and store.get("u", 49) is not None
    assert store.get("u", 49).since(29) == [  # type: ignore[union-attr]
        {"type": "delta", "mid": 49, "text": "0123456789", "seq": 30},
        {"type": "done", "mid": 49, "usage": None, "finish_reason": "stop"}]
    assert store.get("u", 49).since(0) is None  # type: ignore[union-attr]
    store.sweep(now=time.monotonic() + 10)  # past the TTL
    assert not store.answers
