"""Helpers shared by the client test files (no tests here): run one answer through the sync or async client.

Every client test talks to the protocol simulator over a real socket; `collect` runs the same request
through `Ernie` (the private loop) or `AsyncErnie` (a fresh `asyncio.run`) so each behaviour is checked
on both faces of the client.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from ernie_widget.client import AsyncErnie, Ernie, ErnieError, Reply, StreamEvent
from ernie_widget.testing import ErnieSimulator

MODES = ("sync", "async")
PROVIDERS = ("qianfan", "qianfan-v1", "aistudio", "openai")


def client_args(sim: ErnieSimulator, provider: str, **overrides: Any) -> dict[str, Any]:
    """Constructor arguments that point a client for `provider` at the simulator (explicit, no env)."""
    env = sim.env(provider)
    key = env.get("QIANFAN_API_KEY") or env.get("QIANFAN_AK") or env.get("AISTUDIO_ACCESS_TOKEN") \
        or env.get("ERNIE_API_KEY")
    args: dict[str, Any] = {"provider": provider, "base_url": sim.base_url(provider), "api_key": key,
                            "secret_key": env.get("QIANFAN_SK")}
    args.update(overrides)
    return args


@dataclass
class Outcome:
    """What one streamed answer produced: its events, then a reply or an error."""

    events: list[StreamEvent] = field(default_factory=list)
    reply: Reply | None = None
    error: ErnieError | None = None
    elapsed: float = 0.0

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if e.type == "text")

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def of(self, kind: str) -> list[StreamEvent]:
        return [e for e in self.events if e.type == kind]


def collect(sim: ErnieSimulator, mode: str, provider: str = "qianfan", prompt: Any = "你好",
            stream_kw: dict[str, Any] | None = None, **client_kw: Any) -> Outcome:
    """Stream one answer with a fresh client in `mode`; an ErnieError is captured, not raised."""
    args = client_args(sim, provider, **client_kw)
    stream_kw = stream_kw or {}
    out = Outcome()
    t0 = time.monotonic()
    if mode == "sync":
        with Ernie(**args) as client:
            try:
                with client.stream(prompt, **stream_kw) as s:
                    for ev in s:
                        out.events.append(ev)
                out.reply = s.reply
            except ErnieError as err:
                out.error = err
    else:
        async def run() -> None:
            async with AsyncErnie(**args) as client:
                try:
                    async with client.stream(prompt, **stream_kw) as s:
                        async for ev in s:
                            out.events.append(ev)
                    out.reply = s.reply
                except ErnieError as err:
                    out.error = err

        asyncio.run(run())
    out.elapsed = time.monotonic() - t0
    return out


def chat(sim: ErnieSimulator, mode: str, provider: str = "qianfan", prompt: Any = "你好",
         chat_kw: dict[str, Any] | None = None, **client_kw: Any) -> Reply:
    """`client.chat(...)` with a fresh client in `mode` (errors propagate)."""
    args = client_args(sim, provider, **client_kw)
    chat_kw = chat_kw or {}
    if mode == "sync":
        with Ernie(**args) as client:
            return client.chat(prompt, **chat_kw)

    async def run() -> Reply:
        async with AsyncErnie(**args) as client:
            return await client.chat(prompt, **chat_kw)

    return asyncio.run(run())


def sent_events(req: Any) -> list[Any]:
    """The JSON payloads of the `data:` events the simulator sent for a request ([DONE] skipped)."""
    return [json.loads(e) for e in req.events if e != "[DONE]"]
