"""Write the notebooks in notebooks/ from the cell lists below (run, then execute them to store outputs).

    .venv/bin/python scripts/make_notebooks.py && scripts/execute-notebooks
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NB = Path(__file__).resolve().parent.parent / "notebooks"

CHECK = "# NBVAL_CHECK_OUTPUT\n"
IGNORE = "# NBVAL_IGNORE_OUTPUT\n"


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip())


def code(text: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    """A code cell. A leading nbval marker becomes a cell tag: nbval reads both, and a tour should read like one,
    not like a test file."""
    text = text.strip()
    tags = list(tags or [])
    for marker, tag in ((CHECK, "nbval-check-output"), (IGNORE, "nbval-ignore-output")):
        if text.startswith(marker.strip()):
            text = text[len(marker):].lstrip()
            tags.append(tag)
    cell = new_code_cell(text)
    if tags:
        cell.metadata["tags"] = tags
    return cell


SIM_SETUP = """
# NBVAL_IGNORE_OUTPUT
# The protocol simulator plays ERNIE here: a real HTTP server on 127.0.0.1 speaking the Qianfan wire format, so
# this notebook runs without a key. Later cells script its answers with sim.push(...). With a real key, leave
# out this cell and the sim lines: Ernie() then reads QIANFAN_API_KEY from the environment.
import os
from ernie_widget.testing import Answer, ErnieSimulator

sim = ErnieSimulator().start()
os.environ.update(sim.env("qianfan", api_key="bce-v3/ALTAK-demo/not-a-real-key"))
print("simulator at", sim.url)
"""

QUICKSTART = [
    md("""
# ernie-widget quickstart · 快速上手

Chat with ERNIE (文心一言) in the notebook, and generate code into the next cell.

* **No key?** The embedded offline model (SmolLM2-135M, or any GGUF such as ERNIE-4.5-0.3B via `ERNIE_LOCAL_MODEL`)
  answers. 未设置密钥时使用离线本地模型。
* **ERNIE cloud:** `export QIANFAN_API_KEY=bce-v3/ALTAK-…` before starting Jupyter, or run `%ernie --login`.
"""),
    code("""
from ernie_widget import Ernie, ErnieChat

# No key configured -> the embedded offline model. With QIANFAN_API_KEY set -> ERNIE cloud.
client = Ernie()
client
""", tags=["nbval-ignore-output"]),
    md("## The chat widget · 聊天组件\n\nType below and press **Enter** (Shift+Enter for a new line). **Stop** ends an answer at once.\n\n"
       "`thread=\"quickstart\"` names the conversation: running this cell again shows the same chat, not an empty one."),
    code(CHECK + """
chat = ErnieChat(client, thread="quickstart")
chat
"""),
    md("The same chat from code: `ask()` returns at once; `await` it to wait for the answer."),
    code(CHECK + """
answer = await chat.ask("Say hello in one short sentence.")
print(answer["status"], bool(answer["content"]), chat)
"""),
    md("## `%%ernie`: generate code into the next cell · 生成代码到下一个单元格\n\n"
       "The answer streams into the output; with `-f code` the code (without fences or prose) lands in a new cell below."),
    code("%load_ext ernie_widget"),
    code(IGNORE + """
%%ernie -f code --max-tokens 80
Write a Python function add(a, b) that returns the sum of a and b.
"""),
    md("Everything is kept: the widget's transcript as a static copy for GitHub and nbviewer."),
    code(IGNORE + "chat.transcript()"),
]

CODEGEN = [
    md("""
# Code generation with `%ernie` / `%%ernie`

Prompts can use notebook values: `{name}`, `{In[n]}`, `{Out[n]}`, `{Err[n]}`. Every other brace stays literal
(dicts, JSON, comprehensions), and `{{`/`}}` escape. `@name` attaches a variable's context (a DataFrame's columns
and dtypes, a sample of rows). `--dry-run` shows exactly what would be sent.
"""),
    code(SIM_SETUP),
    code("%load_ext ernie_widget"),
    code("""
scores = {"alice": 91, "bob": 78}
threshold = 80
"""),
    code(CHECK + """
%%ernie --dry-run --reset
Which names in {scores} are above {threshold}? Answer as JSON like {"names": [...]}.
Also keep {x for x in range(3)} and {missing} as they are.
"""),
    md("Key-shaped values are redacted before sending:"),
    code(CHECK + """
token = "bce-v3/ALTAK-abcdef123456/0123456789abcdef"
%ernie --dry-run --reset Is this a key: {token}?
"""),
    md("## Mention your data · 提及你的数据\n\n"
       "`@sales` attaches what the model needs to write code for *this* frame: its shape, column names and dtypes, "
       "and a few sampled rows, bounded however large the frame is. The output says what was attached."),
    code("""
import pandas as pd

sales = pd.DataFrame({"region": ["华东", "华北", "华南", "西南"], "revenue_m": [12.5, 8.0, 9.75, 4.2],
                      "orders": [1200, 860, 990, 410]})
"""),
    code(CHECK + """
%%ernie -f code --dry-run
用 @sales 画出每个区域的收入柱状图
"""),
    md("Without `--dry-run` the answer streams and its code lands in the next cell (here the simulator plays a model "
       "that wrote it):"),
    code('sim.push(Answer(text="```python\\nsales.plot.bar(x=\\"region\\", y=\\"revenue_m\\")\\n```"))'),
    code(IGNORE + """
%%ernie -f code
用 @sales 画出每个区域的收入柱状图
"""),
    md("## Threads share memory with the chat widget\n\n`%%ernie --thread NAME` and `ErnieChat(thread=NAME)` continue the same conversation."),
    code(IGNORE + """
%%ernie --thread demo --max-tokens 60
Give a one-line Python expression that squares the numbers 1 to 5.
"""),
    code(CHECK + """
from ernie_widget.threads import get_thread
[m["role"] for m in get_thread("demo").messages]
"""),
    md("## `--fix`: explain the last error\n\nRun a failing cell, then ask for a fix."),
    code("""
values = [1, 2, 3]
values[10]
""", tags=["raises-exception"]),
    code(IGNORE + """
%ernie --fix --dry-run
"""),
    code(IGNORE + """
sim.push(Answer(text="`values` has 3 items, so index 10 is out of range. Use the last item:\\n\\n```python\\nvalues[-1]\\n```"))
%ernie --fix --max-tokens 80
"""),
    md("`%ernie --paste N` puts code block N of the thread's last answer in the next cell (also for `ErnieChat` threads)."),
    code("%ernie --paste 1"),
    code(IGNORE + "sim.stop()"),
]

CLIENT = [
    md("""
# The client API · 客户端

`Ernie` (sync) and `AsyncErnie` (async) talk to every ERNIE surface with one set of names. Here the protocol
simulator stands in for the cloud; the code is the same against the real service.
"""),
    code(SIM_SETUP),
    code(CHECK + """
from ernie_widget import Ernie

client = Ernie()          # provider and key from the environment
print(client)
for event in client.stream("你好"):
    if event.type == "text":
        print(event.text, end="|")
"""),
    md("## A whole reply, with usage and metrics"),
    code(CHECK + """
reply = client.chat("What is ERNIE?", system="Answer briefly.")
print(reply.text)
print(reply.usage, reply.finish_reason)
"""),
    code(IGNORE + "reply.metrics"),
    md("## Reasoning models keep their thinking apart · 思考过程"),
    code(CHECK + """
sim.set_answer(text="答案是 42。", reasoning="先想一想……")
reply = client.chat("What is the answer?", model="ernie-x1-turbo-32k")
print("reasoning:", reply.reasoning)
print("answer:", reply.text)
"""),
    md("## Errors and retries\n\n429 and 5xx are retried with backoff before any text arrives; errors after text keep the partial answer."),
    code(CHECK + """
from ernie_widget.testing import Fault
from ernie_widget import AuthenticationError, IncompleteStreamError

sim.push(Fault.status(429, retry_after=0.2), Answer(text="retried fine"))
reply = client.chat("hello")
print(reply.text, "| retries:", reply.metrics.retries)

sim.push(Fault.cut(after_chunks=2, answer=Answer(text="this answer is cut off", chunk_size=5)))
try:
    client.chat("hello")
except IncompleteStreamError as err:
    print(type(err).__name__, "| partial:", repr(err.partial_text))

sim.push(Fault.status(401))
try:
    client.chat("hello")
except AuthenticationError as err:
    print(type(err).__name__, "| key shown?", "not-a-real-key" in str(err))
"""),
    md("## Web search with citations · 联网搜索与引用\n\nWith `web_search`, ERNIE searches the web, marks what it "
       "used with `^[n]^` and sends the sources with the answer\n(`reply.search_results`). "
       "`ErnieChat(web_search=True)` lists them under each answer and links the markers;\n"
       "`%%ernie --search` does the same in the cell output."),
    code(CHECK + """
sim.push(Answer(text="ERNIE 4.5 系列已开源^[1]^。", search_results=[
    {"index": 1, "url": "https://yiyan.baidu.com/blog/posts/ernie4.5/", "title": "ERNIE 4.5 技术报告"}]))
reply = client.chat("ERNIE 4.5 开源了吗？", web_search=True)
print(reply.text)
for source in reply.search_results:
    print(f"[{source['index']}] {source['title']} — {source['url']}")
"""),
    md("## Async"),
    code(CHECK + """
from ernie_widget import AsyncErnie

sim.set_answer(text="async works")
aclient = AsyncErnie()
async with aclient.stream("hi") as stream:
    async for event in stream:
        pass
print(stream.reply.text)
await aclient.aclose()
"""),
    code(IGNORE + "sim.stop()"),
]

CONNECT = [
    md("""
# Connect to ERNIE · 连接文心一言

| provider | what you set | base URL |
|---|---|---|
| `qianfan` (v2) | `QIANFAN_API_KEY=bce-v3/ALTAK-…` | `https://qianfan.baidubce.com/v2` |
| `qianfan-v1` | `QIANFAN_AK`, `QIANFAN_SK` | `https://aip.baidubce.com` |
| `aistudio` | `AISTUDIO_ACCESS_TOKEN` | `https://aistudio.baidu.com/llm/lmapi/v3` |
| `openai` | `ERNIE_BASE_URL` (+ `ERNIE_API_KEY`) | FastDeploy / vLLM / llama.cpp |
| `local` | nothing (`pip install 'ernie-widget[local]'`) | in process |

In a notebook, `%ernie --login` asks for a key with a hidden prompt and keeps it for this session only.
Keys never appear in outputs, widget state, logs or error messages.

In this notebook the protocol simulator stands in for the cloud: only the base URL differs.
"""),
    code(SIM_SETUP),
    code("%load_ext ernie_widget"),
    code(CHECK + "%ernie --list"),
    code(IGNORE + "%ernie --doctor"),
    md("Qianfan v1 uses AK/SK to get an OAuth token (cached, refreshed once when it expires):"),
    code(CHECK + """
from ernie_widget import Ernie

v1 = Ernie("qianfan-v1", api_key="demo-ak", secret_key="demo-sk", base_url=sim.base_url("qianfan-v1"))
print(v1)
print(v1.chat("你好").text)
"""),
    md("Any OpenAI-compatible server (FastDeploy, vLLM, llama.cpp serving ERNIE-4.5 weights):"),
    code(CHECK + """
local_server = Ernie("openai", base_url=sim.base_url("openai"), model="ERNIE-4.5-0.3B")
print(local_server.chat("hi").text)
"""),
    code(CHECK + """
%ernie -p qianfan hello from the magic
"""),
    code(IGNORE + "sim.stop()"),
]

BATCH = [
    md("""
# Batch over data · 批量处理

`client.map` runs one prompt template over thousands of rows: bounded concurrency, a progress bar, retries per
row, a failing row never stops the batch, and a crash-safe SQLite cache so a re-run sends only what is missing.
Install with `pip install 'ernie-widget[batch]'`. Here the protocol simulator stands in for the cloud (it echoes
the prompt); the code is the same against the real service.
"""),
    code(SIM_SETUP),
    code(CHECK + """
import pandas as pd
from ernie_widget import Ernie

client = Ernie()
cities = pd.DataFrame({"city": ["北京", "上海", "广州", "深圳", "杭州", "成都"], "province": ["京", "沪", "粤", "粤", "浙", "川"]})
df = client.map("把 {city}（{province}）翻译成英文，只回答译名", cities, concurrency=4, progress=False)
df
"""),
    md("A DataFrame in gives a copy back with `ernie_text`, `ernie_error` and `ernie_tokens`. Rows come back in "
       "input order even when they finish out of order. With `progress=True` (the default) a bar shows rows, "
       "tokens and rows/s, at most ten updates a second:"),
    code(IGNORE + """
result = client.map([f"第 {i} 题：1 + {i} = ?" for i in range(200)], concurrency=16)
len(result), result.usage_total.total_tokens > 0
"""),
    md("## A failing row is kept, not fatal · 单行失败不影响整体\n\n"
       "429 and 5xx are retried per row; other errors are recorded and the batch goes on "
       "(`on_error=\"raise\"` stops it and names the row)."),
    code(CHECK + """
from ernie_widget.testing import Fault

sim.push(Fault.status(503), Answer(text="第二次成功 / fine on the retry"), Fault.status(400))
result = client.map(["一", "二"], concurrency=1, progress=False)
for row in result:
    print(row.index, repr(row.text), type(row.error).__name__ if row.error else None)
"""),
    md("## Resume after a crash · 断点续跑\n\n"
       "With `cache=` every finished row is committed as it completes (keyed by model, params and messages). "
       "Run the same batch again, after a kernel restart or a crash, and only missing rows are sent."),
    code(CHECK + """
import tempfile, pathlib

cache = pathlib.Path(tempfile.mkdtemp()) / "cities.sqlite"
before = len(sim.chat_requests)
client.map("Describe {city} in five words.", cities, cache=cache, progress=False)
first_run = len(sim.chat_requests) - before
again = client.map("Describe {city} in five words.", cities, cache=cache, progress=False)
print("sent the first time:", first_run, "| sent again:", len(sim.chat_requests) - before - first_run)
print(again["ernie_text"].notna().all())
"""),
    md("## `%%ernie --over`: the cell body is the template"),
    code("%load_ext ernie_widget"),
    code(IGNORE + """
%%ernie --over cities --out translated
{city} 的英文名是什么？
"""),
    code(CHECK + 'translated[["city", "ernie_text"]].head(3)'),
    md("## Async\n\n`AsyncErnie.map` is the same on your own event loop (here: the notebook's)."),
    code(CHECK + """
from ernie_widget import AsyncErnie

async with AsyncErnie() as aclient:
    texts = (await aclient.map(["a", "b", "c"], concurrency=3, progress=False)).texts
texts
"""),
    code(IGNORE + "sim.stop()"),
]

GATEWAY = [
    md("""
# A gateway for teams · 团队网关

One server holds the Qianfan key; notebooks stream through it with keys of their own (or JWTs), per-user
RPM/TPM limits and daily token budgets. Nobody's notebook ever holds the service key. On a real server:

```bash
ernie-widget serve keys add alice --rpm 60 --daily-tokens 200000   # prints alice's key once
QIANFAN_API_KEY=… ernie-widget serve --host 0.0.0.0 --port 8787
```

Here both the service (the protocol simulator) and the gateway run inside this kernel, so the notebook is
self-contained. Install with `pip install 'ernie-widget[gateway]'`.
"""),
    code(SIM_SETUP),
    code(IGNORE + """
import pathlib, tempfile
from ernie_widget.gateway import GatewaySettings, KeyStore, create_app
from ernie_widget.gateway.embedded import GatewayThread

keys = KeyStore(pathlib.Path(tempfile.mkdtemp()) / "keys.sqlite")
alice_key = keys.add("alice", rpm=5)          # shown once; only its HMAC digest is stored
settings = GatewaySettings(provider="qianfan", base_url=sim.base_url("qianfan"))   # the service key: from the env
gateway = GatewayThread(create_app(settings, keys=keys)).start()
print("gateway at", gateway.url)
"""),
    md("## A notebook on the team · 团队成员的笔记本\n\n"
       "Any OpenAI-compatible client works: `Ernie(provider=\"openai\")`, `ErnieChat`, the magics, the openai SDK."),
    code(CHECK + """
import os
from ernie_widget import Ernie, ErnieChat

for name in ("QIANFAN_API_KEY", "ERNIE_PROVIDER", "ERNIE_BASE_URL"):
    os.environ.pop(name, None)             # the team's notebooks have no service key at all
team = Ernie("openai", base_url=gateway.url + "/v1", api_key=alice_key, max_retries=0)
print(team.chat("你好").text)
print("key in the repr?", alice_key in repr(team))
"""),
    code(CHECK + """
for event in team.stream("流式输出"):
    if event.type == "text":
        print(event.text, end="|")
"""),
    code(CHECK + """
chat = ErnieChat(team)
chat
"""),
    md("## Limits answer 429 with Retry-After · 限流\n\nAlice may send 5 requests a minute; she has used 2."),
    code(CHECK + """
from ernie_widget import RateLimitError

for i in range(4):
    try:
        team.chat(f"question {i}")
        print(i, "ok")
    except RateLimitError as err:
        print(i, type(err).__name__, "| retry after a while:", err.retry_after is not None and err.retry_after > 0)
"""),
    md("## Metrics for the operator\n\n`GET /metrics` is Prometheus text: requests, errors by code, TTFT and "
       "duration histograms, tokens in and out, streams in flight."),
    code(CHECK + """
import httpx2

metrics = httpx2.get(gateway.url + "/metrics").text
for line in metrics.splitlines():
    if line.startswith(("ernie_gateway_requests_total", "ernie_gateway_errors_total")):
        print(line)
"""),
    code(IGNORE + """
gateway.stop()
sim.stop()
"""),
]


TOOLS = [
    md("""
# Tools, structured output, web search · 工具调用、结构化输出与联网搜索

ERNIE can ask to call your functions, answer in JSON that matches a schema, and search the web with citations.
Here the protocol simulator plays the model — it answers what each cell scripts with `sim.push(...)` — so every
step is visible and repeatable.
"""),
    code(SIM_SETUP),
    md("## A function is a tool · 函数即工具\n\nThe JSON Schema the model sees comes from the signature, the type "
       "hints and the docstring:"),
    code(CHECK + """
import json
from typing import Literal
from ernie_widget import Ernie
from ernie_widget.client import tool

def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict:
    \"\"\"Current weather for a city.

    Args:
        city: The city, e.g. 北京.
        unit: Celsius or Fahrenheit.
    \"\"\"
    temps = {"北京": 3, "上海": 11}
    t = temps.get(city, 20)
    return {"city": city, "temp": t if unit == "c" else round(t * 9 / 5 + 32), "unit": unit}

print(json.dumps(tool(get_weather).spec(), ensure_ascii=False, indent=1))
"""),
    md("## `run_tools`: the whole loop · 完整的调用循环\n\nAsk; run the calls the model asks for; send the "
       "results back; repeat until it answers. `approve` sees every call first: `True` runs it, `False` declines "
       "(the model is told), a dict runs it with edited arguments."),
    code(CHECK + """
client = Ernie()
sim.push(Answer(text="我来查一下。", tool_calls=[{"name": "get_weather", "arguments": {"city": "北京"}},
                                            {"name": "get_weather", "arguments": {"city": "上海"}}]),
         Answer(text="北京 3°C，上海 11°C。"))

def approve(call):
    print(f"approve? {call.name}({call.arguments})")
    return True

run = client.run_tools("北京和上海现在多少度？", [get_weather], approve=approve)
for r in run.results:
    print(r.status, r.call.name, r.content)
print(run.text)
"""),
    md("Every step is also an event, for a UI that shows the call forming, the result, then the answer:"),
    code(CHECK + """
sim.push(Answer(tool_calls=[{"name": "get_weather", "arguments": {"city": "北京", "unit": "f"}}], chunk_size=6),
         Answer(text="北京 37°F。"))
for ev in client.stream_tools("北京多少华氏度？", [get_weather]):
    if ev.type == "tool_call_delta":
        print("forming:", ev.tool_call.name, repr(ev.tool_call.arguments))
    elif ev.type in ("tool_call", "tool_result", "text"):
        print(ev.type + ":", ev.text)
"""),
    md("A tool that raises is reported to the model, not raised; so are unknown tools and arguments that do not fit:"),
    code(CHECK + """
def divide(a: float, b: float) -> float:
    \"\"\"Divide a by b.\"\"\"
    return a / b

sim.push(Answer(tool_calls=[{"name": "divide", "arguments": {"a": 1, "b": 0}}]), Answer(text="不能除以零。"))
run = client.run_tools("1/0?", [divide])
print(run.results[0].status, "·", run.results[0].content)
print(run.text)
"""),
    md("## Structured output · 结构化输出\n\n`schema=` takes a pydantic model (or a JSON Schema dict): the answer "
       "is asked for as JSON, validated into `reply.parsed`, and an invalid answer gets one repair round trip "
       "before `StructuredOutputError`."),
    code(CHECK + """
from pydantic import BaseModel

class Person(BaseModel):
    name: str
    age: int

sim.push(Answer(text='{"name": "李雷", "age": "thirty"}'),   # invalid: age is not a number…
         Answer(text='{"name": "李雷", "age": 30}'))          # …so the model is asked once more
reply = client.chat("李雷今年三十岁。提取人物。", schema=Person)
reply.parsed
"""),
    md("Over a DataFrame, each field becomes a typed column, named `ernie_<field>` so it cannot collide with yours "
       "(`%%ernie --over notes --schema Person` does the same):"),
    code(CHECK + """
import pandas as pd

notes = pd.DataFrame({"note": ["李雷，30 岁", "韩梅梅，28 岁"]})
for text in ('{"name": "李雷", "age": 30}', '{"name": "韩梅梅", "age": 28}'):
    sim.push(Answer(text=text))
people = client.map("提取人物：{note}", notes, schema=Person, concurrency=1, progress=False)
people[["note", "ernie_name", "ernie_age"]]
"""),
    code(CHECK + 'people.dtypes[["ernie_name", "ernie_age"]]'),
    md("## Web search with citations · 联网搜索与引用\n\n`web_search=True` asks ERNIE to search; the sources come "
       "back with the answer, and `reply.citations` maps the `^[n]^` markers in the text to them (ErnieChat shows "
       "them as links under the answer)."),
    code(CHECK + """
sim.push(Answer(text="ERNIE 4.5 已于 2025 年开源^[1]^，权重可在 Hugging Face 获取^[2]^。",
                search_results=[{"index": 1, "url": "https://example.com/ernie-4.5", "title": "ERNIE 4.5 开源"},
                                {"index": 2, "url": "https://example.org/weights", "title": "Model weights"}]))
reply = client.chat("ERNIE 4.5 开源了吗？", web_search=True)
print(reply.text)
for n, source in reply.citations.items():
    print(n, source["title"], source["url"])
"""),
    code(IGNORE + "sim.stop()"),
]


def write(name: str, cells: list[nbformat.NotebookNode]) -> None:
    nb = new_notebook(cells=cells)
    # exactly what JupyterLab writes when the kernel starts (ipykernel's spec): anything else marks the notebook
    # modified as soon as it is opened (tests/e2e/test_tour_notebooks_e2e.py)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = NB / name
    nbformat.write(nb, path)
    print("wrote", path)


if __name__ == "__main__":
    NB.mkdir(exist_ok=True)
    write("01-quickstart.ipynb", QUICKSTART)
    write("02-code-generation.ipynb", CODEGEN)
    write("03-client-api.ipynb", CLIENT)
    write("04-connect-to-ernie.ipynb", CONNECT)
    write("05-batch-over-data.ipynb", BATCH)
    write("06-team-gateway.ipynb", GATEWAY)
    write("07-tools-and-structured-output.ipynb", TOOLS)
