"""`RecordedRequest`: what the simulator saw and what it did, one per HTTP request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecordedRequest"]


@dataclass(eq=False)
class RecordedRequest:
    """One request as received, plus how the response went.

    The simulator thread keeps updating the response fields (`finished`, `chunks_sent`,
    `disconnected`, ...) while the response is being written; poll with `ErnieSimulator.wait_for`.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    json: Any
    surface: str  # "qianfan" | "qianfan-v1" | "aistudio" | "openai" | "oauth" | "models" | "unknown"
    started: float  # time.monotonic() when the request head arrived
    finished: float | None = None
    status: int | None = None
    stream: bool = False
    chunks_sent: int = 0  # answer chunks (reasoning + text data events) written
    writes: int = 0  # socket writes made for the response body
    split_mid_char: bool = False  # a write ended inside a multi-byte UTF-8 character
    disconnected: bool = False  # the client closed the connection before the response was complete
    events: list[str] = field(default_factory=list)  # payloads of the `data:` events sent
    response_body: bytes | None = None  # the body of a non-stream response
    connection: int = 0  # which TCP connection carried it (1, 2, …): equal numbers mean a reused connection

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's `messages` list (empty when absent)."""
        if isinstance(self.json, dict) and isinstance(self.json.get("messages"), list):
            return self.json["messages"]
        return []

    @property
    def system(self) -> str | None:
        """The v1 top-level `system` field, if sent."""
        return self.json.get("system") if isinstance(self.json, dict) else None

    @property
    def model(self) -> str | None:
        """The `model` field (v2 / AI Studio / OpenAI) or the v1 endpoint name."""
        if self.surface == "qianfan-v1":
            return self.path.rsplit("/", 1)[-1]
        return self.json.get("model") if isinstance(self.json, dict) else None
