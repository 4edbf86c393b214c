"""ErnieChat(mcp=[...]): tools of real MCP servers (written here with the mcp SDK, run as real processes) that the
simulated model calls through the widget, under the approval rules; their environment; their end with the chat."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from ernie_widget import ErnieChat
from ernie_widget.agent.mcp_tools import McpServer, as_server
from ernie_widget.client.errors import ErnieError
from ernie_widget.testing import Answer

from .kernel_side import Sent, point_at
from .processes import free_port
from .test_agent_chat import in_thread, last_messages, steps, wait_for

KEY = "bce-v3/ALTAK-mcptest42/mcpsecret777"
CANARY = "bce-v3/ALTAK-canary9191/canarysecretmcp"

SERVER = textwrap.dedent('''
    """A small MCP server (stdio or streamable HTTP), as a user might write one with the mcp SDK."""
    import json, os, sys
    from mcp.server.mcpserver import MCPServer
    from mcp_types import ToolAnnotations

    server = MCPServer("weather")

    # the server calls itself read-only: a hint the chat must not trust
    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def weather(city: str) -> str:
        """The weather in a city. 查询城市天气。"""
        return f"{city}: 晴 23°C (pid {os.getpid()}) <b>not html</b>"

    @server.tool()
    def environment() -> str:
        """This server's process id and environment."""
        return json.dumps({"pid": os.getpid(), "env": dict(os.environ)})

    @server.tool()
    def slow(seconds: float) -> str:
        """Sleeps."""
        import time
        time.sleep(seconds)
        return "slept"

    @server.tool()
    def crash() -> str:
        """Ends the server process."""
        os._exit(3)

    @server.tool()
    def fails() -> str:
        """Always fails."""
        raise ValueError("the server says no")

    if __name__ == "__main__":
        if len(sys.argv) > 1:
            server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
        else:
            server.run()
''')


@pytest.fixture(scope="module")
def server_py(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcp") / "weather_server.py"
    path.write_text(SERVER, encoding="utf-8")
    return path


@pytest.fixture
def sim(ernie_simulator, monkeypatch: pytest.MonkeyPatch):
    point_at(ernie_simulator, monkeypatch, KEY)
    ernie_simulator.clear()
    return ernie_simulator


@pytest.fixture
def make(sim, ip, sent: Sent, server_py: Path) -> Iterator[Callable[..., ErnieChat]]:
    made: list[ErnieChat] = []

    def factory(**kw: Any) -> ErnieChat:
        kw.setdefault("mcp", [McpServer(command=[sys.executable, str(server_py)], env={"GREETING": "你好"})])
        w = ErnieChat(**kw)
        made.append(w)
        return w

    yield factory
    for w in made:
        w.close()


def gone(pid: int) -> bool:
    """The process has ended and been reaped (a zombie still counts as running: nobody waited for it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def env_leaks(env: dict[str, str], secret: str) -> list[str]:
    """The variables of ``env`` whose value contains ``secret``."""
    return [k for k, v in env.items() if secret in v]


def server_environment(chat: ErnieChat, sim) -> dict[str, Any]:
    """Ask the model to call `environment` (auto-approved); what the server reported (as the model read it:
    redacted)."""
    sim.push(Answer(tool_calls=[{"name": "environment", "arguments": {}}]), Answer(text="ok"))
    assert chat.ask("env?").wait(20)["status"] == "ok"
    return json.loads(last_messages(sim)[-1]["content"])


def process_environment(pid: int) -> dict[str, str]:
    """The environment a process was started with, read by the OS (not what it says, nor redacted)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode("utf-8", "replace").split("\0") if "=" in item)


def test_an_mcp_server_tool_is_called_through_the_widget_after_approval(make, sim, sent: Sent) -> None:
    chat = make()
    assert chat.agent and chat._tools is not None and chat._tools.mcp is not None
    assert chat._tools.mcp.tools == []  # lazily started: nothing runs before a question needs it
    sim.push(Answer(text="我查一下。", tool_calls=[{"name": "weather", "arguments": {"city": "北京"}}]),
             Answer(text="北京晴，23°C。"))
    handle = chat.ask("北京天气？")
    waiting = wait_for(lambda: steps(sent, "waiting"), 30)[0]
    # its read_only_hint is ignored: an MCP tool asks, and nothing ran yet
    assert waiting["name"] == "weather" and not waiting["read_only"] and len(sim.chat_requests) == 1
    assert json.loads(waiting["code_or_arguments"]) == {"city": "北京"}
    tools_sent = {t["function"]["name"]: t["function"] for t in sim.chat_requests[0].json["tools"]}
    assert set(tools_sent) == {"weather", "environment", "slow", "crash", "fails"}  # agent=False: no built-ins
    assert tools_sent["weather"]["description"].startswith("[MCP: weather_server]")
    assert tools_sent["weather"]["parameters"]["required"] == ["city"]
    errors = in_thread(lambda step: chat.approve(step["call_id"]), sent=sent)
    answer = handle.wait(20)
    assert not errors and answer["status"] == "ok" and answer["content"] == "北京晴，23°C。"
    tool_msg = last_messages(sim)[-1]
    assert tool_msg["role"] == "tool" and tool_msg["content"].startswith("北京: 晴 23°C (pid ")
    assert [s["status"] for s in steps(sent)] == ["waiting", "running", "done"]
    assert steps(sent)[-1]["result"] == tool_msg["content"]  # shown as text (the view never renders it as HTML)
    roles = [m["role"] for m in chat.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert chat.messages[2]["name"] == "weather" and chat.messages[2]["step_status"] == "done"


def test_mcp_tools_ask_even_with_auto_approve_unless_python_lists_them(make, sim, sent: Sent) -> None:
    chat = make(auto_approve=True)
    sim.push(Answer(tool_calls=[{"name": "weather", "arguments": {"city": "上海"}}]), Answer(text="x"))
    handle = chat.ask("上海？")
    wait_for(lambda: steps(sent, "waiting"), 30)
    time.sleep(0.3)
    assert not handle.done() and len(sim.chat_requests) == 1  # auto_approve covers no MCP tool
    chat.deny()
    assert handle.wait(20)["status"] == "ok" and "declined" in last_messages(sim)[-1]["content"]

    # a view (or page script) cannot list a tool; Python can
    chat._handle_msg({"content": {"data": {"method": "update", "state": {"auto_approve_tools": ["weather"]}}},
                      "buffers": []})
    assert chat.auto_approve_tools == []
    assert sent.updates("auto_approve_tools")[-1]["auto_approve_tools"] == []
    chat.auto_approve_tools = ["weather"]
    before = len(steps(sent, "waiting"))
    sim.push(Answer(tool_calls=[{"name": "weather", "arguments": {"city": "广州"}}]), Answer(text="y"))
    assert chat.ask("广州？").wait(20)["status"] == "ok"
    assert len(steps(sent, "waiting")) == before and "广州: 晴" in last_messages(sim)[-1]["content"]


def test_an_mcp_error_result_is_a_failed_step(make, sim, sent: Sent) -> None:
    chat = make(auto_approve_tools=["fails"])
    sim.push(Answer(tool_calls=[{"name": "fails", "arguments": {}}]), Answer(text="失败了。"))
    assert chat.ask("试试").wait(20)["content"] == "失败了。"
    content = last_messages(sim)[-1]["content"]
    assert content.startswith("Error: the tool raised McpToolError:") and "fails" in content
    assert steps(sent)[-1]["status"] == "failed"


def test_stop_ends_a_running_mcp_call_and_the_server_still_answers(make, sim, sent: Sent) -> None:
    chat = make(auto_approve_tools=["slow", "weather"])
    sim.push(Answer(tool_calls=[{"name": "slow", "arguments": {"seconds": 30}}]))
    handle = chat.ask("慢")
    wait_for(lambda: steps(sent, "running"), 30)
    time.sleep(0.3)
    stopped = time.monotonic()
    chat.stop()
    assert handle.wait(10)["status"] == "stopped" and time.monotonic() - stopped < 2
    assert steps(sent)[-1]["status"] == "failed"
    sim.push(Answer(tool_calls=[{"name": "weather", "arguments": {"city": "西安"}}]), Answer(text="西安晴。"))
    assert chat.ask("西安？").wait(20)["content"] == "西安晴。"
    assert "西安: 晴" in last_messages(sim)[-1]["content"]


def test_a_server_that_dies_fails_its_call_and_is_started_again_next_turn(make, sim, sent: Sent) -> None:
    chat = make(auto_approve_tools=["crash", "environment"])
    first = server_environment(chat, sim)["pid"]
    sim.push(Answer(tool_calls=[{"name": "crash", "arguments": {}}]), Answer(text="它崩溃了。"))
    started = time.monotonic()
    assert chat.ask("crash").wait(20)["content"] == "它崩溃了。" and time.monotonic() - started < 5
    assert steps(sent)[-1]["status"] == "failed"
    wait_for(lambda: gone(first), 10)
    second = server_environment(chat, sim)["pid"]
    assert second != first and not gone(second)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/<pid>/environ")
def test_a_stdio_server_gets_no_key_from_the_kernels_environment(make, sim, server_py: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp.client.stdio import DEFAULT_INHERITED_ENV_VARS

    monkeypatch.setenv("ERNIE_TEST_CANARY", CANARY)
    assert os.environ.get("QIANFAN_API_KEY") == KEY  # the kernel's environment holds the key
    # the canary: a server handed the key-holding variable would be caught by the same check
    leaky = make(mcp=[McpServer(command=[sys.executable, str(server_py)],
                                env={"ERNIE_TEST_CANARY": os.environ["ERNIE_TEST_CANARY"]})],
                 auto_approve_tools=["environment"])
    reported = server_environment(leaky, sim)
    assert env_leaks(process_environment(reported["pid"]), CANARY) == ["ERNIE_TEST_CANARY"]
    assert env_leaks(reported["env"], CANARY) == []  # and what the model read of it was redacted

    chat = make(auto_approve_tools=["environment"])
    env = process_environment(server_environment(chat, sim)["pid"])
    assert env_leaks(env, KEY) == [] and env_leaks(env, CANARY) == []
    assert env["GREETING"] == "你好"  # what the user passed
    extra = set(env) - set(DEFAULT_INHERITED_ENV_VARS) - {"GREETING"}
    assert extra <= {"LC_CTYPE"}, extra  # Python itself sets LC_CTYPE (PEP 538); nothing else came from os.environ
    assert all(KEY not in json.dumps(m, ensure_ascii=False) for m in chat.messages)


def test_servers_start_once_and_stop_when_the_widget_closes(make, sim) -> None:
    chat = make(auto_approve_tools=["environment"])
    first = server_environment(chat, sim)["pid"]
    assert server_environment(chat, sim)["pid"] == first  # one server for the chat's turns
    assert not gone(first)
    started = time.monotonic()
    chat.close()
    wait_for(lambda: gone(first), 10)
    assert time.monotonic() - started < 5


def test_a_server_that_cannot_start_is_a_notice_with_its_stderr(make, sim, sent: Sent) -> None:
    broken = McpServer(command=[sys.executable, "-c", f"import sys; sys.stderr.write('cannot start, key {KEY}'); "
                                                      "sys.exit(3)"], name="broken")
    chat = make(mcp=[broken], agent=True)
    sim.push(Answer(text="没有 MCP 工具也能回答。"))
    answer = chat.ask("hi").wait(20)
    assert answer["status"] == "ok"  # the built-in tools still work
    notice = answer["notice"]
    assert "broken" in notice and "cannot start" in notice and KEY not in notice  # stderr quoted, redacted
    assert [t["function"]["name"] for t in sim.chat_requests[-1].json["tools"]] == [
        "run_python", "list_variables", "describe", "insert_cell"]


def _hung_server(tmp_path: Path) -> tuple[McpServer, Path]:
    """A process that never answers MCP (it only writes its pid and sleeps)."""
    pid_file = tmp_path / "hung.pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    return McpServer(command=[sys.executable, "-c", code], name="hung"), pid_file


def test_a_server_that_never_answers_times_out_and_is_stopped(make, sim, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ernie_widget.agent import mcp_tools

    monkeypatch.setattr(mcp_tools, "START_TIMEOUT", 1.0)
    server, pid_file = _hung_server(tmp_path)
    chat = make(mcp=[server], agent=True)
    sim.push(Answer(text="照常回答。"))
    started = time.monotonic()
    answer = chat.ask("hi").wait(20)
    assert answer["content"] == "照常回答。" and time.monotonic() - started < 4
    assert "hung" in answer["notice"] and "timed out" in answer["notice"]
    wait_for(lambda: gone(int(pid_file.read_text())), 10)  # reaped in the background (stdin closed, then SIGTERM)


def test_stop_while_a_server_starts(make, sim, sent: Sent, tmp_path: Path) -> None:
    server, pid_file = _hung_server(tmp_path)
    chat = make(mcp=[server])
    handle = chat.ask("hi")
    wait_for(pid_file.exists, 10)
    time.sleep(0.2)
    stopped = time.monotonic()
    chat.stop()
    assert handle.wait(10)["status"] == "stopped" and time.monotonic() - stopped < 1.5
    assert sim.chat_requests == []  # the model was never asked
    wait_for(lambda: gone(int(pid_file.read_text())), 10)


def test_server_specs() -> None:
    assert as_server("https://example.com/mcp") == McpServer(url="https://example.com/mcp")
    assert as_server("uvx mcp-server-time --local-timezone 'Asia/Shanghai'").command == [
        "uvx", "mcp-server-time", "--local-timezone", "Asia/Shanghai"]
    assert as_server(["python", "server.py"]).label == "server"
    assert McpServer(url="http://127.0.0.1:9/mcp").label == "127.0.0.1"
    for bad in (lambda: McpServer(), lambda: McpServer(command=[]), lambda: McpServer(url="ftp://x"),
                lambda: McpServer(url="http://x", env={"A": "1"}), lambda: as_server(42)):
        with pytest.raises(ErnieError):
            bad()
    assert "env" not in repr(McpServer(command=["x"], env={"TOKEN": "s3cret"}))


def test_a_streamable_http_server(make, sim, sent: Sent, server_py: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(server_py), str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={"PATH": os.environ.get("PATH", "")})
    try:
        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 30)
        chat = make(mcp=[f"http://127.0.0.1:{port}/mcp"], auto_approve_tools=["weather"])
        sim.push(Answer(tool_calls=[{"name": "weather", "arguments": {"city": "成都"}}]), Answer(text="成都晴。"))
        assert chat.ask("成都？").wait(20)["content"] == "成都晴。"
        assert f"成都: 晴 23°C (pid {proc.pid})" in last_messages(sim)[-1]["content"]
        assert steps(sent)[-1]["status"] == "done"
    finally:
        proc.terminate()
        proc.wait(10)
