"""A dead endpoint fails after the short connect timeout, says how long the whole wait was, and where to look.

Before: a host that never answered the TCP handshake showed "Answering…" for three 60 s attempts, then said
"no response within 60s". The dead host here is real: a listening socket whose accept queue is full, so the
kernel drops further SYNs and a connect hangs exactly as it does against a firewalled or vanished server.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from ernie_widget import ErnieChat
from ernie_widget.client import APITimeoutError, Ernie

from .kernel_side import Sent, capture_comm


@pytest.fixture
def dead_port() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the accept queue (never accepted): later handshakes get no answer
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.1)
    probe = socket.socket()
    probe.settimeout(0.5)
    with pytest.raises(TimeoutError):  # precondition: this port really is dead
        probe.connect(("127.0.0.1", port))
    probe.close()
    yield port
    for c in fillers:
        c.close()
    server.close()


def test_a_dead_host_fails_after_the_connect_timeout_not_the_first_byte_wait(dead_port: int) -> None:
    client = Ernie("openai", base_url=f"http://127.0.0.1:{dead_port}/v1", connect_timeout=0.5, timeout=30,
                   max_retries=2)
    t0 = time.monotonic()
    with pytest.raises(APITimeoutError) as info:
        client.chat("hi")
    elapsed = time.monotonic() - t0
    client.close()
    assert 1.5 <= elapsed < 10, elapsed  # three 0.5 s connects plus backoff, far from 3 × 30 s
    message = str(info.value)
    assert f"could not connect to 127.0.0.1:{dead_port} within 0.5s" in message
    assert "3 attempts over" in message and "%ernie --doctor" in message


def test_connect_timeout_is_never_longer_than_timeout(dead_port: int) -> None:
    client = Ernie("openai", base_url=f"http://127.0.0.1:{dead_port}/v1", timeout=0.4, max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(APITimeoutError):
        client.chat("hi")
    assert time.monotonic() - t0 < 3
    client.close()


def test_the_widget_tells_the_front_end_which_host_it_connects_to(dead_port: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    sent: Sent = capture_comm(monkeypatch)
    client = Ernie("openai", base_url=f"http://127.0.0.1:{dead_port}/v1", connect_timeout=0.3, max_retries=0)
    chat = ErnieChat(client)
    answer = chat.ask("hi").wait(10)
    assert answer["status"] == "error" and "could not connect" in answer["error"]
    [start] = sent.custom("start")
    assert start["host"] == f"127.0.0.1:{dead_port}"
    client.close()
