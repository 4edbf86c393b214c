"""ErnieChat's agent mode, kernel side: the tool loop against the ERNIE simulator, in a real IPython shell.

The simulator scripts the model's tool calls; the tools run on pytest's main thread, which serves them while it
waits for the answer (``AskHandle.wait``, as a cell would). Approvals come from another thread (Python's
``chat.approve()``, or a view's ``approve`` message as the comm would deliver it), the way a view's click arrives
on a comm handler while the main thread is busy.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest

from ernie_widget import ErnieChat
from ernie_widget import conversations as threads
from ernie_widget.agent import turn as agent_turn
from ernie_widget.agent.approvals import sha256_of
from ernie_widget.client.errors import ErnieError
from ernie_widget.client.redact import redact
from ernie_widget.client.tool_runner import DENIED
from ernie_widget.testing import Answer

from .kernel_side import Sent, point_at

KEY = "bce-v3/ALTAK-agenttest/agentsecret123"
CANARY = "bce-v3/ALTAK-canary7777/canarysecretzz9"


@pytest.fixture
def sim(ernie_simulator, monkeypatch: pytest.MonkeyPatch):
    point_at(ernie_simulator, monkeypatch, KEY)
    ernie_simulator.clear()
    return ernie_simulator


@pytest.fixture
def make(sim, ip, sent: Sent) -> Iterator[Callable[..., ErnieChat]]:
    ip.user_ns["df"] = pd.DataFrame({"region": ["华东", "华北", "华南"], "revenue": [12.5, 8.0, 9.75]})
    made: list[ErnieChat] = []

    def factory(**kw: Any) -> ErnieChat:
        kw.setdefault("agent", True)
        w = ErnieChat(**kw)
        made.append(w)
        return w

    yield factory
    for w in made:
        w.close()
    for name in ("df", "made_by_agent", "side_effect", "a", "b"):
        ip.user_ns.pop(name, None)


def steps(sent: Sent, status: str | None = None) -> list[dict[str, Any]]:
    return [m for m in sent.custom("tool_step") if status is None or m["status"] == status]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError("timed out waiting")


def view(w: ErnieChat, content: dict[str, Any]) -> None:
    """A custom message from a view, as the comm delivers it."""
    w._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def in_thread(*actions: Callable[[dict[str, Any]], None], sent: Sent) -> list[BaseException]:
    """Another thread: for each action, wait for the next step that waits for approval, then act on it."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for n, action in enumerate(actions, 1):
                def nth(n: int = n) -> dict[str, Any] | None:
                    found = steps(sent, "waiting")
                    return found[n - 1] if len(found) >= n else None

                step = wait_for(nth)
                time.sleep(0.1)  # the main thread is in the answer's wait by now (it serves the tool's job)
                action(step)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threading.Thread(target=run, daemon=True).start()
    return errors


def last_messages(sim) -> list[dict[str, Any]]:
    return sim.chat_requests[-1].json["messages"]


def test_run_python_waits_for_approval_runs_on_the_main_thread_and_the_model_reads_it(
        make, sim, sent: Sent, ip) -> None:
    chat = make()
    assert chat.agent and not chat.auto_approve
    sim.push(Answer(text="我看一下。", tool_calls=[{"name": "run_python", "arguments": {
                 "code": "import threading\nmade_by_agent = threading.current_thread().name\ndf.shape"}}]),
             Answer(text="df 有 3 行 2 列。"))
    handle = chat.ask("df 多大？")
    waiting = wait_for(lambda: steps(sent, "waiting"))[0]
    time.sleep(0.3)
    assert "made_by_agent" not in ip.user_ns and len(sim.chat_requests) == 1  # nothing ran before the approval
    assert waiting["name"] == "run_python" and waiting["sha256"] == sha256_of(waiting["code_or_arguments"])
    assert waiting["code_or_arguments"].endswith("df.shape") and not waiting["read_only"]
    tools_sent = [t["function"]["name"] for t in sim.chat_requests[0].json["tools"]]
    assert tools_sent == ["run_python", "list_variables", "describe", "insert_cell"]
    errors = in_thread(lambda step: chat.approve(), sent=sent)
    answer = handle.wait(15)
    assert not errors
    assert answer["status"] == "ok" and answer["content"] == "df 有 3 行 2 列。"  # only the last round's text
    assert ip.user_ns.get("made_by_agent") == "MainThread", last_messages(sim)  # the user namespace, main thread
    tool_msg = last_messages(sim)[-1]
    assert tool_msg["role"] == "tool" and tool_msg["content"] == "Out: (3, 2)"
    assert [s["status"] for s in steps(sent)] == ["waiting", "running", "done"]
    # stored: question, the round (assistant tool_calls + tool), the answer; the next turn sends a valid history
    roles = [(m["role"], bool(m.get("tool_calls"))) for m in chat.messages]
    assert roles == [("user", False), ("assistant", True), ("tool", False), ("assistant", False)]
    assert chat.messages[1]["content"] == "我看一下。" and chat.messages[2]["step_status"] == "done"
    assert chat.messages[2]["sha256"] == waiting["sha256"]
    sim.push(Answer(text="好的。"))
    chat.ask("谢谢").wait(10)
    history = last_messages(sim)
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant", "user"]
    assert history[1]["tool_calls"][0]["id"] == history[2]["tool_call_id"]
    markdown = chat.to_markdown()
    assert "run\\_python" in markdown and "Out: (3, 2)" in markdown and "df.shape" in markdown


def test_parallel_calls_each_approved_and_read_only_tools_run_without_asking(make, sim, sent: Sent, ip) -> None:
    chat = make()
    sim.push(Answer(tool_calls=[{"name": "list_variables", "arguments": {}},
                                {"name": "describe", "arguments": {"name": "df"}},
                                {"name": "run_python", "arguments": {"code": "a = 1"}},
                                {"name": "run_python", "arguments": {"code": "b = 2"}}]),
             Answer(text="完成。"))
    errors = in_thread(lambda s: chat.approve(s["call_id"]), lambda s: chat.approve(s["call_id"]), sent=sent)
    answer = chat.ask("准备数据").wait(15)
    assert not errors and answer["content"] == "完成。"
    assert ip.user_ns["a"] == 1 and ip.user_ns["b"] == 2
    results = [m for m in last_messages(sim) if m["role"] == "tool"]
    assert len(results) == 4
    assert "df: DataFrame 3 × 2" in results[0]["content"]
    assert "region" in results[1]["content"] and "revenue" in results[1]["content"]
    read_only = [s for s in steps(sent) if s["read_only"]]
    assert {s["status"] for s in read_only} == {"running", "done"}  # never "waiting"
    assert len(steps(sent, "waiting")) == 2


def test_a_tool_that_raises_becomes_an_error_result(make, sim, sent: Sent) -> None:
    chat = make(agent=False, auto_approve=True)

    @chat.tool
    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        return a / b

    sim.push(Answer(tool_calls=[{"name": "divide", "arguments": {"a": 1, "b": 0}},
                                {"name": "run_python", "arguments": {"code": "1"}}]),
             Answer(text="不能除以零。"))
    answer = chat.ask("1/0?").wait(15)
    assert answer["content"] == "不能除以零。"
    tools_sent = [t["function"]["name"] for t in sim.chat_requests[0].json["tools"]]
    assert tools_sent == ["divide"]  # agent=False: user tools only
    results = [m for m in last_messages(sim) if m["role"] == "tool"]
    assert "ZeroDivisionError" in results[0]["content"] and "does not exist" in results[1]["content"]
    assert [s["status"] for s in steps(sent) if s["status"] != "running"] == ["failed", "failed"]


def test_run_python_that_fails_is_a_failed_step_with_its_traceback(make, sim, sent: Sent) -> None:
    chat = make(auto_approve=True)
    sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "undefined_name + 1"}}]),
             Answer(text="变量不存在。"))
    chat.ask("试试").wait(15)
    assert "NameError" in last_messages(sim)[-1]["content"]
    assert steps(sent)[-1]["status"] == "failed"


def test_a_denied_call_reaches_the_model_as_a_denial(make, sim, sent: Sent, ip) -> None:
    chat = make()
    sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "side_effect = 1"}}]),
             Answer(text="好的，不运行。"))
    errors = in_thread(lambda s: chat.deny(), sent=sent)
    answer = chat.ask("删除文件").wait(15)
    assert not errors and answer["content"] == "好的，不运行。"
    assert "side_effect" not in ip.user_ns
    assert last_messages(sim)[-1]["content"] == DENIED
    assert steps(sent)[-1]["status"] == "skipped" and chat.messages[2]["step_status"] == "skipped"


def test_a_view_skip_and_edit(make, sim, sent: Sent, ip) -> None:
    chat = make()
    sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "side_effect = 'model'"}}]),
             Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "side_effect = 'again'"}}]),
             Answer(text="ok"))
    edited = "side_effect = 'edited by the user'"
    errors = in_thread(
        lambda s: view(chat, {"type": "approve", "call_id": s["call_id"], "sha256": s["sha256"], "decision": "edit",
                              "code": edited}),
        lambda s: view(chat, {"type": "approve", "call_id": s["call_id"], "sha256": s["sha256"], "decision": "skip"}),
        sent=sent)
    chat.ask("改一下").wait(15)
    assert not errors and ip.user_ns["side_effect"] == "edited by the user"
    ran = [s for s in steps(sent) if s.get("edited")]
    assert ran[-1]["status"] == "done" and ran[-1]["code_or_arguments"] == edited, steps(sent)
    assert ran[-1]["sha256"] == sha256_of(edited)  # the hash of what ran
    tool_msgs = [m for m in chat.messages if m["role"] == "tool"]
    assert tool_msgs[0]["edited"] and tool_msgs[0]["sha256"] == sha256_of(edited)
    assert edited in tool_msgs[0]["content"]  # the model is told what ran instead
    assert tool_msgs[1]["step_status"] == "skipped"


def test_max_tool_rounds_reached(make, sim, sent: Sent) -> None:
    chat = make(auto_approve=True, max_tool_rounds=2)
    call = {"name": "list_variables", "arguments": {}}
    sim.push(Answer(tool_calls=[call]), Answer(tool_calls=[call]), Answer(text="还想看", tool_calls=[call]))
    answer = chat.ask("循环").wait(15)
    assert len(sim.chat_requests) == 3 and answer["content"] == "还想看", [
        [m["role"] for m in r.json["messages"]] for r in sim.chat_requests]
    assert "max_tool_rounds=2" in answer["notice"]
    assert len(steps(sent, "done")) == 2
    # the unrun calls are not stored: the history stays valid
    sim.push(Answer(text="ok"))
    chat.ask("继续").wait(10)
    history = last_messages(sim)
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant", "tool", "assistant", "user"]
    assert "tool_calls" not in history[-2]


def test_a_stale_or_altered_approval_runs_nothing(make, sim, sent: Sent, ip) -> None:
    chat = make()
    sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "side_effect = 'ran'"}}]),
             Answer(text="ok"))
    refused: list[str] = []

    def wrong_then_right(step: dict[str, Any]) -> None:
        altered = sha256_of("side_effect = 'something else'")
        view(chat, {"type": "approve", "call_id": step["call_id"], "sha256": altered, "decision": "run"})
        view(chat, {"type": "approve", "call_id": "call_stale", "sha256": step["sha256"], "decision": "run"})
        view(chat, {"type": "approve", "call_id": step["call_id"], "decision": "run"})  # no hash
        with pytest.raises(ErnieError, match="sha256"):
            chat._require_tools().decide(None, "run", sha256=altered)
        time.sleep(0.5)
        refused.extend(n["text"] for n in sent.custom("notice"))
        assert "side_effect" not in ip.user_ns and steps(sent)[-1]["status"] == "waiting"
        view(chat, {"type": "approve", "call_id": step["call_id"], "sha256": step["sha256"], "decision": "run"})

    errors = in_thread(wrong_then_right, sent=sent)
    chat.ask("运行").wait(15)
    assert not errors, errors
    assert len(refused) == 3 and all("nothing was run" in t for t in refused)
    assert ip.user_ns["side_effect"] == "ran"
    with pytest.raises(ErnieError, match="no tool call is waiting"):
        chat.approve()  # stale: nothing waits any more


def test_a_front_end_write_of_auto_approve_runs_nothing(make, sim, sent: Sent, ip) -> None:
    chat = make()
    # as the front end (or page script) would: a comm `update` message, then set_state directly
    chat._handle_msg({"content": {"data": {"method": "update", "state": {"auto_approve": True, "agent": False}}},
                      "buffers": []})
    chat.set_state({"auto_approve": True})
    assert chat.auto_approve is False and chat.agent is True
    assert sent.updates("auto_approve")[-1]["auto_approve"] is False  # the views are told the real value
    chat.set_state({"send_mode": "ctrl-enter"})  # other traits still work
    assert chat.send_mode == "ctrl-enter"
    sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "side_effect = 1"}}]), Answer(text="x"))
    handle = chat.ask("go")
    wait_for(lambda: steps(sent, "waiting"))
    time.sleep(0.5)
    assert "side_effect" not in ip.user_ns and not handle.done()  # still waiting for a real approval
    chat.stop()
    assert handle.wait(10)["status"] == "stopped" and "side_effect" not in ip.user_ns
    assert steps(sent)[-1]["status"] == "skipped"


def test_auto_approve_from_python_runs_without_asking(make, sim, sent: Sent, ip) -> None:
    chat = make()
    chat.auto_approve = True
    sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "side_effect = 42"}}]), Answer(text="42"))
    chat.ask("go").wait(15)
    assert ip.user_ns["side_effect"] == 42 and not steps(sent, "waiting")


def test_stop_while_a_tool_runs_ends_within_two_seconds(make, sim, sent: Sent, ip) -> None:
    chat = make(auto_approve=True)
    sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "import time\ntime.sleep(30)"}}]),
             Answer(text="never asked"))
    stopped_at: list[float] = []

    def stop_when_running() -> None:
        wait_for(lambda: steps(sent, "running"))
        time.sleep(0.5)
        stopped_at.append(time.monotonic())
        chat.stop()

    threading.Thread(target=stop_when_running, daemon=True).start()
    answer = chat.ask("睡一会").wait(15)
    assert stopped_at and time.monotonic() - stopped_at[0] < 2
    assert answer["status"] == "stopped" and len(sim.chat_requests) == 1
    assert steps(sent)[-1]["status"] == "failed"
    assert chat.status == "idle"
    # the stored round is a valid history, and the next turn works
    sim.clear()
    sim.push(Answer(text="好的"))
    assert chat.ask("还在吗").wait(10)["content"] == "好的"
    history = last_messages(sim)
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "user"]


def test_a_key_in_a_tool_result_is_redacted_before_the_model_reads_it(make, sim, sent: Sent,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    chat = make(agent=False, auto_approve=True)

    @chat.tool
    def read_config() -> dict[str, str]:
        """Read the configuration."""
        return {"endpoint": "https://example.com", "token": CANARY}

    def leaked() -> bool:
        seen = json.dumps([r.json for r in sim.chat_requests], ensure_ascii=False)
        return CANARY in seen or "canarysecretzz9" in seen

    # first prove the check catches a leak: without redaction the canary reaches the simulator
    monkeypatch.setattr(agent_turn, "redact", lambda text: text)
    sim.push(Answer(tool_calls=[{"name": "read_config", "arguments": {}}]), Answer(text="ok"))
    chat.ask("配置？").wait(15)
    assert leaked()
    monkeypatch.setattr(agent_turn, "redact", redact)
    sim.clear()
    chat.clear()
    sim.push(Answer(tool_calls=[{"name": "read_config", "arguments": {}}]), Answer(text="ok"))
    chat.ask("配置？").wait(15)
    assert not leaked() and "ALTAK-***" in json.dumps([r.json for r in sim.chat_requests], ensure_ascii=False)
    assert "canarysecretzz9" not in json.dumps(chat.messages) and "canarysecretzz9" not in str(steps(sent)[-1])


def test_the_offline_model_says_agent_mode_is_off(ip, sent: Sent, tmp_path) -> None:
    from ernie_widget.client import Ernie

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    try:
        client = Ernie("local", model=str(gguf))
    except ErnieError as exc:
        pytest.skip(f"the local provider is not available here: {exc}")
    chat = ErnieChat(client, model=str(gguf), agent=True)
    try:
        assert "cannot call tools" in chat.banner and not chat.agent
        with pytest.raises(ErnieError, match="cannot call tools"):
            chat.tool(lambda: 1)  # the offline model cannot call tools
    finally:
        chat.close()
    with pytest.raises(ErnieError, match="custom backend cannot call tools"):
        ErnieChat(backend=lambda history: "x", agent=True)


FIGURE = "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nfig = plt.figure()\nplt.plot([1, 3, 2]);"


def test_a_figure_goes_to_a_vision_model_as_an_image_part_after_the_tool_messages(make, sim, sent: Sent, ip) -> None:
    chat = make(model="ernie-4.5-turbo-vl", auto_approve=True)
    sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": FIGURE}},
                                {"name": "list_variables", "arguments": {}}]),
             Answer(text="一条折线。"))
    try:
        chat.ask("画图").wait(15)
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
        ip.user_ns.pop("fig", None)
        ip.user_ns.pop("plt", None)
        ip.user_ns.pop("matplotlib", None)
    sent_history = last_messages(sim)
    assert [m["role"] for m in sent_history] == ["user", "assistant", "tool", "tool", "user"]
    figures = sent_history[-1]["content"]
    assert figures[0]["type"] == "text" and figures[1]["image_url"]["url"].startswith("data:image/png;base64,")
    step = [s for s in steps(sent, "done") if s["name"] == "run_python"][-1]
    assert step["images"] and step["images"][0] == figures[1]["image_url"]["url"]
    stored = next(m for m in chat.messages if m["role"] == "tool")
    assert stored["images_sent"] and stored["images"] == step["images"]
    # the next turn sends the figure again, in the same place
    sim.push(Answer(text="ok"))
    chat.ask("再看").wait(10)
    assert [m["role"] for m in last_messages(sim)] == ["user", "assistant", "tool", "tool", "user", "assistant", "user"]


def test_a_model_without_vision_gets_no_image_part(make, sim, sent: Sent, ip) -> None:
    chat = make(auto_approve=True)  # ernie-4.5-turbo-32k by default: text only
    sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": FIGURE}}]), Answer(text="ok"))
    try:
        chat.ask("画图").wait(15)
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
        for name in ("fig", "plt", "matplotlib"):
            ip.user_ns.pop(name, None)
    assert [m["role"] for m in last_messages(sim)] == ["user", "assistant", "tool"]
    stored = next(m for m in chat.messages if m["role"] == "tool")
    assert stored["images"] and not stored.get("images_sent")  # kept for the step's view, not sent


def test_a_reconnecting_view_gets_the_steps_in_flight(make, sim, sent: Sent) -> None:
    chat = make()
    sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "1 + 1"}}]), Answer(text="2"))
    handle = chat.ask("1+1")
    waiting = wait_for(lambda: steps(sent, "waiting"))[0]
    before = len(steps(sent))
    view(chat, {"type": "hello"})
    resent = wait_for(lambda: steps(sent)[before:])
    assert resent[0] == waiting
    # approved on the main thread itself (a cell running chat.approve()): the tool waits until the main thread is
    # free to serve it — here, the answer's wait
    view(chat, {"type": "approve", "call_id": waiting["call_id"], "sha256": waiting["sha256"], "decision": "run"})
    time.sleep(0.3)
    assert handle.wait(15)["content"] == "2"
    assert steps(sent)[-1]["status"] == "done" and steps(sent)[-1]["result"] == "Out: 2", steps(sent)[-1]


def test_history_repairs_tool_rounds_and_delete_removes_a_whole_agent_exchange() -> None:
    conv = threads.Conversation()
    call = {"id": "c1", "type": "function", "function": {"name": "run_python", "arguments": "{}"}}
    other = {"id": "c2", "type": "function", "function": {"name": "describe", "arguments": "{}"}}
    for m in [{"role": "user", "content": "q1"},
              {"role": "assistant", "content": "", "tool_calls": [call, other], "mid": 1},
              {"role": "tool", "tool_call_id": "c1", "name": "run_python", "content": "Out: 1", "mid": 1},
              {"role": "assistant", "content": "a1", "mid": 1},
              {"role": "tool", "tool_call_id": "stray", "name": "x", "content": "lost"},
              {"role": "user", "content": "q2"},
              {"role": "assistant", "content": "a2", "mid": 2},
              {"role": "user", "content": "q3"}]:
        conv.append(m)
    history = conv.history()
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool", "assistant", "user", "assistant",
                                            "user"]
    assert history[3] == {"role": "tool", "tool_call_id": "c2", "name": "describe", "content": "未运行 / not run"}
    assert "stray" not in str(history)
    assert [m["content"] for m in conv.history(max_exchanges=1)] == ["q2", "a2", "q3"]
    conv.delete_turn(2)  # a tool message of the first exchange: the question, its rounds and its answer go
    assert [m["content"] for m in conv.messages] == ["lost", "q2", "a2", "q3"]
    conv.delete_turn(2)
    assert [m["content"] for m in conv.messages] == ["lost", "q3"]


def test_tool_output_is_text_in_the_transcript(make, sim, sent: Sent) -> None:
    chat = make(agent=False, auto_approve=True)

    @chat.tool
    def fetch_page() -> str:
        """Fetch a page."""
        return "</details><script>alert(1)</script><img src=x onerror=alert(2)> ~~~ ```"

    sim.push(Answer(tool_calls=[{"name": "fetch_page", "arguments": {}}]), Answer(text="done"))
    chat.ask("抓取").wait(15)
    assert "<script>" in steps(sent)[-1]["result"]  # the view gets the text as it is: it renders text, never HTML
    markdown = chat.to_markdown()
    assert "fetch" in markdown and "完成 / done" in markdown
    html = chat.transcript()._repr_mimebundle_()["text/html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html and "<img" not in html


# ----------------------------------------------------------------------------------------------------------------
# in a real ipykernel: a question and its approval arrive as a view's comm messages (on a thread of their own, as
# on a kernel subshell) while no cell runs, so the tools reach the main thread through the kernel's own loop

KERNEL_SETUP = r'''
import json, os, threading, time
import pandas as pd
from ernie_widget import ErnieChat
df = pd.DataFrame({"x": [1, 2, 3]})
chat = ErnieChat(agent=True)
steps = []
_send = chat.send
def _spy(content, buffers=None):
    if isinstance(content, dict) and content.get("type") == "tool_step":
        steps.append(content)
    return _send(content, buffers)
chat.send = _spy

def view(content):
    chat._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})

def until(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("waited too long")
        time.sleep(0.01)

def scenario(name, fn):
    def work():
        time.sleep(0.3)  # the cell that started this has ended
        try:
            item = fn()
        except BaseException as exc:
            item = {"raised": repr(exc), "status": chat.status, "steps": [x["status"] for x in steps],
                    "messages": [(m["role"], m.get("content", "")[:200]) for m in chat.messages]}
        with open(name + ".tmp", "w") as f:
            json.dump(item, f)
        os.replace(name + ".tmp", name)
    threading.Thread(target=work, name="view", daemon=True).start()

def approve_and_answer():
    view({"type": "ask", "text": "df 多大？"})
    until(lambda: any(s["status"] == "waiting" for s in steps))
    waiting = [s for s in steps if s["status"] == "waiting"][0]
    view({"type": "approve", "call_id": waiting["call_id"], "sha256": waiting["sha256"], "decision": "run"})
    until(lambda: chat.status == "idle" and len(chat.messages) >= 4)
    return {"made_by_agent": globals().get("made_by_agent"), "statuses": [s["status"] for s in steps],
            "answer": chat.messages[-1]["content"], "result": chat.messages[2]["content"]}

def stop_a_sleep():
    steps.clear()
    chat.auto_approve = True
    view({"type": "ask", "text": "睡一会"})
    until(lambda: any(s["status"] == "running" for s in steps))
    time.sleep(0.5)
    t0 = time.monotonic()
    view({"type": "stop"})
    until(lambda: chat.status == "idle")
    return {"seconds": time.monotonic() - t0, "status": chat.messages[-1]["status"],
            "statuses": [s["status"] for s in steps]}
'''


@pytest.fixture(scope="module")
def real_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Any]]:
    from ernie_widget.testing import ErnieSimulator
    from tests.test_kernel import Kernel

    workdir = tmp_path_factory.mktemp("agent-chat-kernel")
    with ErnieSimulator() as simulator:
        k = Kernel(simulator, workdir)
        try:
            reply, _ = k.run(KERNEL_SETUP)
            assert reply["content"]["status"] == "ok", reply["content"]
            yield k, simulator, workdir
        finally:
            k.close()


def _kernel_scenario(real_kernel: tuple[Any, Any, Any], name: str) -> dict[str, Any]:
    k, _sim, workdir = real_kernel
    reply, _ = k.run(f"scenario({name!r}, {name})")
    assert reply["content"]["status"] == "ok", reply["content"]
    path = workdir / name
    wait_for(path.exists, timeout=40)
    return json.loads(path.read_text())


@pytest.mark.kernel
def test_in_a_real_kernel_the_view_asks_approves_and_the_tool_runs_on_the_main_thread(real_kernel) -> None:
    _k, simulator, _ = real_kernel
    simulator.push(Answer(tool_calls=[{"name": "run_python", "arguments": {
                       "code": "import threading\nmade_by_agent = threading.current_thread().name\ndf.shape"}}]),
                   Answer(text="3 行 1 列"))
    r = _kernel_scenario(real_kernel, "approve_and_answer")
    assert r.get("made_by_agent") == "MainThread", r
    assert r["statuses"] == ["waiting", "running", "done"] and r["result"] == "Out: (3, 1)"
    assert r["answer"] == "3 行 1 列"


@pytest.mark.kernel
def test_in_a_real_kernel_stop_from_the_view_interrupts_a_sleeping_tool(real_kernel) -> None:
    _k, simulator, _ = real_kernel
    simulator.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "import time\ntime.sleep(30)"}}]),
                   Answer(text="never asked"))
    r = _kernel_scenario(real_kernel, "stop_a_sleep")
    assert "raised" not in r, r
    assert r["seconds"] < 2 and r["status"] == "stopped" and r["statuses"][-1] == "failed", r
    k, _, _ = real_kernel
    reply, _ = k.run("print(1 + 1)")  # the kernel is healthy afterwards
    assert reply["content"]["status"] == "ok"


def test_editing_a_user_tools_arguments(make, sim, sent: Sent) -> None:
    chat = make(agent=False)

    @chat.tool
    def double(x: int) -> int:
        """Double x."""
        return 2 * x

    sim.push(Answer(tool_calls=[{"name": "double", "arguments": {"x": 2}}]), Answer(text="10"))

    def edit(step: dict[str, Any]) -> None:
        assert json.loads(step["code_or_arguments"]) == {"x": 2}
        with pytest.raises(ErnieError, match="JSON"):
            chat.approve(code="x = 5")  # another tool's arguments are edited as a JSON object
        chat.approve(step["call_id"], code='{"x": 5}')

    errors = in_thread(edit, sent=sent)
    chat.ask("double 2").wait(15)
    assert not errors, errors
    assert last_messages(sim)[-1]["content"].endswith("\n10")
    assert steps(sent)[-1]["status"] == "done" and steps(sent)[-1]["sha256"] == sha256_of('{"x": 5}')


def test_insert_cell_waits_for_the_views_insert_click_or_its_report_that_no_extension_is_present(
        make, sim, sent: Sent, ip) -> None:
    from ernie_widget.agent.chat_tools import INSERTED, NO_EXTENSION

    chat = make(auto_approve=True)  # auto-approval cannot click Insert
    code = "side_effect = 'inserted cell'\nside_effect"
    sim.push(Answer(tool_calls=[{"name": "insert_cell", "arguments": {"code": code}}]), Answer(text="已插入。"),
             Answer(tool_calls=[{"name": "insert_cell", "arguments": {"code": "x = 1"}}]), Answer(text="请复制。"))

    def insert_clicked(s: dict[str, Any]) -> None:
        assert s["name"] == "insert_cell" and s["code_or_arguments"] == code and not s["read_only"]
        with pytest.raises(ErnieError, match="Insert"):
            chat.approve()  # Python cannot insert a cell
        view(chat, {"type": "approve", "call_id": s["call_id"], "sha256": s["sha256"], "decision": "edit",
                    "code": "other"})
        view(chat, {"type": "approve", "call_id": s["call_id"], "sha256": s["sha256"], "decision": "run"})

    errors = in_thread(insert_clicked, sent=sent)
    assert chat.ask("写个单元格").wait(15)["content"] == "已插入。" and not errors
    assert "insert_cell is inserted as shown" in sent.custom("notice")[-1]["text"]  # the edit was refused
    assert last_messages(sim)[-1]["content"] == INSERTED and steps(sent)[-1]["status"] == "done"
    assert "side_effect" not in ip.user_ns  # proposed, never run
    assert [t["function"]["name"] for t in sim.chat_requests[0].json["tools"]][-1] == "insert_cell"

    errors = in_thread(lambda s: None,  # the first turn's step
                       lambda s: view(chat, {"type": "approve", "call_id": s["call_id"], "sha256": s["sha256"],
                                             "decision": "skip", "reason": "no_extension"}), sent=sent)
    assert chat.ask("再来一个").wait(15)["content"] == "请复制。" and not errors
    assert last_messages(sim)[-1]["content"] == NO_EXTENSION
    assert steps(sent)[-1]["status"] == "skipped" and steps(sent)[-1]["result"] == NO_EXTENSION
    assert chat.messages[-2]["content"] == NO_EXTENSION  # stored as the step's result


def test_the_kernels_own_interrupt_ends_the_tool_and_the_turn_like_stop(make, sim, sent: Sent, ip) -> None:
    import os
    import signal

    from ernie_widget.agent import tool_running

    chat = make(auto_approve=True)
    sim.push(Answer(tool_calls=[{"name": "run_python", "arguments": {"code": "import time\ntime.sleep(30)"}}]),
             Answer(text="never asked"))
    sent_at: list[float] = []

    def kernel_interrupt() -> None:  # what JupyterLab's ■ does: the server sends SIGINT to the kernel process
        wait_for(tool_running)  # only while the tool runs: its handler is installed (pytest's would end the run)
        time.sleep(0.3)
        sent_at.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=kernel_interrupt, daemon=True).start()
    answer = chat.ask("睡一会").wait(15)  # the main thread runs the tool meanwhile
    assert answer["status"] == "stopped" and time.monotonic() - sent_at[0] < 2
    assert len(sim.chat_requests) == 1  # the model was not asked again
    assert steps(sent)[-1]["status"] == "failed"
    sim.clear()
    sim.push(Answer(text="好了"))
    assert chat.ask("还在吗").wait(10)["content"] == "好了"  # the next turn works
