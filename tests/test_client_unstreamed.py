"""`AsyncStream(..., stream=False)`: one JSON answer (what batch rows use), same events, errors and retries."""

from __future__ import annotations

import asyncio

import pytest

from ernie_widget import AsyncErnie, AuthenticationError
from ernie_widget.client import AsyncStream
from ernie_widget.client.messages import normalize_messages
from ernie_widget.testing import Fault


def _run(sim, provider: str, prompt: str, *, stream: bool):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        async with AsyncErnie(provider, api_key="bce-v3/ALTAK-unstreamed/secret", secret_key="unstreamed-sk",
                              base_url=sim.base_url(provider), max_retries=1) as client:
            s = AsyncStream(client, normalize_messages(prompt), {}, stream=stream)
            events = [ev.type async for ev in s]
            return events, s.reply

    return asyncio.run(main())


@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1", "aistudio", "openai"])
def test_unstreamed_answer_equals_the_streamed_one(ernie_simulator, provider: str) -> None:
    events, reply = _run(ernie_simulator, provider, "同一个问题", stream=False)
    assert ernie_simulator.chat_requests[-1].stream is False  # precondition: really not streamed
    _, streamed = _run(ernie_simulator, provider, "同一个问题", stream=True)
    assert ernie_simulator.chat_requests[-1].stream is True
    assert reply.text == streamed.text and reply.text.endswith("同一个问题")
    assert events == ["text", "usage", "finish"] and reply.usage is not None


def test_unstreamed_requests_are_retried_and_errors_typed(ernie_simulator) -> None:
    ernie_simulator.push(Fault.status(503))
    _, reply = _run(ernie_simulator, "qianfan", "retry me", stream=False)
    assert reply.metrics.retries == 1 and len(ernie_simulator.chat_requests) == 2
    ernie_simulator.push(Fault.status(401))
    with pytest.raises(AuthenticationError):
        _run(ernie_simulator, "qianfan", "no", stream=False)
