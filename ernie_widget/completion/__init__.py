"""Inline (ghost-text) completion for notebook cells: a Jupyter server extension that streams completions.

Enabled on install through ``etc/jupyter/jupyter_server_config.d/ernie_widget.json``. The browser's inline
completion provider posts the text around the cursor to ``{base_url}ernie-widget/completion`` and reads NDJSON
lines; the server holds the one client and the key (docs/inline-completion.md).
"""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "ernie_widget.completion"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Make the server's client and route the two endpoints under its base URL."""
    from jupyter_server.utils import url_path_join

    from .handlers import SERVICE_KEY, CompletionHandler, StatusHandler
    from .service import CompletionService

    service = CompletionService()
    web_app = serverapp.web_app
    web_app.settings[SERVICE_KEY] = service
    base = url_path_join(web_app.settings["base_url"], "ernie-widget", "completion")
    web_app.add_handlers(".*$", [(base, CompletionHandler), (url_path_join(base, "status"), StatusHandler)])

    # A module extension gets no stop hook (only ExtensionApp subclasses do): close the client, and with it the
    # upstream connections, in the server's own extension cleanup at shutdown.
    cleanup = serverapp.cleanup_extensions

    async def cleanup_extensions() -> None:
        try:
            await service.aclose()
            serverapp.log.debug("ernie-widget inline completion: client closed")
        finally:
            await cleanup()

    serverapp.cleanup_extensions = cleanup_extensions
    settings = service.settings
    serverapp.log.info("ernie-widget inline completion: %s", settings.message if settings.ready else
                       "not configured / 未配置 (GET ernie-widget/completion/status says why)")
