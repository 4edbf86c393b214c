"""ErnieChat without a browser: comm messages captured at `BaseComm.send`, the front end simulated with
`_handle_msg`, the service played by the ERNIE protocol simulator (docs/notebook-facts.md §11.1)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import pytest

from ernie_widget import ErnieChat
from ernie_widget import conversations as threads
from ernie_widget.conversations import WITHDRAWN_NOTICE, ThreadBusyError
from ernie_widget.deltas import DeltaBatcher
from ernie_widget.testing import Answer, Fault

from .kernel_side import Sent, capture_comm

KEY = "bce-v3/ALTAK-testkey123/secretpart456"


# -- capture -------------------------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    return capture_comm(monkeypatch)


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_registry", {})
    monkeypatch.setattr(threads, "_stores", {})


@pytest.fixture
def sim(ernie_simulator, monkeypatch: pytest.MonkeyPatch):
    for key, value in ernie_simulator.env("qianfan", api_key=KEY).items():
        monkeypatch.setenv(key, value)
    return ernie_simulator


def from_frontend(widget: ErnieChat, content: dict[str, Any]) -> None:
    """What `model.send(content)` in the browser does."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


def last_mid(sent: Sent) -> int:
    return sent.custom("start")[-1]["mid"]


# -- batching ------------------------------------------------------------------------------------


def test_fast_stream_is_coalesced_into_few_ordered_deltas(sim, sent: Sent) -> None:
    text = "流式输出测试abc" * 400  # 3,600 one-character chunks with no delay
    sim.push(Answer(text=text, chunk_size=1, delay=0))
    chat = ErnieChat()
    t0 = time.monotonic()
    answer = chat.ask("hi").wait(30)
    elapsed = time.monotonic() - t0
    mid = answer["mid"]
    deltas = sent.custom("delta", mid)
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    assert sent.delta_text(mid) == text == answer["content"]
    assert sim.chat_requests[-1].chunks_sent >= 3600
    assert len(deltas) <= 61 * elapsed + 2, (len(deltas), elapsed)  # ≤ 60 messages/s (DeltaBatcher)
    assert all("id" not in d for d in sent.custom())


def test_slow_stream_sends_every_piece_without_waiting_for_the_next(sim, sent: Sent) -> None:
    sim.push(Answer(text="一二三四", chunk_size=1, delay=0.2))
    chat = ErnieChat()
    answer = chat.ask("hi").wait(10)
    deltas = sent.custom("delta", answer["mid"])
    assert [d["text"] for d in deltas] == ["一", "二", "三", "四"]
    times = [t for d, t in zip(sent, sent.times, strict=True)
             if d.get("method") == "custom" and d["content"]["type"] == "delta"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.15 < g < 0.25 for g in gaps), gaps


def test_piece_arriving_right_after_a_flush_is_sent_by_the_timer_within_50ms(sent: Sent) -> None:
    arrived: dict[str, float] = {}

    async def bursty(history: list[dict[str, Any]]):
        for piece, pause in (("a", 0.005), ("b", 0.3), ("c", 0.005), ("d", 0.3)):
            arrived[piece] = time.monotonic()
            yield piece
            await asyncio.sleep(pause)

    chat = ErnieChat(backend=bursty)
    answer = chat.ask("go").wait(5)
    assert answer["content"] == "abcd"
    for piece in "abcd":
        sent_at = next(t for d, t in zip(sent, sent.times, strict=True)
                       if d.get("method") == "custom" and piece in d["content"].get("text", ""))
        assert sent_at - arrived[piece] < 0.05, (piece, sent_at - arrived[piece])
    # "b" came 5 ms after "a" was flushed: it went out alone, from the timer, not with "c"
    assert [d["text"] for d in sent.custom("delta", answer["mid"])] == ["a", "b", "c", "d"]


def test_batcher_flushes_pending_text_on_close_and_keeps_seq() -> None:
    out: list[dict[str, Any]] = []

    async def run() -> None:
        b = DeltaBatcher(out.append, mid=7, interval=10.0)
        b.add(text="x")
        b.add(text="y", reasoning="r")
        b.add(text="z")
        assert [m["text"] for m in out] == ["x"]
        b.close()

    asyncio.run(run())
    assert out == [{"type": "delta", "mid": 7, "seq": 0, "text": "x"},
                   {"type": "delta", "mid": 7, "seq": 1, "text": "yz", "reasoning": "r"}]



def test_the_pages_frame_reports_move_the_flush_grid_and_junk_is_ignored(sim, sent: Sent) -> None:
    sim.push(Answer(text="x" * 400, chunk_size=1, delay=0.004))  # ~250 chunks/s: most flushes on the grid
    chat = ErnieChat()
    handle = chat.ask("go")
    mid = last_mid(sent)
    wait_until(lambda: len(sent.custom("delta", mid)) >= 20)
    for junk in ({"type": "frame_timing"}, {"type": "frame_timing", "mid": mid, "waits": [[0, "x"]]},
                 {"type": "frame_timing", "mid": mid, "waits": [[0, 1e308]] * 10}):
        from_frontend(chat, junk)
    seqs = [d["seq"] for d in sent.custom("delta", mid)]
    from_frontend(chat, {"type": "frame_timing", "mid": mid, "waits": [[seq, 12.0] for seq in seqs]})
    wait_until(lambda: chat._frames.version == 1)
    assert handle.wait(10)["content"] == "x" * 400
    assert not sent.custom("notice")  # timing hints: no notice for a malformed one
    assert abs(chat._frames.anchor - 0.007) < 1e-9

# -- the messages trait --------------------------------------------------------------------------


def test_messages_written_once_for_the_question_and_once_for_the_answer(sim, sent: Sent) -> None:
    sim.push(Answer(text="好的，" * 200, reasoning="先想一想。", chunk_size=2, delay=0.001,
                    usage={"prompt_tokens": 3, "completion_tokens": 400, "total_tokens": 403}))
    chat = ErnieChat()
    answer = chat.ask("你好").wait(10)
    assert len(sent.custom("delta", answer["mid"])) >= 2
    updates = sent.updates("messages")
    assert len(updates) == 2  # never per delta
    assert updates[0]["status"] == "streaming" and updates[0]["messages"][-1]["role"] == "user"
    assert updates[1]["status"] == "idle"
    stored = updates[1]["messages"][-1]
    assert stored["role"] == "assistant" and stored["content"] == "好的，" * 200
    assert stored["reasoning"] == "先想一想。"
    assert stored["usage"] == {"prompt_tokens": 3, "completion_tokens": 400, "total_tokens": 403}
    assert stored["metrics"]["chunks"] > 0 and stored["metrics"]["ttft_ms"] is not None
    assert stored["status"] == "ok" and stored["mid"] == answer["mid"]
    # the custom messages bracket the turn
    kinds = [c["type"] for c in sent.custom() if c.get("mid") == answer["mid"]]
    assert kinds[0] == "start" and kinds[-1] == "done" and set(kinds[1:-1]) == {"delta"}
    assert sent.custom("done")[-1] == {"type": "done", "mid": answer["mid"], "status": "ok"}
    assert chat.status == "idle"


def test_hello_mid_stream_resyncs_with_text_so_far_and_next_seq(sim, sent: Sent) -> None:
    text = "".join(chr(0x4E00 + i) for i in range(40))
    sim.push(Answer(text=text, chunk_size=1, delay=0.03))
    chat = ErnieChat()
    handle = chat.ask("hi")
    mid = last_mid(sent)
    wait_until(lambda: len(sent.custom("delta", mid)) >= 3)
    from_frontend(chat, {"type": "hello"})
    wait_until(lambda: sent.custom("resync", mid))
    answer = handle.wait(10)
    with sent.lock:
        stream = [d["content"] for d in sent if d.get("method") == "custom" and d["content"].get("mid") == mid]
    i = next(k for k, c in enumerate(stream) if c["type"] == "resync")
    before = [c for c in stream[:i] if c["type"] == "delta"]
    after = [c for c in stream[i + 1:] if c["type"] == "delta"]
    resync = stream[i]
    assert set(resync) == {"type", "mid", "seq", "text", "reasoning"}
    assert resync["text"] == "".join(d["text"] for d in before) and resync["text"]
    assert resync["seq"] == len(before)
    assert after and after[0]["seq"] == resync["seq"]
    assert resync["text"] + "".join(d["text"] for d in after) == text == answer["content"]


def test_hello_when_idle_sends_nothing(sim, sent: Sent) -> None:
    chat = ErnieChat()
    from_frontend(chat, {"type": "hello"})
    time.sleep(0.05)
    assert sent.custom() == []


# -- stop ----------------------------------------------------------------------------------------


def _stop_case(sim, sent: Sent, stop: Any) -> None:
    sim.push(Fault.endless(interval=0.01, answer=Answer(text="流", chunk_size=1)))
    chat = ErnieChat()
    handle = chat.ask("不要停")
    mid = last_mid(sent)
    wait_until(lambda: len(sent.custom("delta", mid)) >= 3)
    t0 = time.monotonic()
    stop(chat)
    req = sim.chat_requests[-1]
    assert sim.wait_for(lambda: req.disconnected, timeout=1.0)
    answer = handle.wait(2)
    assert time.monotonic() - t0 < 1.0
    assert answer["status"] == "stopped"
    assert answer["content"] and answer["content"] == sent.delta_text(mid)
    assert chat.messages[-1]["status"] == "stopped" and chat.messages[-1]["content"] == answer["content"]
    assert sent.custom("done", mid) == [{"type": "done", "mid": mid, "status": "stopped"}]
    assert chat.status == "idle"
    # the conversation is usable again
    assert chat.ask("再来").wait(5)["status"] == "ok"


def test_stop_from_the_front_end_closes_the_connection_and_keeps_partial_text(sim, sent: Sent) -> None:
    _stop_case(sim, sent, lambda chat: from_frontend(chat, {"type": "stop"}))


def test_chat_stop_from_python(sim, sent: Sent) -> None:
    _stop_case(sim, sent, lambda chat: chat.stop())


def test_closing_the_widget_mid_stream_cancels_the_request(sim, sent: Sent) -> None:
    sim.push(Fault.endless(interval=0.01))
    chat = ErnieChat(thread="closing")
    handle = chat.ask("hi")
    wait_until(lambda: sim.chat_requests and sim.chat_requests[-1].chunks_sent >= 2)
    chat.close()
    req = sim.chat_requests[-1]
    assert sim.wait_for(lambda: req.disconnected, timeout=1.0)
    assert handle.wait(2)["status"] == "stopped"
    assert not threads.get_thread("closing").busy


def test_stop_before_the_stream_starts_still_releases_the_conversation(sent: Sent) -> None:
    calls: list[int] = []

    async def never(history: list[dict[str, Any]]):
        calls.append(1)
        await asyncio.sleep(30)
        yield "x"

    chat = ErnieChat(backend=never)
    handle = chat.ask("hi")
    chat.stop()
    assert handle.wait(2)["status"] == "stopped"
    assert chat.ask("again") is not None  # not left busy
    chat.stop()


# -- errors --------------------------------------------------------------------------------------


def test_auth_error_is_shown_in_the_answer_and_the_next_ask_works(sim, sent: Sent) -> None:
    sim.push(Fault.status(401))
    chat = ErnieChat()
    bad = chat.ask("one").wait(10)
    assert bad["status"] == "error" and "401" in bad["error"]
    assert sent.custom("done", bad["mid"])[0]["error"] == bad["error"]
    good = chat.ask("two").wait(10)
    assert good["status"] == "ok" and good["content"].endswith("two")
    # the failed exchange is not sent again
    assert [m["content"] for m in sim.chat_requests[-1].messages] == ["two"]


def test_rate_limit_is_retried_then_answers(sim, sent: Sent) -> None:
    sim.push(Fault.status(429, retry_after=0), Answer(text="ok"))
    answer = ErnieChat().ask("hi").wait(10)
    assert answer["status"] == "ok" and answer["content"] == "ok"
    assert answer["metrics"]["retries"] == 1
    assert len(sim.chat_requests) == 2


def test_cut_stream_keeps_partial_text_and_the_conversation_survives(sim, sent: Sent) -> None:
    sim.push(Fault.cut(after_chunks=2, answer=Answer(text="abcdefgh", chunk_size=2)))
    chat = ErnieChat()
    bad = chat.ask("one").wait(10)
    assert bad["status"] == "error" and bad["content"] == "abcd"
    assert sent.delta_text(bad["mid"]) == "abcd"
    assert chat.ask("two").wait(10)["status"] == "ok"
    assert sim.chat_requests[-1].messages[-1]["content"] == "two"


def test_backend_exception_becomes_an_error_answer(sent: Sent) -> None:
    def broken(history: list[dict[str, Any]]) -> str:
        raise RuntimeError("model crashed")

    chat = ErnieChat(backend=broken)
    answer = chat.ask("hi").wait(5)
    assert answer["status"] == "error" and "model crashed" in answer["error"]
    assert chat.status == "idle"


# -- one answer at a time ------------------------------------------------------------------------


def test_second_ask_while_streaming_is_refused(sim, sent: Sent) -> None:
    sim.push(Answer(text="慢慢来" * 10, chunk_size=1, delay=0.02))
    chat = ErnieChat()
    handle = chat.ask("first")
    with pytest.raises(ThreadBusyError, match="already streaming"):
        chat.ask("second")
    from_frontend(chat, {"type": "ask", "text": "third"})
    notices = sent.custom("notice")
    assert len(notices) == 1 and "already streaming" in notices[0]["text"]
    handle.wait(10)
    assert [m["content"] for m in chat.messages if m["role"] == "user"] == ["first"]
    assert len(sim.chat_requests) == 1


def test_two_widgets_on_one_thread_share_the_turn_lock(sim, sent: Sent) -> None:
    sim.push(Answer(text="x" * 20, chunk_size=1, delay=0.02))
    a, b = ErnieChat(thread="shared"), ErnieChat(thread="shared")
    handle = a.ask("first")
    with pytest.raises(ThreadBusyError):
        b.ask("second")
    handle.wait(10)
    assert b.messages == a.messages and len(b.messages) == 2


def test_bad_front_end_messages_become_notices(sent: Sent) -> None:
    chat = ErnieChat(backend=lambda h: "ok")
    from_frontend(chat, {"type": "delete", "index": "not a number"})
    from_frontend(chat, {"type": "ask", "text": "   "})
    from_frontend(chat, {"type": "retry"})
    assert len(sent.custom("notice")) == 3
    from_frontend(chat, "not a dict")  # type: ignore[arg-type]
    from_frontend(chat, {"type": "unknown"})
    assert len(sent.custom("notice")) == 3


# -- editing the conversation --------------------------------------------------------------------


def test_retry_asks_the_last_question_again_replacing_its_answer(sim, sent: Sent) -> None:
    sim.push(Answer(text="first answer"), Answer(text="second answer"))
    chat = ErnieChat()
    chat.ask("q").wait(5)
    from_frontend(chat, {"type": "retry"})
    wait_until(lambda: len(sent.custom("done")) == 2)
    assert [(m["role"], m["content"]) for m in chat.messages] == [("user", "q"), ("assistant", "second answer")]
    assert [m["content"] for m in sim.chat_requests[-1].messages] == ["q"]


def test_clear_forgets_the_conversation(sim, sent: Sent) -> None:
    chat = ErnieChat()
    chat.ask("q1").wait(5)
    from_frontend(chat, {"type": "clear"})
    assert chat.messages == []
    chat.ask("q2").wait(5)
    assert [m["content"] for m in sim.chat_requests[-1].messages] == ["q2"]


def test_clear_while_streaming_stops_first(sim, sent: Sent) -> None:
    sim.push(Fault.endless(interval=0.01))
    chat = ErnieChat()
    handle = chat.ask("q1")
    wait_until(lambda: sent.custom("delta"))
    chat.clear()
    assert handle.wait(1)["status"] == "stopped"
    assert chat.messages == [] and chat.status == "idle"


def test_delete_removes_one_exchange_by_either_index(sim, sent: Sent) -> None:
    chat = ErnieChat()
    for q in ("q1", "q2", "q3"):
        chat.ask(q).wait(5)
    from_frontend(chat, {"type": "delete", "index": 0})  # the question
    assert [m["content"] for m in chat.messages if m["role"] == "user"] == ["q2", "q3"]
    from_frontend(chat, {"type": "delete", "index": 3})  # an answer: its question goes too
    assert [m["content"] for m in chat.messages if m["role"] == "user"] == ["q2"]
    chat.ask("q4").wait(5)
    assert [m["content"] for m in sim.chat_requests[-1].messages if m["role"] == "user"] == ["q2", "q4"]


def test_edit_replaces_the_last_question_and_asks_again(sim, sent: Sent) -> None:
    chat = ErnieChat()
    chat.ask("q1").wait(5)
    chat.ask("q2 with a typo").wait(5)
    from_frontend(chat, {"type": "edit", "text": "q2 fixed"})
    wait_until(lambda: len(sent.custom("done")) == 3)
    users = [m["content"] for m in chat.messages if m["role"] == "user"]
    assert users == ["q1", "q2 fixed"] and len(chat.messages) == 4
    assert [m["content"] for m in sim.chat_requests[-1].messages if m["role"] == "user"] == ["q1", "q2 fixed"]


def test_continue_after_a_truncated_answer(sim, sent: Sent) -> None:
    sim.push(Answer(text="第一部分", is_truncated=True), Answer(text="第二部分"))
    chat = ErnieChat()
    first = chat.ask("写长文").wait(5)
    assert first["truncated"] is True and first["finish_reason"] == "length"
    from_frontend(chat, {"type": "continue"})
    wait_until(lambda: len(sent.custom("done")) == 2)
    assert [m["content"] for m in sim.chat_requests[-1].messages] == ["写长文", "第一部分", "继续"]
    assert chat.messages[-1]["content"] == "第二部分"
    from_frontend(chat, {"type": "continue"})  # not truncated now
    assert "not cut off" in sent.custom("notice")[-1]["text"]


# -- outputs -------------------------------------------------------------------------------------


def active_content(html: str) -> list[str]:
    """Tags and attributes in *html* that could run code or load something."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("script", "iframe", "object", "embed", "img", "style", "link", "form"):
                found.append(tag)
            for name, value in attrs:
                if name.startswith("on") or (value or "").strip().lower().startswith(("javascript:", "data:")):
                    found.append(f"{tag}[{name}]")

    Finder().feed(html)
    return found


EVIL = ("看代码：\n\n```python\nprint(1)\n```\n\n```js\nalert(2)\n```\n\n"
        "<script>alert('x')</script> [click](javascript:alert(3)) <img src=x onerror=alert(4)>")


def test_code_blocks_markdown_and_sanitized_transcript(sim, sent: Sent) -> None:
    sim.push(Answer(text=EVIL))
    chat = ErnieChat()
    chat.ask("给我代码").wait(5)
    assert chat.code_blocks == ["print(1)\n", "alert(2)\n"]
    md = chat.to_markdown()
    assert md.startswith("**You:** 给我代码") and "```python\nprint(1)\n```" in md
    bundle = chat.transcript()._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    assert active_content(bundle["text/html"]) == []
    assert "print" in bundle["text/html"] and "&lt;script&gt;" in bundle["text/html"]  # shown, inert
    assert bundle["text/plain"] == md


def test_repr_is_stable_for_nbval(sent: Sent) -> None:
    chat = ErnieChat(backend=lambda h: "ok")
    assert repr(chat) == "ErnieChat(provider='custom', thread=None, turns=0, status='idle')"
    chat.ask("hi").wait(5)
    assert repr(chat) == "ErnieChat(provider='custom', thread=None, turns=1, status='idle')"
    assert "0x" not in repr(chat)


def test_on_reply_gets_every_finished_answer(sim, sent: Sent) -> None:
    got: list[dict[str, Any]] = []
    chat = ErnieChat()
    chat.on_reply(got.append)
    chat.on_reply(lambda a: 1 / 0)  # a broken callback does not break the chat
    chat.ask("a").wait(5)
    chat.ask("b").wait(5)
    assert [g["content"] for g in got] == ["你好！You said: a", "你好！You said: b"]
    assert all(g["status"] == "ok" and "usage" in g for g in got)


# -- custom backends -----------------------------------------------------------------------------


def test_backend_sync_generator(sent: Sent) -> None:
    seen: list[Any] = []

    def gen(history: list[dict[str, Any]]):
        seen.append(history)
        yield "你"
        time.sleep(0.05)  # blocking is fine: each step runs in a worker thread
        yield "好"

    chat = ErnieChat(backend=gen)
    assert chat.model_label == "gen"
    answer = chat.ask("hi").wait(5)
    assert answer["content"] == "你好" and sent.delta_text(answer["mid"]) == "你好"
    chat.ask("again").wait(5)
    assert seen[-1] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "你好"},
                        {"role": "user", "content": "again"}]


def test_backend_async_generator(sent: Sent) -> None:
    async def agen(history: list[dict[str, Any]]):
        for piece in ("a", "b", "c"):
            await asyncio.sleep(0.01)
            yield piece

    answer = ErnieChat(backend=agen).ask("hi").wait(5)
    assert answer["content"] == "abc" and answer["status"] == "ok"


def test_backend_plain_function(sent: Sent) -> None:
    def echo(history: list[dict[str, Any]]) -> str:
        time.sleep(0.05)  # runs in a worker thread, not on the stream loop
        return "echo: " + history[-1]["content"]

    answer = ErnieChat(backend=echo).ask("hi").wait(5)
    assert answer["content"] == "echo: hi"


def test_backend_sync_generator_can_be_stopped(sent: Sent) -> None:
    def slow(history: list[dict[str, Any]]):
        for i in range(1000):
            time.sleep(0.01)
            yield str(i % 10)

    chat = ErnieChat(backend=slow)
    handle = chat.ask("go")
    wait_until(lambda: sent.custom("delta"))
    chat.stop()
    answer = handle.wait(2)
    assert answer["status"] == "stopped" and answer["content"]


# -- safety --------------------------------------------------------------------------------------


def test_need_clear_history_excludes_earlier_turns_from_the_next_request(sim, sent: Sent) -> None:
    sim.push(Answer(text="a1"), Answer(text="a2", need_clear_history=True), Answer(text="a3"))
    chat = ErnieChat()
    chat.ask("q1").wait(5)
    chat.ask("q2").wait(5)
    assert len(sent.custom("notice")) == 1
    assert chat.messages[-1]["notice"] == sent.custom("notice")[0]["text"]
    chat.ask("q3").wait(5)
    assert [m["content"] for m in sim.chat_requests[-1].messages] == ["q3"]
    assert len(chat.messages) == 6  # still shown
    assert all("excluded" not in m for m in chat.messages)


def test_flag_4_withdraws_the_answer(sim, sent: Sent) -> None:
    sim.push(Answer(text="不该显示的内容", flag=4, chunk_size=2))
    chat = ErnieChat()
    answer = chat.ask("q").wait(5)
    assert sent.custom("withdraw", answer["mid"]) == [
        {"type": "withdraw", "mid": answer["mid"], "notice": WITHDRAWN_NOTICE}]
    assert answer["withdrawn"] is True and answer["content"] == WITHDRAWN_NOTICE
    assert chat.messages[-1]["content"] == WITHDRAWN_NOTICE
    assert "不该显示" not in chat.to_markdown() and chat.code_blocks == []
    chat.ask("next").wait(5)
    assert [m["content"] for m in sim.chat_requests[-1].messages] == ["next"]


def test_flag_3_blocks_and_withdraws(sim, sent: Sent) -> None:
    sim.push(Answer(text="被拦截的内容", flag=3))
    chat = ErnieChat()
    answer = chat.ask("q").wait(5)
    assert answer["status"] == "error" and answer["withdrawn"] is True
    assert answer["content"] == WITHDRAWN_NOTICE
    assert sent.custom("withdraw", answer["mid"])


# -- secrets -------------------------------------------------------------------------------------


def _assert_secret_free(chat: ErnieChat, sent: Sent, secrets: list[str]) -> None:
    blobs = [json.dumps(chat.get_state(), ensure_ascii=False), json.dumps(list(sent), ensure_ascii=False),
             repr(chat), chat.to_markdown()]
    for secret in secrets:
        assert secret
        for blob in blobs:
            assert secret not in blob


def test_no_key_in_widget_state_or_messages(sim, sent: Sent) -> None:
    sim.push(Fault.status(401))
    chat = ErnieChat()
    chat.ask("one").wait(5)
    chat.ask("two").wait(5)
    _assert_secret_free(chat, sent, [KEY, "secretpart456", "ALTAK-testkey123"])


def test_no_oauth_token_in_widget_state_or_messages(ernie_simulator, monkeypatch: pytest.MonkeyPatch,
                                                    sent: Sent) -> None:
    for key, value in ernie_simulator.env("qianfan-v1", api_key="my-ak-123", secret_key="my-sk-456").items():
        monkeypatch.setenv(key, value)
    chat = ErnieChat()
    chat.ask("one").wait(5)
    oauth = [r for r in ernie_simulator.requests if r.surface == "oauth"]
    assert oauth
    token = json.loads(oauth[0].response_body or b"{}").get("access_token") if oauth[0].response_body else None
    chat_req = ernie_simulator.chat_requests[-1]
    token = token or chat_req.query.get("access_token")
    assert token and token.startswith("24.")
    _assert_secret_free(chat, sent, ["my-ak-123", "my-sk-456", token])


def test_a_chat_with_ernie_shows_no_offline_banner_and_labels_answers_with_the_model(sim, sent: Sent) -> None:
    chat = ErnieChat()
    assert chat.banner == "" and chat.model_label.startswith("qianfan · ")
    answer = chat.ask("hi").wait(10)
    assert answer["model"] and f"**{answer['model']}:**" in chat.to_markdown()


def test_a_lambda_backend_is_labelled_custom_backend_not_lambda(sent: Sent) -> None:
    assert ErnieChat(backend=lambda history: "hi").model_label == "custom backend"

    def my_model(history: list[dict[str, Any]]) -> str:
        return "hi"

    assert ErnieChat(backend=my_model).model_label == "my_model"


def test_a_rejected_key_says_how_to_set_one(sim, sent: Sent) -> None:
    sim.push(Fault.status(401))
    answer = ErnieChat().ask("hi").wait(10)
    assert answer["status"] == "error" and answer["error_kind"] == "auth"
    assert "QIANFAN_API_KEY" in answer["error"] and "--doctor" in answer["error"]


# -- web search ------------------------------------------------------------------------------------

SOURCES = [{"index": 1, "url": "https://yiyan.baidu.com/blog/ernie", "title": "ERNIE 4.5", "datasource_id": "x"},
           {"index": 2, "url": "https://example.org/report", "title": "  报告\n全文 "}]
STORED_SOURCES = [{"index": 1, "url": "https://yiyan.baidu.com/blog/ernie", "title": "ERNIE 4.5"},
                  {"index": 2, "url": "https://example.org/report", "title": "报告 全文"}]
CITATIONS = {"enable": True, "enable_citation": True, "enable_trace": True}


@pytest.mark.parametrize(("provider", "placement"), [("qianfan", "top"), ("qianfan", "web_search"),
                                                    ("qianfan-v1", "search_info")])
def test_web_search_asks_for_citations_and_streams_the_sources_once(ernie_simulator, monkeypatch: pytest.MonkeyPatch,
                                                                    sent: Sent, provider: str, placement: str) -> None:
    """v2 puts the results at the top level or under `web_search`, in the first and again in the last chunk; v1
    under `search_info` at the end. Each way: one `sources` message, and the answer stores them."""
    sim = ernie_simulator
    for key, value in sim.env(provider, api_key=KEY, secret_key="sk-test").items():
        monkeypatch.setenv(key, value)
    text = "ERNIE 4.5 已开源^[1]^，见报告^[2]^。" * 3
    sim.push(Answer(text=text, search_results=SOURCES, chunk_size=3, delay=0.005,
                    search_placement="web_search" if placement == "web_search" else "top"))
    chat = ErnieChat(web_search=True)
    answer = chat.ask("ERNIE 4.5 开源了吗？").wait(10)
    body = sim.chat_requests[-1].json
    assert (body["web_search"] == CITATIONS) if provider == "qianfan" else (body["enable_citation"] is True)
    mid = answer["mid"]
    msgs = [m for m in sent.custom() if m.get("mid") == mid]
    assert [m for m in msgs if m["type"] == "sources"] == [{"type": "sources", "mid": mid, "results": STORED_SOURCES}]
    kinds = [m["type"] for m in msgs]
    last_delta = max(i for i, k in enumerate(kinds) if k == "delta")
    if provider == "qianfan":  # from the first chunk: the view lists them while the text still streams
        assert kinds.index("sources") < last_delta
    assert kinds.index("sources") < kinds.index("done")
    # stored with the answer, so a reloaded view (the messages trait) shows them again
    assert answer["content"] == text
    assert answer["search_results"] == STORED_SOURCES and chat.messages[-1]["search_results"] == STORED_SOURCES
    assert "**来源 / Sources**" in chat.to_markdown() and "<https://example.org/report>" in chat.to_markdown()


def test_web_search_is_off_by_default_and_the_trait_turns_it_on(sim, sent: Sent) -> None:
    chat = ErnieChat()
    chat.ask("q").wait(10)
    assert "web_search" not in sim.chat_requests[-1].json
    chat.web_search = True
    chat.ask("q2").wait(10)
    assert sim.chat_requests[-1].json["web_search"] == CITATIONS


def test_a_view_reconnecting_mid_answer_gets_the_sources_right_after_the_text(sim, sent: Sent) -> None:
    sim.push(Answer(text="一二三四五六七八^[1]^", search_results=SOURCES, chunk_size=1, delay=0.05))
    chat = ErnieChat(web_search=True)
    handle = chat.ask("q")
    wait_until(lambda: bool(sent.custom("sources")))
    from_frontend(chat, {"type": "hello"})
    wait_until(lambda: bool(sent.custom("resync")))
    answer = handle.wait(10)
    msgs = sent.custom()
    after = msgs.index(sent.custom("resync")[0]) + 1
    assert msgs[after] == {"type": "sources", "mid": answer["mid"], "results": STORED_SOURCES}


def test_a_withdrawn_answer_keeps_no_sources(sim, sent: Sent) -> None:
    sim.push(Answer(text="不该显示的内容^[1]^", flag=4, search_results=SOURCES, chunk_size=2))
    chat = ErnieChat(web_search=True)
    answer = chat.ask("q").wait(5)
    assert answer["withdrawn"] is True and "search_results" not in answer
    assert "Sources" not in chat.to_markdown()


def test_web_search_on_a_surface_without_search_says_so_in_the_answer(ernie_simulator, monkeypatch, sent: Sent) -> None:
    for key, value in ernie_simulator.env("openai").items():
        monkeypatch.setenv(key, value)
    answer = ErnieChat(web_search=True).ask("q").wait(10)
    assert answer["status"] == "error" and "web search" in answer["error"]
    assert ernie_simulator.chat_requests == []  # refused before anything was sent
