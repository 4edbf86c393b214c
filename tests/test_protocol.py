"""The widget's wire protocol has one description (ernie_widget/protocol.py) that both sides follow.

The TypeScript types are generated from it, and every message the kernel really sends, and every answer the
widget and the magics store, has the shape it declares.
"""

from __future__ import annotations

import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NotRequired, get_origin

import pytest

from ernie_widget import ErnieChat, protocol
from ernie_widget import conversations as threads
from ernie_widget.testing import Answer, Fault

from .kernel_side import Sent, capture_comm, magics_shell

ROOT = Path(__file__).resolve().parents[1]


def keys(cls: Any) -> tuple[set[str], set[str]]:
    """(required, all) keys of a protocol TypedDict."""
    hints = typing.get_type_hints(cls, vars(protocol), include_extras=True)
    optional = {k for k, h in hints.items() if get_origin(h) is NotRequired} | set(cls.__optional_keys__)
    return set(hints) - optional, set(hints)


def conforms(msg: dict[str, Any], classes: tuple[type, ...]) -> bool:
    for cls in classes:
        required, allowed = keys(cls)
        tag = typing.get_type_hints(cls, vars(protocol))["type"].__args__[0]
        if msg.get("type") == tag:
            return required <= set(msg) <= allowed
    return False


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    return capture_comm(monkeypatch)


@pytest.fixture
def sim(ernie_simulator, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(threads, "_registry", {})
    for key, value in ernie_simulator.env("qianfan").items():
        monkeypatch.setenv(key, value)
    return ernie_simulator


def test_the_generated_typescript_is_up_to_date() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protocol.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_every_message_the_widget_sends_is_a_declared_kernel_message(sim, sent: Sent) -> None:
    chat = ErnieChat()
    sim.push(Answer(text="一二三四五六", reasoning="想一想", chunk_size=2, delay=0.01))
    chat.ask("hi").wait(10)
    sim.push(Fault.status(400))
    chat.ask("again").wait(10)
    for content in ({"type": "bogus"}, {"type": "hello"}, {"type": "delete", "index": "x"}):
        chat._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})
    messages = sent.custom()
    assert {m["type"] for m in messages} >= {"start", "delta", "done", "notice"}
    bad = [m for m in messages if not conforms(m, protocol.KERNEL_MESSAGES)]
    assert bad == []


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from magics_shell(monkeypatch)


def test_stored_answers_of_the_widget_and_the_magics_have_one_shape(sim, ip, sent: Sent) -> None:
    chat = ErnieChat(thread="shared")
    answer = chat.ask("from the widget").wait(10)
    ip.run_cell_magic("ernie", "--thread shared", "from the magic")
    widget_answer, magic_answer = [m for m in threads.get_thread("shared").messages if m["role"] == "assistant"]
    assert widget_answer is answer or widget_answer == answer
    _, allowed = keys(protocol.StoredMessage)
    for stored in (widget_answer, magic_answer):
        assert set(stored) <= allowed, set(stored) - allowed
        assert stored["model"] and stored["status"] == "ok" and stored["metrics"]["duration_ms"] >= 0
    # the magic's answer now says which model wrote it, as the widget's always did
    assert magic_answer["model"] == widget_answer["model"]


SEARCH = [{"index": 1, "url": "https://yiyan.baidu.com/blog/ernie", "title": "ERNIE 4.5", "datasource_id": "a"}]


def test_web_sources_keep_index_url_and_title_of_usable_entries_one_per_index() -> None:
    long_url = "https://example.com/" + "x" * 3000
    raw = [None, "text", {"index": True, "title": "bool"}, {"index": 0, "title": "zero"}, {"index": 1000, "title": "big"},
           {"index": 2.5, "title": "float"}, {"index": 3}, {"index": "4", "url": " https://four.example/ ", "title": 7},
           {"index": 5, "url": long_url, "title": "t" * 500}, {"index": 2, "url": "https://first.example/", "title": "a"},
           {"index": 2, "url": "https://later.example/", "title": " b\n\tc "}]
    assert protocol.web_sources(raw) == [
        {"index": 2, "url": "https://later.example/", "title": "b c"},
        {"index": 4, "url": "https://four.example/", "title": ""},
        {"index": 5, "url": "", "title": "t" * 199 + "…"},
    ]
    assert [s["index"] for s in protocol.web_sources({"index": i, "title": "x"} for i in range(80, 0, -1))] \
        == list(range(1, protocol.MAX_SOURCES + 1))
    assert protocol.web_sources(None) == protocol.web_sources(()) == []


def test_sources_messages_conform_and_both_sides_store_the_same_sources(sim, ip, sent: Sent) -> None:
    sim.push(Answer(text="答^[1]^", search_results=SEARCH), Answer(text="答^[1]^", search_results=SEARCH))
    chat = ErnieChat(thread="searched", web_search=True)
    chat.ask("from the widget").wait(10)
    ip.run_cell_magic("ernie", "--thread searched --search", "from the magic")
    assert sent.custom("sources") and all(conforms(m, protocol.KERNEL_MESSAGES) for m in sent.custom())
    answers = [m for m in threads.get_thread("searched").messages if m["role"] == "assistant"]
    expected = [{"index": 1, "url": "https://yiyan.baidu.com/blog/ernie", "title": "ERNIE 4.5"}]
    assert [a["search_results"] for a in answers] == [expected, expected]
