"""The one-line notice printed when the embedded local model is chosen because nothing else is configured."""

from __future__ import annotations

import os
import sys

_shown = False


def announce_local(model: str | None) -> None:
    """Tell the user (once per process) which offline model answers and how to switch to ERNIE cloud."""
    global _shown
    if _shown or os.environ.get("ERNIE_QUIET"):
        return
    _shown = True
    name = os.path.basename(model) if model else "SmolLM2-135M-Instruct (Q4_1)"
    print(
        f"ernie-widget: 未配置密钥，使用离线本地模型 {name} / no key set, answering with the offline model {name}. "
        "Set QIANFAN_API_KEY (or run %ernie --login) to use ERNIE cloud.",
        file=sys.stderr,
    )
