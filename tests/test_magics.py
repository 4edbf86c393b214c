"""`%ernie` / `%%ernie` in a real IPython shell against the ERNIE protocol simulator."""

from __future__ import annotations

import _thread
import json
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from ernie_widget import conversations as threads
from ernie_widget import magics
from ernie_widget.client import ErnieError
from ernie_widget.magics import FORMATS
from ernie_widget.testing import Answer, Fault

from .kernel_side import magics_shell

KEY = "bce-v3/ALTAK-testkey123/secretpart456"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
EVIL = ("答案：\n\n```python\nprint('hi')\n```\n\n<script>alert(1)</script><img src=x onerror=alert(2)>"
        "[x](javascript:alert(3))")


@pytest.fixture
def sim(ernie_simulator, monkeypatch: pytest.MonkeyPatch):
    for key, value in ernie_simulator.env("qianfan", api_key=KEY).items():
        monkeypatch.setenv(key, value)
    return ernie_simulator


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from magics_shell(monkeypatch)


def cell(ip: Any, line: str, body: str | None = None) -> Any:
    """Run ``%%ernie line`` (or ``%ernie line``) as a real cell; returns the captured io and the result."""
    source = f"%%ernie {line}\n{body}" if body is not None else f"%ernie {line}"
    with capture_output() as io:
        result = ip.run_cell(source, store_history=True)
    return io, result


def outputs(io: Any) -> list[dict[str, Any]]:
    return [{"data": o.data, "metadata": o.metadata, "update": o.update} for o in io.outputs]


def active_content(html: str) -> list[str]:
    found: list[str] = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("script", "iframe", "object", "embed", "img", "link", "form"):
                found.append(tag)
            for name, value in attrs:
                if name.startswith("on") or (value or "").strip().lower().startswith(("javascript:", "data:")):
                    found.append(f"{tag}[{name}]")

    Finder().feed(html)
    return found


def last_request(sim: Any) -> Any:
    return sim.chat_requests[-1]


# -- output --------------------------------------------------------------------------------------


def test_streams_one_display_then_bounded_updates_with_provenance(sim, ip) -> None:
    sim.push(Answer(text="第一段。" * 30, chunk_size=2, delay=0.01))
    t0 = time.monotonic()
    io, result = cell(ip, "", "写一段话")
    elapsed = time.monotonic() - t0
    assert result.success
    outs = outputs(io)
    assert outs[0]["update"] is False and all(o["update"] for o in outs[1:])
    assert 2 <= len(outs) <= elapsed / 0.05 + 3  # ≤ 20 Hz
    final = outs[-1]
    assert set(final["data"]) == {"text/html", "text/plain"}
    assert final["data"]["text/plain"] == "第一段。" * 30
    meta = final["metadata"]["ernie_widget"]
    assert meta["provider"] == "qianfan" and meta["model"] and meta["request_id"].startswith("as-")
    assert meta["usage"]["total_tokens"] > 0
    assert KEY not in json.dumps(outs, ensure_ascii=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_sanitized_html_plus_plain_never_markdown(sim, ip, fmt: str) -> None:
    sim.push(Answer(text=EVIL))
    io, result = cell(ip, f"-f {fmt}", "任何问题")
    assert result.success
    for out in outputs(io):
        assert "text/markdown" not in out["data"]
        assert set(out["data"]) <= {"text/html", "text/plain", "text/latex"}
        assert "text/html" in out["data"] and "text/plain" in out["data"]
        assert active_content(out["data"]["text/html"]) == []


def test_trusted_html_is_still_sanitized(sim, ip) -> None:
    sim.push(Answer(text="<b>bold</b><script>alert(1)</script><a href='javascript:x()' onclick='y()'>l</a>"))
    io, _ = cell(ip, "-f html --trust-html", "html please")
    html = outputs(io)[-1]["data"]["text/html"]
    assert "<b>bold</b>" in html and active_content(html) == []


def test_code_format_fills_the_next_cell_with_code_only(sim, ip) -> None:
    sim.push(Answer(text="下面是代码：\n\n```python\nimport math\nprint(math.pi)\n```\n\n希望有帮助！"))
    io, result = cell(ip, "-f code -o snippet", "打印圆周率")
    assert result.success
    assert ip.rl_next_input == "import math\nprint(math.pi)"
    assert ip.user_ns["snippet"] == "import math\nprint(math.pi)"
    assert outputs(io)[-1]["data"]["text/plain"] == "import math\nprint(math.pi)"
    assert "Answer with source code only" in last_request(sim).messages[0]["content"]


def test_no_stream_and_env_switch_give_one_display(sim, ip, monkeypatch: pytest.MonkeyPatch) -> None:
    sim.set_answer(text="一二三四五六七八九十" * 5, chunk_size=1, delay=0.005)
    io, _ = cell(ip, "--no-stream", "数数")
    assert [o["update"] for o in outputs(io)] == [False]
    monkeypatch.setenv("ERNIE_STREAM", "0")
    io, _ = cell(ip, "", "再数")
    outs = outputs(io)
    assert [o["update"] for o in outs] == [False]
    assert outs[0]["data"]["text/plain"] == "一二三四五六七八九十" * 5
    assert outs[0]["metadata"]["ernie_widget"]["provider"] == "qianfan"


# -- options -------------------------------------------------------------------------------------


def test_model_system_temperature_max_tokens_params(sim, ip) -> None:
    _, result = cell(ip, '-m ernie-x1-turbo-32k -s "你是 诗人" -t 0.3 --max-tokens 64 '
                         '--params \'{"top_p": 0.5, "penalty_score": 1.2}\'', "写诗")
    assert result.success
    body = last_request(sim).json
    assert body["model"] == "ernie-x1-turbo-32k"
    assert body["messages"][0] == {"role": "system", "content": "你是 诗人"}
    assert body["temperature"] == 0.3 and body["max_completion_tokens"] == 64
    assert body["top_p"] == 0.5 and body["penalty_score"] == 1.2


def test_bad_params_are_a_usage_error(sim, ip) -> None:
    with pytest.raises(UsageError, match="--params"):
        ip.run_cell_magic("ernie", "--params '{not json'", "x")
    with pytest.raises(UsageError, match="JSON object"):
        ip.run_cell_magic("ernie", "--params '[1, 2]'", "x")
    with pytest.raises(UsageError):
        ip.run_line_magic("ernie", "--no-such-option hi")
    assert sim.chat_requests == []


def test_provider_option(sim, ip, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERNIE_BASE_URL", sim.base_url("openai"))
    _, result = cell(ip, "-p openai 你好")
    assert result.success and last_request(sim).surface == "openai"
    cell(ip, "你好")
    assert last_request(sim).surface == "qianfan"  # ERNIE_PROVIDER still decides by default


def test_line_magic_output_variable(sim, ip) -> None:
    sim.push(Answer(text="北京"))
    _, result = cell(ip, "-o city what's 中国的 \"首都\"？")
    assert result.success and ip.user_ns["city"] == "北京"
    assert last_request(sim).messages[-1]["content"] == "what's 中国的 \"首都\"？"


def test_image_option_sends_an_image_part(sim, ip) -> None:
    ip.user_ns["img"] = PNG
    _, result = cell(ip, "--image img", "这是什么？")
    assert result.success
    content = last_request(sim).messages[-1]["content"]
    assert content[0] == {"type": "text", "text": "这是什么？"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    with pytest.raises(UsageError, match="nope"):
        ip.run_cell_magic("ernie", "--image nope", "x")


def test_thread_and_reset(sim, ip) -> None:
    cell(ip, "--thread a", "q1")
    cell(ip, "--thread a", "q2")
    assert [m["content"] for m in last_request(sim).messages if m["role"] == "user"] == ["q1", "q2"]
    cell(ip, "--thread b", "other")
    assert [m["content"] for m in last_request(sim).messages] == ["other"]
    cell(ip, "--thread a --reset", "q3")
    assert [m["content"] for m in last_request(sim).messages] == ["q3"]


def test_calls_without_a_thread_stand_alone(sim, ip) -> None:
    sim.push(Answer(text="an unrelated answer about a function f"))
    cell(ip, "", "q1")
    cell(ip, "", "q2")
    assert [(m["role"], m["content"]) for m in last_request(sim).messages] == [("user", "q2")]
    assert "thread" in ip.magics_manager.registry["ErnieMagics"].ernie.__doc__  # %ernie? says so


def test_a_call_without_a_thread_leaves_the_chats_default_thread_alone(sim, ip) -> None:
    chat_history = threads.get_thread(threads.DEFAULT_THREAD)
    chat_history.append({"role": "user", "content": "kept"})
    cell(ip, "", "q1")
    assert [m["content"] for m in chat_history.messages] == ["kept"]


def test_a_configured_thread_keeps_two_exchanges(sim, ip) -> None:
    ip.magics_manager.registry["ErnieMagics"].thread = "notes"
    for q in ("q1", "q2", "q3", "q4"):
        cell(ip, "", q)
    assert [m["content"] for m in last_request(sim).messages if m["role"] == "user"] == ["q2", "q3", "q4"]


def test_a_line_magic_ending_in_a_question_mark_asks(sim, ip) -> None:
    _, result = cell(ip, "what is a DataFrame?")
    assert result.success and last_request(sim).messages[-1]["content"] == "what is a DataFrame?"
    n = len(sim.chat_requests)
    with capture_output():
        ip.run_cell("%ernie?")  # help on the magic, not a question
    assert len(sim.chat_requests) == n


def test_dry_run_sends_nothing_and_redacts(sim, ip) -> None:
    ip.user_ns["token"] = KEY
    io, result = cell(ip, "--dry-run -s 简短", "用 {token} 调用接口")
    assert result.success and sim.chat_requests == []
    shown = json.loads(io.stdout[: io.stdout.rindex("}") + 1])
    assert shown["messages"][0] == {"role": "system", "content": "简短"}
    assert "estimated tokens: prompt ≈ " in io.stdout and "+ answer limit 1024 = " in io.stdout
    assert KEY not in io.stdout and "secretpart456" not in io.stdout


def test_an_answer_cut_at_the_length_limit_says_so(sim, ip) -> None:
    sim.push(Answer(text="a long answer that was cut", finish_reason="length"))
    io, result = cell(ip, "--max-tokens 5", "write a lot")
    assert result.success
    assert "cut off at the length limit" in io.stderr and "--max-tokens" in io.stderr
    io, _ = cell(ip, "", "short")
    assert "length limit" not in io.stderr


def test_list_shows_providers_and_no_key(sim, ip) -> None:
    io, result = cell(ip, "--list")
    assert result.success and sim.chat_requests == []
    assert "✓ qianfan" in io.stdout and "✗ aistudio" in io.stdout
    assert KEY not in io.stdout


def test_list_says_what_auto_resolves_to(sim, ip, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERNIE_PROVIDER")
    io, _ = cell(ip, "--list")
    assert "provider=(auto → qianfan)" in io.stdout


def test_doctor_checks_the_simulator(sim, ip) -> None:
    io, result = cell(ip, "--doctor")
    assert result.success
    assert "✓ network" in io.stdout and "✓ key" in io.stdout
    assert KEY not in io.stdout and "secretpart456" not in io.stdout


def test_login_keeps_the_key_for_the_session_only(sim, ip, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QIANFAN_API_KEY")
    _, result = cell(ip, "hi")
    assert not result.success  # not configured yet
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "bce-v3/ALTAK-sessionkey99/sessionsecret77")
    io, result = cell(ip, "--login")
    assert result.success and "session" in io.stdout and "sessionsecret77" not in io.stdout
    assert "checked" in io.stdout  # one test request proved the key before it was kept
    _, result = cell(ip, "hi")
    assert result.success
    assert last_request(sim).headers["authorization"] == "Bearer bce-v3/ALTAK-sessionkey99/sessionsecret77"
    io, result = cell(ip, "--logout")
    assert result.success and "forgot" in io.stdout
    _, result = cell(ip, "hi")
    assert not result.success  # the environment has no key: the session key is really gone


def test_login_refuses_a_rejected_key_and_keeps_nothing(sim, ip, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QIANFAN_API_KEY")
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "bce-v3/ALTAK-badkey/typo")
    n = len(sim.chat_requests)
    io, result = cell(ip, "--login")
    assert isinstance(result.error_in_exec, UsageError) and "nothing saved" in str(result.error_in_exec)
    assert "typo" not in io.stdout + io.stderr + str(result.error_in_exec)
    assert len(sim.chat_requests) == n + 1  # exactly one test request
    assert magics._session_credentials == {}


def test_fix_sends_the_failed_cell_and_traceback_verbatim(sim, ip) -> None:
    with capture_output():
        ip.run_cell('data = {"k": {1, 2}}\nprint(f"{data[\'missing\']}")', store_history=True)
    sim.push(Answer(text="修复：\n```python\nprint(data.get('missing'))\n```"))
    _, result = cell(ip, "--fix 请用中文")
    assert result.success
    prompt = last_request(sim).messages[-1]["content"]
    assert 'data = {"k": {1, 2}}' in prompt and "print(f\"{data['missing']}\")" in prompt
    assert "KeyError" in prompt and prompt.endswith("请用中文")


def test_fix_without_an_error_is_refused(sim, ip) -> None:
    ip.user_ns["Err"] = {}
    with pytest.raises(UsageError, match="no exception"):
        ip.run_line_magic("ernie", "--fix")


def test_paste_puts_code_block_n_in_the_next_cell(sim, ip) -> None:
    sim.push(Answer(text="一：\n```python\na = 1\n```\n二：\n```bash\nls -la\n```"))
    cell(ip, "", "两段代码")
    # not through run_cell: IPython does not store any `%…paste…` line in `In` but still counts it,
    # which would shift `In` against the execution count for the rest of this shared test shell
    ip.run_line_magic("ernie", "--paste 2")
    assert ip.rl_next_input == "ls -la\n"
    with pytest.raises(UsageError, match="code block 3"):
        ip.run_line_magic("ernie", "--paste 3")


# -- interpolation -------------------------------------------------------------------------------


def test_braces_json_and_comprehensions_stay_literal(sim, ip) -> None:
    ip.user_ns["name"] = "张三"
    body = '解释 {x for x in data} 和 {"a": {"b": 1}} 和 f"{v!r}" 以及 {{name}} 与 {name}'
    _, result = cell(ip, "", body)
    assert result.success
    assert last_request(sim).messages[-1]["content"] == (
        '解释 {x for x in data} 和 {"a": {"b": 1}} 和 f"{v!r}" 以及 {name} 与 张三')


def test_cell_history_fields(sim, ip) -> None:
    with capture_output():
        r = ip.run_cell("value = 6 * 7\nvalue", store_history=True)
    n = r.execution_count
    cell(ip, "", f"输入 {{In[{n}]}} 输出 {{Out[{n}]}}")
    # a multi-line cell is named in the sentence and follows it as a block; the short result stays inline
    assert last_request(sim).messages[-1]["content"] == (
        f"输入 `In[{n}]` (text, below) 输出 42\n\n`In[{n}]` — text:\n```\nvalue = 6 * 7\nvalue\n```")


def test_missing_name_warns_and_stays_literal(sim, ip) -> None:
    ip.user_ns.pop("nope", None)
    io, result = cell(ip, "", "看看 {nope}")
    assert result.success
    assert "{nope}" in io.stderr and "Not found" in io.stderr
    assert last_request(sim).messages[-1]["content"] == "看看 {nope}"


def test_key_shaped_values_are_redacted_before_sending(sim, ip) -> None:
    ip.user_ns["cfg"] = {"api_key": KEY, "region": "bj"}
    cell(ip, "", "检查配置 {cfg}")
    sent = last_request(sim).messages[-1]["content"]
    assert "bj" in sent and "secretpart456" not in sent and KEY not in sent


# -- refusals and errors -------------------------------------------------------------------------


def test_token_budget_refuses_before_sending(sim, ip) -> None:
    ip.run_line_magic("config", "ErnieMagics.token_budget = 10")
    with pytest.raises(UsageError, match="budget"):
        ip.run_cell_magic("ernie", "", "一个很长的问题" * 5)
    assert sim.chat_requests == []


def test_budget_counts_used_tokens(sim, ip) -> None:
    sim.push(Answer(text="ok", usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}))
    m = ip.magics_manager.registry["ErnieMagics"]
    m.token_budget = 100_000
    cell(ip, "", "hi")
    assert m.tokens_used == 7


@pytest.mark.parametrize("fault", [Fault.status(401), Fault.status(400), Fault.cut(after_chunks=1)])
def test_api_error_is_one_line_without_traceback_or_key(sim, ip, fault: Fault) -> None:
    sim.push(fault)
    io, result = cell(ip, "", "hi")
    err = result.error_in_exec
    assert not result.success and isinstance(err, ErnieError) and not isinstance(err, UsageError)
    shown = [ln for ln in (io.stdout + io.stderr).splitlines() if ln.strip()]
    # one line, naming the error for what it is (not a "UsageError")
    assert shown == [f"{type(err).__name__}: {err}"]
    assert "Traceback" not in io.stdout + io.stderr
    assert "secretpart456" not in io.stdout + io.stderr
    # the conversation survives: the next cell works
    _, result = cell(ip, "", "again")
    assert result.success


def test_cut_stream_keeps_the_partial_answer_in_the_output(sim, ip) -> None:
    sim.push(Fault.cut(after_chunks=2, answer=Answer(text="abcdefgh", chunk_size=2)))
    io, _ = cell(ip, "", "hi")
    assert outputs(io)[-1]["data"]["text/plain"] == "abcd"


def test_busy_thread_is_refused(sim, ip) -> None:
    conv = threads.get_thread("notes")
    conv.begin_or_raise()
    try:
        with pytest.raises(UsageError, match="already streaming"):
            ip.run_cell_magic("ernie", "--thread notes", "hi")
    finally:
        conv.end_turn()


def test_empty_prompt_is_a_usage_error(ip) -> None:
    with pytest.raises(UsageError, match="prompt"):
        ip.run_cell_magic("ernie", "", "   \n")


def test_interrupt_stops_a_stalled_stream_and_keeps_the_partial_answer(sim, ip) -> None:
    sim.push(Fault.stall(after_chunks=2, seconds=30, answer=Answer(text="部分回答后面没有了", chunk_size=2)))
    stopped_after: list[float] = []

    def interrupt_once_partial_text_arrived() -> None:
        sim.wait_for(lambda: sim.chat_requests and sim.chat_requests[-1].chunks_sent >= 2, timeout=10)
        time.sleep(0.2)  # the display shows it within one update interval
        req = sim.chat_requests[-1]
        t0 = time.monotonic()
        _thread.interrupt_main()  # what a kernel interrupt does: SIGINT → KeyboardInterrupt in main
        if sim.wait_for(lambda: req.disconnected, timeout=5):
            stopped_after.append(time.monotonic() - t0)

    watcher = threading.Thread(target=interrupt_once_partial_text_arrived)
    watcher.start()
    io, result = cell(ip, "", "hi")
    watcher.join()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert stopped_after and stopped_after[0] < 1.0  # the upstream request is closed at once
    assert outputs(io)[-1]["data"]["text/plain"] == "部分回答"
    assert "interrupted" in io.stderr
    assert threads.get_thread(threads.LAST_CALL_THREAD).messages[-1]["status"] == "stopped"
    _, result = cell(ip, "", "next")
    assert result.success


def test_time_limits_are_configurable_and_reach_the_client(ernie_simulator, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`ErnieMagics.stream_idle_timeout` (and friends) configure the client the magic uses."""
    from IPython.testing.globalipapp import get_ipython

    from ernie_widget.testing import Fault

    for key, value in ernie_simulator.env("qianfan", api_key="bce-v3/ALTAK-limits/secret").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(magics, "_clients", {})
    shell = get_ipython()
    shell.run_line_magic("load_ext", "ernie_widget")
    m = shell.magics_manager.registry["ErnieMagics"]
    saved = (m.stream_idle_timeout, m.max_retries)
    m.stream_idle_timeout, m.max_retries = 0.3, 0
    try:
        ernie_simulator.push(Fault.stall(after_chunks=1, seconds=10))
        result = shell.run_cell("%%ernie --no-stream\nstall please")
        assert result.error_in_exec is not None and "0.3" in str(result.error_in_exec)
        (client,) = magics._clients.values()
        assert client.aio.stream_idle_timeout == 0.3 and client.aio.max_retries == 0
    finally:
        m.stream_idle_timeout, m.max_retries = saved
        for c in magics._clients.values():
            c.close()


def test_code_generation_names_a_dataframe_and_carries_it_after_the_sentence(sim, ip) -> None:
    import pandas as pd

    ip.user_ns["sales"] = pd.DataFrame({"month": ["2024-01", "2024-02"], "revenue": [10.5, 12.0]})
    ip.user_ns["year"] = 2024
    cell(ip, "-f code", "Plot {sales} as a bar chart of revenue by month for {year}.")
    prompt = last_request(sim).messages[-1]["content"]
    sentence, _, rest = prompt.partition("\n\n")
    assert sentence == "Plot `sales` (DataFrame, below) as a bar chart of revenue by month for 2024."
    assert rest.startswith("`sales` — DataFrame:\n```\nDataFrame shape=(2, 2)") and "revenue: float64" in rest
    assert "Answer with source code only" in last_request(sim).messages[0]["content"]


def test_a_prose_answer_under_f_code_is_not_inserted_as_a_cell(sim, ip) -> None:
    sim.push(Answer(text="这个问题需要更多信息。Please tell me which columns the data has."))
    io, result = cell(ip, "-f code", "plot it")
    assert result.success and ip.rl_next_input is None
    assert "prose, not code" in io.stderr
    sim.push(Answer(text="print('hi')"))
    cell(ip, "-f code", "say hi")
    assert ip.rl_next_input == "print('hi')"


# -- web search ------------------------------------------------------------------------------------


class Links(HTMLParser):
    """Every link of an output: (href, class, target, rel, text)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str | None, ...]] = []
        self._open: list[Any] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            a = dict(attrs)
            self._open = [a.get("href"), a.get("class"), a.get("target"), a.get("rel"), ""]

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append(tuple(self._open))
            self._open = None


SEARCH_RESULTS = [
    {"index": 1, "url": "https://yiyan.baidu.com/blog/ernie?a=1&b=2", "title": "ERNIE 4.5 <img src=x onerror=alert(1)>"},
    {"index": 2, "url": "javascript:alert(document.domain)", "title": "坏链接"},
    {"index": 3, "url": "/api/contents", "title": "相对路径"},
]


def test_search_lists_the_sources_under_the_answer_and_links_its_markers(sim, ip) -> None:
    text = "ERNIE 4.5 已开源^[1]^；另见^[2]^、^[3]^ 与 ^[9]^。" * 4
    sim.push(Answer(text=text, search_results=SEARCH_RESULTS, chunk_size=2, delay=0.01))
    io, result = cell(ip, "--search", "ERNIE 4.5 开源了吗？")
    assert result.success
    assert last_request(sim).json["web_search"] == {"enable": True, "enable_citation": True, "enable_trace": True}
    outs = outputs(io)
    final = outs[-1]["data"]
    url = SEARCH_RESULTS[0]["url"]
    rel = "noopener noreferrer nofollow"
    # only source 1 has an absolute http(s) URL with a host: its markers link, and so does its entry in the list
    assert Links(final["text/html"]).links == [(url, "ernie-cite", "_blank", rel, "[1]")] * 4 + [
        (url, "ernie-source", "_blank", rel, "ERNIE 4.5 <img src=x onerror=alert(1)>")]
    assert active_content(final["text/html"]) == []
    assert final["text/html"].count("^[2]^") == final["text/html"].count("^[9]^") == 4  # plain text
    assert final["text/html"].count("<li") == 3 and "相对路径" in final["text/html"]
    assert final["text/plain"].startswith(text) and final["text/plain"].endswith(
        f"来源 / Sources:\n[1] {SEARCH_RESULTS[0]['title']} — {url}\n[2] 坏链接 — javascript:alert(document.domain)\n"
        "[3] 相对路径 — /api/contents")
    # the list came with the first chunk and was drawn while the answer streamed, once, though it came twice
    streamed = [o["data"]["text/html"] for o in outs[:-1] if "ernie-sources" in o["data"]["text/html"]]
    assert streamed and all(h.count("<li") == 3 for h in streamed)
    stored = threads.get_thread(threads.LAST_CALL_THREAD).messages[-1]["search_results"]
    assert [s["index"] for s in stored] == [1, 2, 3] and stored[0]["url"] == url


def test_without_search_nothing_is_asked_and_dry_run_shows_the_option(sim, ip) -> None:
    cell(ip, "", "q")
    assert "web_search" not in last_request(sim).json
    io, _ = cell(ip, "--search --dry-run", "q")
    assert json.loads(io.stdout[: io.stdout.rindex("}") + 1])["web_search"] is True


# -- structured output -----------------------------------------------------------------------------


def test_schema_over_a_frame_adds_field_columns(sim, ip) -> None:
    import pandas as pd

    ip.run_cell("from pydantic import BaseModel\n"
                "class City(BaseModel):\n    name_en: str\n    population_m: float\n")
    ip.user_ns["cities"] = pd.DataFrame({"city": ["北京", "上海"]})
    sim.push(Answer(text='{"name_en": "Beijing", "population_m": 21.9}'),
             Answer(text='{"name_en": "Shanghai", "population_m": 24.9}'))
    _, result = cell(ip, "--over cities --schema City -o out", "{city} 的英文名和人口（百万）")
    assert result.error_in_exec is None
    out = ip.user_ns["out"]
    assert list(out["ernie_name_en"]) == ["Beijing", "Shanghai"]
    assert list(out["ernie_population_m"]) == [21.9, 24.9]
    body = last_request(sim).json
    assert body["response_format"]["json_schema"]["name"] == "City"
    assert body["messages"][0]["role"] == "user"  # no markdown-format system prompt with a schema


def test_schema_for_one_answer_returns_the_parsed_value(sim, ip) -> None:
    ip.user_ns["Pair"] = {"type": "object", "required": ["a", "b"],
                          "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    sim.push(Answer(text='{"a": 1, "b": 2}'))
    _, result = cell(ip, "--schema Pair -o pair", "两个数")
    assert result.result == {"a": 1, "b": 2} and ip.user_ns["pair"] == {"a": 1, "b": 2}
    _, result = cell(ip, "--schema Missing", "两个数")
    assert "no variable named 'Missing'" in str(result.error_in_exec)


# -- @-mentions ----------------------------------------------------------------------------------


def test_a_mentioned_frame_sends_its_columns_and_the_output_says_so(sim, ip) -> None:
    import pandas as pd

    ip.user_ns["sales"] = pd.DataFrame({"region": ["华东", "华北"], "revenue_m": [1.5, 2.0]})
    ip.user_ns["x"] = 3
    sim.push(Answer(text="```python\nsales.groupby('region').revenue_m.sum()\n```"))
    io, result = cell(ip, "-f code", "用 @sales 画出每个区域的收入；不要动 alice@example.com 或 df.query('a > @x')")
    assert result.error_in_exec is None
    sent_text = last_request(sim).json["messages"][-1]["content"]
    assert "revenue_m" in sent_text and "float64" in sent_text and "region" in sent_text
    assert sent_text.count("@x:") == 0 and "@alice" not in sent_text.split("\n\n", 1)[1]
    assert "已附加上下文 / attached: @sales (DataFrame" in io.stderr


def test_no_mentions_and_dry_run(sim, ip) -> None:
    import pandas as pd

    ip.user_ns["sales"] = pd.DataFrame({"region": ["华东"]})
    before = len(sim.chat_requests)
    io, _ = cell(ip, "--dry-run", "看看 @sales")
    assert "region" in io.stdout and len(sim.chat_requests) == before  # the exact context, nothing sent
    sim.push(Answer(text="ok"))
    cell(ip, "--no-mentions", "看看 @sales")
    assert last_request(sim).json["messages"][-1]["content"] == "看看 @sales"


def test_a_key_bearing_mention_sends_nothing(sim, ip) -> None:
    ip.user_ns["creds"] = "bce-v3/ALTAK-magiccanary1/canarysecret777"
    before = len(sim.chat_requests)
    io, result = cell(ip, "", "这是什么 @creds")
    assert result.error_in_exec is not None and len(sim.chat_requests) == before
    assert "canarysecret777" not in str(result.error_in_exec) + io.stdout + io.stderr
    # the check can fail: the same channels do show the canary when it is printed
    with capture_output() as shown:
        ip.run_cell("import sys; print(creds); print(creds, file=sys.stderr)")
    assert "canarysecret777" in shown.stdout and "canarysecret777" in shown.stderr


def test_a_dry_run_without_a_thread_shows_no_earlier_call(sim, ip) -> None:
    sim.push(Answer(text="first answer"))
    cell(ip, "", "first question")
    io, _ = cell(ip, "--dry-run", "second question")
    assert "first question" not in io.stdout and "first answer" not in io.stdout and "second question" in io.stdout


def test_help_starts_with_the_usage_not_a_markup_marker(ip) -> None:
    magic = ip.find_cell_magic("ernie")  # its docstring is what `%ernie?` prints
    doc = magic.__doc__ or ""
    assert doc.lstrip().startswith("%ernie [-m MODEL]") and not doc.startswith("::")
    assert "--no-mentions" in doc and "--schema" in doc
