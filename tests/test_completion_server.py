"""The inline completion server extension in a real `jupyter server`, over real sockets, against the simulator.

One server for the module (a start costs a few seconds of CI): Qianfan v2 pointed at the protocol simulator
with a canary key, the extension enabled by the very config file the wheel ships.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ernie_widget.testing import Answer, ErnieSimulator

from .processes import ShippedConfigServer

TOKEN = "completion-test-token"
#: the server's key: no response may ever carry it
CANARY = "bce-v3/ALTAK-canary0000completion/canarysecret9999"
PATH = "/ernie-widget/completion"


class Server(ShippedConfigServer):
    """A `jupyter server` subprocess with the extension enabled through the shipped config file."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        super().__init__(root, env, TOKEN)

    def ready(self) -> bool:
        return self.request("GET", PATH + "/status").status == 200

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(self, method: str, path: str, body: bytes | None = None, *, auth: bool = True,
                headers: dict[str, str] | None = None) -> Reply:
        conn = self.connection()
        try:
            headers = {"Content-Type": "application/json", **(headers or {})}
            if auth:
                headers["Authorization"] = f"token {TOKEN}"
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return Reply(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def __post_init__(self) -> None:
        assert not leaks(self), "the server's key reached the browser"

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]

    def json(self) -> Any:
        return json.loads(self.body)


def leaks(reply: Reply | Any) -> bool:
    """Whether the canary key (or its secret part) is anywhere in a response's status, headers or body."""
    raw = json.dumps({"status": reply.status, "headers": dict(reply.headers)}).encode() + reply.body
    raw = raw.replace(b"\\/", b"/")  # a JSON-escaped slash must not hide it
    return CANARY.encode() in raw or CANARY.rsplit("/", 1)[-1].encode() in raw


@pytest.fixture(scope="module")
def sim() -> Iterator[ErnieSimulator]:
    with ErnieSimulator() as sim:
        yield sim


@pytest.fixture(scope="module")
def server(sim: ErnieSimulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("completion-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QIANFAN", "AISTUDIO", "ERNIE_"))}
    env.update(sim.env("qianfan", api_key=CANARY))
    env.update({"JUPYTER_CONFIG_DIR": str(root / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
                "JUPYTER_DATA_DIR": str(root / ".data"), "ERNIE_QUIET": "1", "NO_PROXY": "127.0.0.1,localhost"})
    srv = Server(root, env)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _fresh(sim: ErnieSimulator) -> None:
    sim.clear()
    sim.set_answer(Answer())


def body(**fields: Any) -> bytes:
    return json.dumps({"prefix": "def add(a, b):\n    ", "suffix": "", "language": "python",
                       "cell_type": "code", "context": ["import math"], **fields}).encode()


def test_streams_growing_ndjson_lines_then_done(server: Server, sim: ErnieSimulator) -> None:
    sim.set_answer(text="return a + b  # 加法", chunk_size=3, delay=0.01)
    reply = server.request("POST", PATH, body())
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/x-ndjson")
    lines = reply.lines()
    updates = [line["text"] for line in lines if "done" not in line]
    assert len(updates) >= 3, lines  # streamed: the text grew over several lines
    assert all(b.startswith(a) for a, b in itertools.pairwise(updates))
    assert lines[-1] == {"done": True, "text": "return a + b  # 加法"}
    sent = sim.chat_requests[-1]
    assert sent.model == "ernie-speed-128k"  # the server's default completion model
    prompt = sent.messages[-1]["content"]
    assert "def add(a, b):\n    <CURSOR>" in prompt and "import math" in prompt


def test_lines_arrive_as_they_are_generated(server: Server, sim: ErnieSimulator) -> None:
    sim.set_answer(text="x" * 40, chunk_size=4, delay=0.1)  # ten chunks over a second
    conn = server.connection()
    conn.request("POST", PATH, body=body(), headers={"Authorization": f"token {TOKEN}"})
    resp = conn.getresponse()
    start = time.monotonic()
    first = json.loads(resp.readline())
    assert time.monotonic() - start < 0.7 and first["text"]  # not held until the answer ends (1 s)
    conn.close()


def test_closing_the_request_closes_upstream_at_once(server: Server, sim: ErnieSimulator) -> None:
    sim.set_answer(text="y" * 400, chunk_size=2, delay=0.05)  # ten seconds of stream
    conn = server.connection()
    conn.request("POST", PATH, body=body(), headers={"Authorization": f"token {TOKEN}"})
    resp = conn.getresponse()
    assert json.loads(resp.readline())["text"]
    assert ErnieSimulator.wait_for(lambda: sim.chat_requests and sim.chat_requests[-1].chunks_sent > 0)
    closed = time.monotonic()
    assert conn.sock is not None
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    upstream = sim.chat_requests[-1]
    # the simulator watches its socket while it streams: `finished` is stamped when it sees the close (EOF),
    # `disconnected` says the answer was not complete then
    assert ErnieSimulator.wait_for(lambda: upstream.finished is not None, timeout=5)
    assert upstream.disconnected  # the server closed it: the answer had seconds left
    took = upstream.finished - closed  # type: ignore[operator]
    print(f"upstream closed {took * 1000:.1f} ms after the browser")
    assert took < 0.15, f"upstream closed {took * 1000:.0f} ms after the browser"


def test_closing_before_the_first_token_closes_upstream_too(server: Server, sim: ErnieSimulator) -> None:
    # the usual case: the next keystroke comes while the model is still thinking about the first token
    sim.latency = 2.0
    try:
        conn = server.connection()
        conn.request("POST", PATH, body=body(), headers={"Authorization": f"token {TOKEN}"})
        assert ErnieSimulator.wait_for(lambda: bool(sim.chat_requests))
        upstream = sim.chat_requests[-1]
        closed = time.monotonic()
        assert conn.sock is not None
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        assert ErnieSimulator.wait_for(lambda: upstream.finished is not None, timeout=5)
        assert upstream.disconnected and upstream.chunks_sent == 0
        took = upstream.finished - closed  # type: ignore[operator]
        assert took < 0.15, f"upstream closed {took * 1000:.0f} ms after the browser"
    finally:
        sim.latency = 0.0


def test_an_endless_answer_is_cut_and_closed(server: Server, sim: ErnieSimulator) -> None:
    sim.set_answer(text="z" * 20000, chunk_size=50, delay=0.005)  # a server that ignores max_tokens
    reply = server.request("POST", PATH, body())
    assert reply.lines()[-1] == {"done": True, "text": "z" * 2000}
    upstream = sim.chat_requests[-1]
    assert ErnieSimulator.wait_for(lambda: upstream.finished is not None) and upstream.disconnected


@pytest.mark.parametrize("extra", [{"base_url": "http://evil.example/v2"}, {"model": "ernie-4.0-8k"},
                                   {"provider": "openai"}, {"url": "http://evil.example"}, {"api_key": "x"},
                                   {"anything": 1}])
def test_fields_beyond_the_text_are_refused(server: Server, sim: ErnieSimulator, extra: dict[str, Any]) -> None:
    reply = server.request("POST", PATH, body(**extra))
    assert reply.status == 400
    error = reply.json()["error"]
    assert error["code"] == "invalid_request"
    assert next(iter(extra)) in error["message"] and " / " in error["message"]  # bilingual, names the field
    assert "evil" not in error["message"]  # never echoes the value
    assert not sim.chat_requests


@pytest.mark.parametrize("raw", [b"not json", b"[]", json.dumps({"prefix": 1}).encode(),
                                 json.dumps({"prefix": "", "cell_type": "raw"}).encode()])
def test_malformed_bodies_are_refused(server: Server, raw: bytes) -> None:
    reply = server.request("POST", PATH, raw)
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_request"


def test_huge_body_is_refused_with_413(server: Server, sim: ErnieSimulator) -> None:
    sim.set_answer(text="ok")  # not the echo of the prompt
    for size in (256 * 1024 + 1, 8 * 1024 * 1024):  # just over the limit, and far over it (read, not kept)
        raw = body(prefix="a" * size)
        reply = server.request("POST", PATH, raw)
        assert reply.status == 413 and reply.json()["error"]["code"] == "too_large"
    assert server.request("POST", PATH, body(prefix="a" * (200 * 1024))).status == 200  # under it: fine
    assert len(sim.chat_requests) == 1


def test_long_text_is_trimmed_keeping_what_is_nearest_the_cursor(server: Server, sim: ErnieSimulator) -> None:
    prefix = "FAR_AWAY\n" + "p = 1\n" * 5000 + "near_cursor = "
    suffix = "\nafter_cursor()" + "\nq = 2" * 5000 + "\nSUFFIX_END"
    cells = ["OLDEST_CELL\n" + "c = 3\n" * 2000, "nearest_cell = 4"]
    sim.set_answer(text="1")  # not the echo of a 15,000-character prompt
    reply = server.request("POST", PATH, body(prefix=prefix, suffix=suffix, context=cells))
    assert reply.status == 200 and reply.lines()[-1]["done"]
    prompt = sim.chat_requests[-1].messages[-1]["content"]
    assert "near_cursor = <CURSOR>\nafter_cursor()" in prompt and "nearest_cell = 4" in prompt
    assert "FAR_AWAY" not in prompt and "SUFFIX_END" not in prompt and "OLDEST_CELL" not in prompt
    assert len(prompt) < 15000


def test_unauthenticated_requests_are_refused(server: Server, sim: ErnieSimulator) -> None:
    assert server.request("POST", PATH, body(), auth=False).status in (401, 403)
    assert server.request("GET", PATH + "/status", auth=False).status in (401, 403)
    # past the XSRF check (a matching cookie and header), it is the authentication that refuses
    xsrf = {"Cookie": "_xsrf=completion-xsrf-0123", "X-XSRFToken": "completion-xsrf-0123"}
    assert server.request("POST", PATH, body(), auth=False, headers=xsrf).status in (401, 403)
    assert server.request("POST", PATH, body(), auth=False,
                          headers={"Authorization": "token not-the-token", **xsrf}).status in (401, 403)
    assert not sim.chat_requests


def test_key_never_reaches_the_browser_and_the_check_would_see_it(server: Server, sim: ErnieSimulator) -> None:
    # the simulator echoes the prompt back: a key pasted into the cell must come back redacted
    reply = server.request("POST", PATH, body(prefix=f"key = '{CANARY}'\nprint(", context=[f"K = '{CANARY}'"]))
    assert reply.status == 200 and "You said" in reply.lines()[-1]["text"]
    sent = sim.chat_requests[-1]
    assert CANARY not in json.dumps(sent.json, ensure_ascii=False)  # redacted before it went upstream
    # the canary: the same check, run on what the server sent upstream, finds the key (so it would have found
    # it in any response above, each of which it checked)
    upstream = Reply.__new__(Reply)
    upstream.status, upstream.headers, upstream.body = 200, dict(sent.headers), sent.body
    assert leaks(upstream)
    sim.push(Answer(text=f"here is the key {CANARY}"))  # and a model that answers with it is redacted too
    assert CANARY not in server.request("POST", PATH, body()).lines()[-1]["text"]


def test_upstream_failure_is_one_bilingual_error_line(server: Server, sim: ErnieSimulator) -> None:
    from ernie_widget.testing import Fault

    sim.push(Fault.status(401), Fault.status(401))
    reply = server.request("POST", PATH, body())
    assert reply.status == 200
    (line,) = reply.lines()
    assert line["error"]["code"] == "AuthenticationError" and " / " in line["error"]["message"]
    assert "Traceback" not in reply.body.decode()


def test_status_names_provider_model_and_source(server: Server) -> None:
    reply = server.request("GET", PATH + "/status")
    assert reply.status == 200
    assert reply.json() == {"provider": "qianfan", "model": "ernie-speed-128k", "source": "environment",
                            "ready": True, "message": reply.json()["message"]}


# -- the offline model: no key on the server --------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from ernie_widget.client.config import local_available

    if not local_available():
        pytest.skip("the offline model (ernie-widget[local]) is not installed")
    root = tmp_path_factory.mktemp("completion-offline")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QIANFAN", "AISTUDIO", "ERNIE_"))}
    env.update({"JUPYTER_CONFIG_DIR": str(root / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
                "JUPYTER_DATA_DIR": str(root / ".data"), "ERNIE_QUIET": "1", "ERNIE_LOCAL_THREADS": "1"})
    srv = Server(root, env)
    try:
        yield srv
    finally:
        srv.stop()


def test_without_a_key_the_offline_model_answers_off_the_event_loop(offline_server: Server) -> None:
    status = offline_server.request("GET", PATH + "/status").json()
    assert status["provider"] == "local" and status["ready"] and status["source"].startswith("offline model")
    assert status["model"] and status["model"] in status["message"]  # the GGUF the offline model runs
    import threading

    replies: list[Reply] = []
    worker = threading.Thread(target=lambda: replies.append(offline_server.request("POST", PATH, body())))
    worker.start()
    # while the model loads and generates, the server still answers at once: it runs in a worker thread
    waits = []
    while worker.is_alive() and len(waits) < 50:
        start = time.monotonic()
        assert offline_server.request("GET", PATH + "/status").status == 200
        waits.append(time.monotonic() - start)
        time.sleep(0.02)
    worker.join(60)
    assert len(waits) >= 3, "the completion finished before the server could be asked"
    assert max(waits) < 0.5, waits
    (reply,) = replies
    assert reply.status == 200 and reply.lines()[-1].get("done"), reply.body
