"""Reading the gateway's WebSocket in tests (one replica or several): a message, an answer to its end, a drop."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from websockets.sync.client import ClientConnection


def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return msg


def until_end(ws: ClientConnection, mid: Any, timeout: float = 10) -> list[dict[str, Any]]:
    """The messages of answer ``mid`` up to its ``done`` or ``error`` (others are skipped)."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        msg = recv(ws, max(0.1, deadline - time.monotonic()))
        if msg.get("mid") == mid:
            out.append(msg)
            if msg["type"] in ("done", "error"):
                return out


def drop(ws: ClientConnection) -> None:
    """Lose the connection the way a network does: no close frame."""
    ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()
