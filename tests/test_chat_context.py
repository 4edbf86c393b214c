"""ErnieChat's @-mentions, kernel side: the view's requests answered from a real IPython namespace, chips sent with
the question exactly as previewed, stored with it, the budget, context="auto", and the "Fix last error" offer.

The cross-thread path (a comm handler on a subshell thread while a cell runs) is tests/test_main_thread.py's; the
browser side is in tests/e2e.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from ernie_widget import ErnieChat
from ernie_widget.testing import Answer

from .kernel_side import Sent, point_at

KEY = "bce-v3/ALTAK-ctxtest/ctxsecret123"


@pytest.fixture
def sim(ernie_simulator, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    point_at(ernie_simulator, monkeypatch, KEY)
    return ernie_simulator


@pytest.fixture
def chat(sim, ip, sent: Sent) -> Iterator[ErnieChat]:  # type: ignore[no-untyped-def]
    ip.user_ns["sales"] = pd.DataFrame({"region": ["华东", "华北", "华南"], "revenue": [12.5, 8.0, 9.75]})
    ip.user_ns["_private"] = 1
    w = ErnieChat()
    yield w
    w.close()
    for name in ("sales", "_private", "token"):
        ip.user_ns.pop(name, None)


def view(w: ErnieChat, content: dict[str, Any]) -> None:
    w._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def answered(sent: Sent, kind: str, rid: int) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [m for m in sent.custom(kind) if m.get("rid") == rid]
        if found:
            return found[-1]
        time.sleep(0.01)
    raise AssertionError(f"no {kind} answer for rid {rid}")


def finish(w: ErnieChat) -> None:
    deadline = time.monotonic() + 10
    while w.status != "idle" and time.monotonic() < deadline:
        time.sleep(0.01)


def test_the_variable_list_comes_from_the_namespace(chat: ErnieChat, sent: Sent) -> None:
    view(chat, {"type": "variables", "rid": 1, "prefix": "sa"})
    msg = answered(sent, "variables", 1)
    assert msg["status"] == "ok"
    assert {"name": "sales", "kind": "DataFrame", "size": "3 × 2"} in msg["items"]
    assert all(not e["name"].startswith("_") for e in msg["items"])
    assert "variables" not in chat.get_state()  # on demand, never widget state


def test_a_chip_is_a_snapshot_sent_exactly_and_stored(chat: ErnieChat, sent: Sent, sim, ip) -> None:  # type: ignore[no-untyped-def]
    view(chat, {"type": "mention", "rid": 2, "name": "sales"})
    msg = answered(sent, "mention", 2)
    assert msg["status"] == "ok" and msg["item"]["label"].startswith("DataFrame")
    preview = msg["item"]["text"]
    assert "region" in preview and "revenue" in preview
    ip.user_ns["sales"] = pd.DataFrame({"changed": [1]})  # the chip keeps what the preview showed
    sim.push(Answer(text="华东最高。"))
    view(chat, {"type": "ask", "text": "哪个区域收入最高？", "mentions": [msg["cid"]]})
    finish(chat)
    sent_text = sim.chat_requests[-1].json["messages"][-1]["content"]
    assert sent_text.startswith("哪个区域收入最高？") and preview in sent_text and "changed" not in sent_text
    user = [m for m in chat.messages if m["role"] == "user"][-1]
    assert user["content"] == "哪个区域收入最高？" and user["context"][0]["text"] == preview
    assert "@sales" in chat.to_markdown() or "sales" in chat.to_markdown()
    # a retry sends the same context again (it lives in the stored message)
    sim.push(Answer(text="再答一次。"))
    chat.retry().wait(10)
    assert preview in sim.chat_requests[-1].json["messages"][-1]["content"]


def test_a_removed_chip_is_not_sent_and_python_can_mention_by_name(chat: ErnieChat, sent: Sent, sim) -> None:  # type: ignore[no-untyped-def]
    view(chat, {"type": "mention", "rid": 3, "name": "sales"})
    cid = answered(sent, "mention", 3)["cid"]
    view(chat, {"type": "unmention", "cid": cid})
    sim.push(Answer(text="ok"))
    view(chat, {"type": "ask", "text": "hi", "mentions": [cid]})
    finish(chat)
    assert sim.chat_requests[-1].json["messages"][-1]["content"] == "hi"
    sim.push(Answer(text="ok"))
    chat.ask("总收入？", mentions=["sales"]).wait(10)
    assert "revenue" in sim.chat_requests[-1].json["messages"][-1]["content"]


def test_a_key_bearing_variable_is_refused(chat: ErnieChat, sent: Sent, ip) -> None:  # type: ignore[no-untyped-def]
    ip.user_ns["token"] = {"api": "bce-v3/ALTAK-canary0001/canarysecret999"}
    view(chat, {"type": "mention", "rid": 4, "name": "token"})
    msg = answered(sent, "mention", 4)
    assert msg["status"] == "error" and "canarysecret999" not in str(msg)
    assert "cid" not in msg
    # the check can fail: the same channel carries the canary when a message holds it
    chat._emit({"type": "notice", "text": ip.user_ns["token"]["api"]})
    assert "canarysecret999" in str(sent.custom("notice")[-1])


def test_the_budget_shortens_the_largest_first(chat: ErnieChat, sent: Sent, sim, ip) -> None:  # type: ignore[no-untyped-def]
    ip.user_ns["notes"] = "笔记内容 " * 3000
    chat.context_budget = 300
    sim.push(Answer(text="ok"))
    chat.ask("总结", mentions=["notes", "sales"]).wait(10)
    items = [m for m in chat.messages if m["role"] == "user"][-1]["context"]
    by_name = {i["name"]: i for i in items}
    assert by_name["notes"].get("shortened") and sum(i["tokens"] for i in items) <= 300
    assert not by_name["sales"].get("shortened")
    ip.user_ns.pop("notes", None)


def test_auto_context_lists_variables_in_the_system_prompt(chat: ErnieChat, sim) -> None:  # type: ignore[no-untyped-def]
    sim.push(Answer(text="ok"), Answer(text="ok"))
    chat.ask("hi").wait(10)
    assert sim.chat_requests[-1].json["messages"][0]["role"] != "system"  # off by default
    chat.context = "auto"
    chat.ask("hi again").wait(10)
    system = sim.chat_requests[-1].json["messages"][0]
    assert system["role"] == "system" and "sales: DataFrame 3 × 2" in system["content"]
    assert "_private" not in system["content"]


def test_a_failed_cell_offers_fix_last_error(chat: ErnieChat, sent: Sent, ip) -> None:  # type: ignore[no-untyped-def]
    ip.run_cell("1 / 0")
    assert sent.custom("last_error")[-1]["summary"].startswith("ZeroDivisionError")
    ip.run_cell("[][1]")
    view(chat, {"type": "hello"})  # a view opened after the error still offers the fix
    assert sent.custom("last_error")[-1]["summary"].startswith("IndexError")
    ip.run_cell("x_ok = 1")
    assert sent.custom("last_error")[-1]["summary"] is None
    before = len(sent.custom("last_error"))
    view(chat, {"type": "hello"})
    assert len(sent.custom("last_error")) == before  # nothing to offer


def test_a_busy_main_thread_answers_busy_at_once(chat: ErnieChat, sent: Sent) -> None:
    # a comm handler on another thread while the main thread cannot serve it (no kernel loop in this process)
    t0 = time.monotonic()
    worker = threading.Thread(target=view, args=(chat, {"type": "variables", "rid": 9, "prefix": ""}))
    worker.start()
    worker.join(5)
    msg = answered(sent, "variables", 9)
    assert msg["status"] == "busy" and msg["items"] == [] and time.monotonic() - t0 < 1


def test_the_transcript_shows_the_context_as_text(chat: ErnieChat, sim, ip) -> None:  # type: ignore[no-untyped-def]
    ip.user_ns["evil"] = "</details><script>alert(1)</script><img src=x onerror=alert(2)> ~~~ ```"
    sim.push(Answer(text="ok"))
    chat.ask("看看", mentions=["evil"]).wait(10)
    html = chat.transcript()._repr_mimebundle_()["text/html"]
    assert "上下文 / Context" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html and "<img" not in html
    ip.user_ns.pop("evil", None)


def test_a_deleted_turn_can_be_undone_until_the_chat_changes(chat: ErnieChat, sent: Sent, sim) -> None:  # type: ignore[no-untyped-def]
    sim.push(Answer(text="一"), Answer(text="二"), Answer(text="三"))
    chat.ask("q1").wait(10)
    chat.ask("q2").wait(10)
    before = [m["content"] for m in chat.messages]
    view(chat, {"type": "delete", "index": 1})  # the first answer: its whole turn goes
    assert sent.custom("deleted")[-1] == {"type": "deleted", "index": 0, "count": 2}
    assert [m["content"] for m in chat.messages] == ["q2", "二"]
    view(chat, {"type": "undo_delete"})
    assert [m["content"] for m in chat.messages] == before
    # an undo after the conversation changed would put the turn in the wrong place: refused, said so
    view(chat, {"type": "delete", "index": 0})
    chat.ask("q3").wait(10)
    view(chat, {"type": "undo_delete"})
    assert [m["content"] for m in chat.messages] == ["q2", "二", "q3", "三"]
    assert "cannot undo" in sent.custom("notice")[-1]["text"]
