"""`ernie-widget serve` as a real process: SIGTERM drains, unauthenticated clients cannot exhaust it.

Each test starts ``python -m ernie_widget.gateway`` in front of the simulator and talks to it over real
sockets; the shutdown test sends a real SIGTERM.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import resource
import signal
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ernie_widget.gateway.testing import GatewayProcess
from ernie_widget.testing import Answer, ErnieSimulator, Fault

pytestmark = pytest.mark.timeout(90)

MSG = [{"role": "user", "content": "hi"}]


def _gateway(sim: ErnieSimulator, *args: str, **kw: Any) -> GatewayProcess:
    return GatewayProcess(["--no-auth", "--provider", "qianfan", "--base-url", sim.base_url("qianfan"),
                           "--max-concurrency", "8", *args], env=sim.env("qianfan"), **kw)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _data(lines: list[str]) -> list[str]:
    return [ln[6:] for ln in lines if ln.startswith("data: ")]


def test_sigterm_drains_then_ends_what_is_left_explicitly_and_exits_0(ernie_simulator: ErnieSimulator) -> None:
    sim = ernie_simulator
    short = Answer(text="s" * 40, chunk_size=2, delay=0.04)  # ~0.8 s: finishes within the grace period
    long = Answer(text="l" * 400, chunk_size=2, delay=0.04)  # ~8 s: does not
    with _gateway(sim, "--shutdown-grace", "2") as gw, httpx.Client(timeout=20) as http, \
            contextlib.ExitStack() as stack:
        assert gw.proc is not None
        streams = []
        for answer in (short, long):
            sim.push(answer)
            r = stack.enter_context(http.stream("POST", gw.url + "/v1/chat/completions",
                                                json={"stream": True, "messages": MSG}))
            lines = r.iter_lines()
            first = next(ln for ln in lines if ln.startswith("data: "))  # the answer is under way
            streams.append(itertools.chain([first], lines))
        sim.push(long)
        ws = stack.enter_context(connect(gw.url.replace("http://", "ws://") + "/v1/ws", open_timeout=5))
        ws.send(json.dumps({"type": "auth", "token": "x"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        ws.send(json.dumps({"type": "chat", "mid": 7, "messages": MSG}))
        assert json.loads(ws.recv(timeout=5))["type"] == "delta"

        sim.push(Fault.stall(after_chunks=0, seconds=30))  # no first token: the answer waits for its status
        stalled: list[httpx.Response] = []
        waiter = threading.Thread(target=lambda: stalled.append(
            http.post(gw.url + "/v1/chat/completions", json={"stream": True, "messages": MSG})))
        waiter.start()
        deadline = time.monotonic() + 5
        while len(sim.chat_requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)

        gw.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        time.sleep(0.2)
        health = http.get(gw.url + "/healthz")
        assert health.status_code == 503 and health.json()["status"] == "draining"
        refused = http.post(gw.url + "/v1/chat/completions", json={"messages": MSG})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "server_shutdown"

        finished = _data(list(streams[0]))
        assert finished[-1] == "[DONE]"  # finished within the grace period, in full
        chunks = [json.loads(d) for d in finished[:-1]]
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "s" * 40
        cut = _data(list(streams[1]))
        waited = time.monotonic() - sent
        assert json.loads(cut[-1])["error"]["code"] == "server_shutdown" and "[DONE]" not in cut
        assert 1.8 <= waited < 8

        seen: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                seen.append(json.loads(ws.recv(timeout=10)))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert json.loads(closed.value.rcvd.reason.removeprefix("server_shutdown ")) == {
            "resume": [{"mid": 7, "seq": seen[-1]["resume"][0]["seq"]}]}
        assert [m for m in seen if m["type"] == "error"][-1]["code"] == "server_shutdown"
        assert seen[-1]["type"] == "shutdown" and seen[-1]["resume"][0]["mid"] == 7
        waiter.join(timeout=10)
        assert stalled[0].status_code == 503 and stalled[0].json()["error"]["code"] == "server_shutdown"
        assert gw.proc.wait(timeout=10) == 0
    log = [json.loads(ln) for ln in gw.output().splitlines() if ln.startswith("{")]
    assert sorted(r["status"] for r in log if r.get("transport") in ("http", "ws")) == [200, 503, 503, 503, 503]


def test_idle_and_slow_header_floods_cannot_starve_the_server(ernie_simulator: ErnieSimulator) -> None:
    def bounded() -> None:  # a small open-file limit, as a container might have
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    with _gateway(ernie_simulator, "--header-timeout", "1", preexec_fn=bounded) as gw, \
            httpx.Client(timeout=3) as http:
        # 256 - 8 upstream - 64 for the process itself - 32 for one burst of accepts
        assert "at most 152 connections" in gw.output()
        flood: list[socket.socket] = []
        stop = threading.Event()
        slow_closed: list[float] = []

        def slow_headers(s: socket.socket) -> None:
            start = time.monotonic()
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                while not stop.is_set():
                    s.sendall(b"X-Slow: y\r\n")  # never the blank line
                    time.sleep(0.2)
            except OSError:
                slow_closed.append(time.monotonic() - start)

        threads = []
        for i in range(400):
            s = socket.socket()
            s.settimeout(0.2)
            with contextlib.suppress(OSError):
                s.connect((gw.host, gw.port))
            flood.append(s)
            if i % 10 == 0:
                threads.append(threading.Thread(target=slow_headers, args=(s,), daemon=True))
                threads[-1].start()
        try:
            answered = []
            for _ in range(6):  # the server keeps answering while the flood sits there
                answered.append(http.get(gw.url + "/healthz").status_code)
                time.sleep(0.2)
            assert answered == [200] * 6
            time.sleep(1.5)
            closed = 0
            for s in flood[:100]:  # idle since before the header timeout: the server closed them
                s.settimeout(0.5)
                try:
                    closed += s.recv(1) == b""
                except OSError:
                    closed += 1
            assert closed == 100
            assert len(slow_closed) == len(threads) and max(slow_closed) < 4
            assert gw.proc is not None and gw.proc.poll() is None
            assert "Too many open files" not in gw.output()
        finally:
            stop.set()
            for s in flood:
                s.close()


def test_a_huge_websocket_frame_is_refused_before_auth_without_reading_it(ernie_simulator: ErnieSimulator) -> None:
    with _gateway(ernie_simulator) as gw:
        assert gw.proc is not None
        url = gw.url.replace("http://", "ws://") + "/v1/ws"
        before = _rss_kb(gw.proc.pid)
        for size in (12 << 20, 100 << 10):
            with connect(url, open_timeout=5, max_size=None) as ws:
                started = time.monotonic()
                with pytest.raises(ConnectionClosed) as closed:
                    ws.send("x" * size)
                    ws.recv(timeout=5)
                assert time.monotonic() - started < 5
                if closed.value.rcvd is not None:  # the close frame, when it arrived before the send broke
                    assert closed.value.rcvd.code == 1009
        grown = _rss_kb(gw.proc.pid) - before
        assert grown < 4096, f"the server grew by {grown} KiB"
        with connect(url, open_timeout=5) as ws:  # an ordinary client is unaffected
            ws.send(json.dumps({"type": "auth", "token": "x"}))
            assert json.loads(ws.recv(timeout=5))["type"] == "ready"


def test_at_the_connection_cap_with_nobody_to_evict_a_new_connection_gets_a_503(
        ernie_simulator: ErnieSimulator) -> None:
    with _gateway(ernie_simulator, "--max-connections", "3") as gw, contextlib.ExitStack() as stack:
        url = gw.url.replace("http://", "ws://") + "/v1/ws"
        for _ in range(3):  # three connections past their headers: none may be evicted
            ws = stack.enter_context(connect(url, open_timeout=5))
            ws.send(json.dumps({"type": "auth", "token": "x"}))
            assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        r = httpx.get(gw.url + "/healthz", timeout=5)
        assert r.status_code == 503 and r.json()["error"]["code"] == "too_many_connections"
        assert " / " in r.json()["error"]["message"] and r.headers["retry-after"] == "1"
        stack.close()  # room again
        time.sleep(0.2)
        assert httpx.get(gw.url + "/healthz", timeout=5).status_code == 200
