"""The conversation registry: what is sent back to the model, sharing between the widget and the
magics, and persistence across a kernel restart."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import comm.base_comm
import pytest

import ernie_widget
from ernie_widget import ErnieChat
from ernie_widget import conversations as threads
from ernie_widget.conversations import Conversation, ThreadBusyError, get_thread
from ernie_widget.testing import Answer

KEY = "bce-v3/ALTAK-testkey123/secretpart456"
ROOT = Path(ernie_widget.__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_registry", {})
    monkeypatch.setattr(threads, "_stores", {})


@pytest.fixture
def quiet_comm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm.base_comm.BaseComm, "send", lambda self, *a, **k: None)


@pytest.fixture
def sim(ernie_simulator, monkeypatch: pytest.MonkeyPatch):
    for key, value in ernie_simulator.env("qianfan", api_key=KEY).items():
        monkeypatch.setenv(key, value)
    return ernie_simulator


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch):
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "ernie_widget")
    return shell


def user(text: str, **kw: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, **kw}


def bot(text: str, **kw: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, **kw}


# -- what goes back to the model -----------------------------------------------------------------


def test_history_leaves_out_failed_withdrawn_and_excluded_turns() -> None:
    conv = Conversation()
    for m in (user("q1"), bot("a1", reasoning="thoughts"), user("q2"), bot("", status="error"),
              user("q3"), bot("bad", withdrawn=True), user("q4", excluded=True), bot("a4", excluded=True),
              user("q5")):
        conv.append(m)
    assert conv.history() == [user("q1"), bot("a1"), user("q5")]


def test_history_keeps_only_the_newer_of_two_unanswered_questions() -> None:
    conv = Conversation()
    for m in (user("lost"), user("asked again")):
        conv.append(m)
    assert conv.history() == [user("asked again")]


def test_history_limits_exchanges_and_starts_with_a_question() -> None:
    conv = Conversation()
    for i in range(5):
        conv.append(user(f"q{i}"))
        conv.append(bot(f"a{i}"))
    conv.append(user("now"))
    assert conv.history(max_exchanges=2) == [user("q3"), bot("a3"), user("q4"), bot("a4"), user("now")]
    assert conv.history(max_exchanges=0) == [user("now")]


def test_history_sends_images_as_content_parts() -> None:
    conv = Conversation()
    conv.append(user("what is this?", images=["data:image/png;base64,AAAA"]))
    assert conv.history() == [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]


def test_one_turn_at_a_time() -> None:
    conv = get_thread("t")
    conv.begin_or_raise()
    with pytest.raises(ThreadBusyError, match="“t”"):
        conv.begin_or_raise()
    conv.end_turn()
    conv.begin_or_raise()
    conv.end_turn()


def test_named_threads_are_shared_and_private_ones_are_not() -> None:
    assert get_thread("x") is get_thread("x")
    assert get_thread(None) is not get_thread(None)
    assert threads.thread_names() == ["x"]


def test_listeners_see_every_change_and_a_broken_one_is_ignored() -> None:
    conv = Conversation("n")
    seen: list[int] = []
    conv.subscribe(lambda c: seen.append(len(c)))

    def broken(c: Conversation) -> None:
        raise RuntimeError("a broken view")

    conv.subscribe(broken)
    conv.append(user("q"))
    conv.append(bot("a"))
    conv.delete_turn(1)
    assert seen == [1, 2, 0]


# -- widget and magic share a thread -------------------------------------------------------------


def test_widget_and_magic_continue_each_other(sim, ip, quiet_comm) -> None:
    sim.push(Answer(text="我记住了：42"), Answer(text="是 42"), Answer(text="对"))
    chat = ErnieChat(thread="t")
    chat.ask("记住数字 42").wait(5)
    ip.run_cell_magic("ernie", "--thread t", "刚才的数字是多少？")
    sent = [(m["role"], m["content"]) for m in sim.chat_requests[-1].messages]
    assert sent == [("user", "记住数字 42"), ("assistant", "我记住了：42"), ("user", "刚才的数字是多少？")]
    # the widget shows the magic's turn, and its next request carries it
    assert [m["content"] for m in chat.messages] == ["记住数字 42", "我记住了：42", "刚才的数字是多少？", "是 42"]
    chat.ask("确定吗").wait(5)
    assert [m["content"] for m in sim.chat_requests[-1].messages][-3:] == ["刚才的数字是多少？", "是 42", "确定吗"]


def test_magic_refuses_while_the_widget_streams_on_the_same_thread(sim, ip, quiet_comm) -> None:
    from IPython.core.error import UsageError

    sim.push(Answer(text="慢" * 20, chunk_size=1, delay=0.02))
    chat = ErnieChat(thread="busy")
    handle = chat.ask("first")
    with pytest.raises(UsageError, match="already streaming"):
        ip.run_cell_magic("ernie", "--thread busy", "second")
    handle.wait(5)
    assert len(sim.chat_requests) == 1


# -- persistence ---------------------------------------------------------------------------------


def test_store_survives_a_restart(sim, tmp_path: Path, quiet_comm) -> None:
    db = tmp_path / "chat.sqlite"
    script = textwrap.dedent(f"""
        import comm.base_comm
        comm.base_comm.BaseComm.send = lambda self, *a, **k: None
        from ernie_widget import ErnieChat
        chat = ErnieChat(thread="notes", store={str(db)!r}, backend=lambda h: "记住了：" + h[-1]["content"])
        print(chat.ask("我叫李雷").wait(10)["status"])
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert db.is_file()

    chat = ErnieChat(thread="notes", store=db)  # this process never saw "notes": a fresh registry
    assert [m["content"] for m in chat.messages] == ["我叫李雷", "记住了：我叫李雷"]
    chat.ask("我叫什么？").wait(5)
    assert [m["content"] for m in sim.chat_requests[-1].messages] == ["我叫李雷", "记住了：我叫李雷", "我叫什么？"]

    threads._registry.clear()  # a second restart: now three messages more are stored
    assert len(get_thread("notes", store=db).messages) == 4


def test_attaching_a_store_later_keeps_the_live_conversation(tmp_path: Path) -> None:
    db = tmp_path / "late.sqlite"
    conv = get_thread("late")
    conv.append(user("q"))
    assert get_thread("late", store=db) is conv
    conv.append(bot("a"))
    threads._registry.clear()
    assert get_thread("late", store=db).messages == [user("q"), bot("a")]


def test_store_without_thread_name_uses_the_default_thread(tmp_path: Path, quiet_comm) -> None:
    chat = ErnieChat(backend=lambda h: "ok", store=tmp_path / "d.sqlite")
    assert chat.thread == threads.DEFAULT_THREAD


def test_attaching_the_store_after_a_restart_keeps_the_saved_transcript(sim, ip, tmp_path: Path, quiet_comm) -> None:
    """`%%ernie --thread t` in a restarted kernel, then the sidebar attaches t's store: nothing saved is lost."""
    db = tmp_path / "sidebar.sqlite"
    before = get_thread("t", store=db)  # the kernel before the restart, persisting its turns
    before.append(user("我叫李雷"))
    before.append(bot("你好，李雷"))

    threads._registry.clear()  # the restart: the store is on disk, the registry is empty
    sim.push(Answer(text="这是新内核里的第一个回答"))
    ip.run_cell_magic("ernie", "--thread t", "新内核里的问题")
    # the magic did not know the store yet, so the model saw only this kernel's question
    assert [m["content"] for m in sim.chat_requests[-1].messages] == ["新内核里的问题"]

    chat = ErnieChat(thread="t", store=db)  # what the sidebar does
    expected = ["我叫李雷", "你好，李雷", "新内核里的问题", "这是新内核里的第一个回答"]
    assert [m["content"] for m in chat.messages] == expected
    threads._registry.clear()  # a second restart reads the merged transcript from the file
    assert [m["content"] for m in get_thread("t", store=db).messages] == expected


def test_attaching_a_store_does_not_double_what_it_already_holds(tmp_path: Path) -> None:
    db = tmp_path / "same.sqlite"
    saved = get_thread("s", store=db)
    saved.append(user("q"))
    saved.append(bot("a"))
    threads._registry.clear()
    memory = get_thread("s")
    for m in (user("q"), bot("a"), user("more")):  # this kernel already holds the saved turns, and one after
        memory.append(m)
    assert get_thread("s", store=db).messages == [user("q"), bot("a"), user("more")]
    threads._registry.clear()
    memory = get_thread("s")
    memory.append(user("q"))  # a prefix of what is saved: the store already has it
    assert get_thread("s", store=db).messages == [user("q"), bot("a"), user("more")]
