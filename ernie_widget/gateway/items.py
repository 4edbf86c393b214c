"""`Item`: one thing an answer sends to a transport (SSE, JSON, WebSocket) or keeps for a resume."""

from __future__ import annotations

from dataclasses import dataclass

from ..client.events import Safety, Usage
from .errors import GatewayError

__all__ = ["TERMINAL_KINDS", "Item"]

#: the kinds that end an answer
TERMINAL_KINDS = ("end", "error")


@dataclass(slots=True)
class Item:
    """One thing a transport sends: text, reasoning, safety, withdraw (filter), end, or error."""

    kind: str
    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    safety: Safety | None = None
    error: GatewayError | None = None
    model: str | None = None

    @property
    def terminal(self) -> bool:
        """Whether the answer ends with this item (nothing follows an end or an error)."""
        return self.kind in TERMINAL_KINDS

    @property
    def size(self) -> int:
        """Bytes it will take on the wire, roughly (UTF-8 CJK is 3 bytes a character, plus framing)."""
        return 3 * len(self.text) + 96
