"""Connections are pooled: one TCP connection serves consecutive streamed answers."""

from __future__ import annotations

import asyncio

import pytest

from ernie_widget import AsyncErnie, Ernie


@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1", "openai"])
def test_consecutive_streams_reuse_one_connection(ernie_simulator, provider: str) -> None:
    client = Ernie(provider, api_key="bce-v3/ALTAK-pool/secret", secret_key="pool-secret-key",
                   base_url=ernie_simulator.base_url(provider))
    for i in range(5):
        assert client.chat(f"question {i}").text.endswith(f"question {i}")
    requests = ernie_simulator.chat_requests
    chats = [r for r in requests if r.surface != "oauth"]
    assert len(chats) == 5  # precondition: five real requests
    assert len({r.connection for r in chats}) == 1


def test_async_streams_reuse_one_connection(ernie_simulator) -> None:
    async def main() -> None:
        async with AsyncErnie("qianfan", api_key="bce-v3/ALTAK-pool/secret",
                              base_url=ernie_simulator.base_url("qianfan")) as client:
            for i in range(5):
                async with client.stream(f"q{i}") as s:
                    async for _ in s:
                        pass

    asyncio.run(main())
    assert len(ernie_simulator.chat_requests) == 5
    assert len({r.connection for r in ernie_simulator.chat_requests}) == 1
