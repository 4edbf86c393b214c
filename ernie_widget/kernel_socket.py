"""Kernel websockets without Nagle's algorithm: a streamed delta leaves the server when the kernel sends it.

jupyter_server relays each kernel message to the browser as one small websocket frame, on a tornado socket that
leaves ``TCP_NODELAY`` off. Nagle's algorithm then holds a frame while an earlier one is unacknowledged, and the
browser acknowledges late (delayed ACK), so streamed text waits on the server for no reason: measured with the
chat at 50 chunks/s in JupyterLab and Chromium on one machine, 25 ms of the 35 ms p95 from the model's socket to
the page's DOM was this wait; with ``TCP_NODELAY`` set, the kernel-to-page leg is 3 ms at p95 and the whole path 19.5 ms (docs/architecture.md,
"Streaming latency").

This server extension (enabled by the same ``jupyter_server_config.d`` file as inline completion) swaps the
kernel websocket connection class for a subclass that sets ``TCP_NODELAY`` once the socket is open. It does so
only when the server uses jupyter_server's own class: a gateway's connection or another extension's class is
left alone. Turn it off with ``jupyter server extension disable ernie_widget.kernel_socket``.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

__all__ = ["NoDelayKernelConnection", "_jupyter_server_extension_points", "_load_jupyter_server_extension",
           "use_nodelay"]

SETTING = "kernel_websocket_connection_class"


class NoDelayKernelConnection(ZMQChannelsWebsocketConnection):
    """jupyter_server's kernel websocket connection with ``TCP_NODELAY`` set once the socket is open."""

    def connect(self) -> Any:
        # called from the handler's `open`, after the handshake: the websocket's stream exists by then
        self.websocket_handler.set_nodelay(True)
        return super().connect()


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "ernie_widget.kernel_socket"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    settings = serverapp.web_app.settings
    if use_nodelay(settings):
        serverapp.log.info("ernie-widget: kernel websockets send without delay (TCP_NODELAY)")
    else:
        serverapp.log.info("ernie-widget: kernel websockets left as they are (%s is not jupyter_server's own class)",
                           getattr(settings.get(SETTING), "__qualname__", "the connection class"))


def use_nodelay(settings: dict[str, Any]) -> bool:
    """Put the no-delay connection in `settings` if they hold jupyter_server's own; whether it is in use now."""
    if settings.get(SETTING) is ZMQChannelsWebsocketConnection:
        settings[SETTING] = NoDelayKernelConnection
    return settings.get(SETTING) is NoDelayKernelConnection
