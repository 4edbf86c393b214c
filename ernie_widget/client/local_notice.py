"""What users are told about the embedded offline model: it is not ERNIE, and how to connect ERNIE.

The tiny default model (SmolLM2-135M) answers off-topic and in English to Chinese questions; presenting it as
ERNIE would mislead. The widget shows `offline_model_notice` above the chat; the client prints `announce_local`
once per process when it picks the offline model because nothing else is configured.
"""

from __future__ import annotations

import os
import sys

__all__ = ["announce_local", "is_demo_model", "offline_model_notice"]

_shown = False
DEFAULT_NAME = "SmolLM2-135M-Instruct (Q4_1)"


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and get() is not None


def _connect_hint(in_notebook: bool) -> tuple[str, str]:
    """(Chinese, English) ways to connect ERNIE where the user is."""
    if in_notebook:
        return "运行 %ernie --login 或设置 QIANFAN_API_KEY", "run %ernie --login or set QIANFAN_API_KEY"
    return "设置 QIANFAN_API_KEY 环境变量", "export QIANFAN_API_KEY=bce-v3/ALTAK-…"


def is_demo_model(model: str) -> bool:
    """Whether ``model`` (a name or path) is the tiny default SmolLM2 demo model."""
    return "smollm" in os.path.basename(model).lower()


def offline_model_notice(model: str | None, *, in_notebook: bool | None = None) -> str:
    """A bilingual sentence: which offline model answers, that it is not ERNIE, and how to connect ERNIE."""
    name = os.path.basename(model) if model else DEFAULT_NAME
    zh, en = _connect_hint(_in_notebook() if in_notebook is None else in_notebook)
    if is_demo_model(name):
        return (f"离线演示模型 {name}：体积很小，常答非所问、偏向英文，不是文心一言。连接文心一言：{zh}。/ "
                f"This is {name}, a tiny offline demo model, not ERNIE: expect off-topic, English-leaning answers. "
                f"To use ERNIE, {en}; or set ERNIE_LOCAL_MODEL to a better GGUF (e.g. ERNIE-4.5-0.3B).")
    return f"离线模型 {name}（本地 GGUF，不是文心一言云服务）。连接文心一言：{zh}。/ Offline model {name} (a local " \
           f"GGUF, not ERNIE cloud). To use ERNIE, {en}."


def announce_local(model: str | None) -> None:
    """Tell the user (once per process) which offline model answers and how to switch to ERNIE cloud."""
    global _shown
    if _shown or os.environ.get("ERNIE_QUIET"):
        return
    _shown = True
    print(f"ernie-widget: 未配置密钥 / no key set. {offline_model_notice(model)}", file=sys.stderr)
