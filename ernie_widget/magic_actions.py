"""The `%ernie` actions that are not a prompt: --list, --doctor, --paste N, and the --fix prompt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError

from .conversations import get_thread

__all__ = ["doctor", "fix_prompt", "list_providers", "paste_code_block"]


def list_providers(provider: str | None, model: str | None, session_credentials: Mapping[str, Any]) -> None:
    """`%ernie --list`: every provider, whether it is configured (never a key), and the current choice."""
    from .client.config import DEFAULT_MODELS, PROVIDERS, environment, local_available

    env = environment()
    need = {"qianfan": ["QIANFAN_API_KEY"], "qianfan-v1": ["QIANFAN_AK", "QIANFAN_SK"],
            "aistudio": ["AISTUDIO_ACCESS_TOKEN"], "openai": ["ERNIE_BASE_URL"], "replay": ["ERNIE_CASSETTE"]}
    rows = []
    for p in PROVIDERS:
        if p == "local":
            ok = local_available()
            how = "pip install 'ernie-widget[local]'"
        else:
            ok = all(env.get(v) for v in need[p]) or p in session_credentials
            how = " + ".join(need[p]) + (" (--login)" if p in session_credentials else "")
        model = DEFAULT_MODELS.get(p, "(GGUF)" if p == "local" else "")
        rows.append(f"  {'✓' if ok else '✗'} {p:<11} {model:<24} {how}")
    print("服务 / providers (✓ = configured; keys are never shown):")
    print("\n".join(rows))
    current = provider or env.get("ERNIE_PROVIDER")
    if not current:
        from .client.config import resolve_config
        from .client.errors import ErnieError

        try:
            current = f"(auto → {resolve_config(None, env=env).provider})"
        except ErnieError:
            current = "(auto → none configured / 未配置)"
    print(f"当前 / current: provider={current}, model={model or env.get('ERNIE_MODEL') or '(default)'}")


def doctor(provider: str | None, model: str | None, creds: Mapping[str, str]) -> None:
    """`%ernie --doctor`: the configuration checks, one line each."""
    from .doctor import run_checks

    for check in run_checks(provider, model=model, api_key=creds.get("api_key"),
                            secret_key=creds.get("secret_key")):
        print(check)


def paste_code_block(shell: Any, n: int, thread: str) -> None:
    """`%ernie --paste N`: code block N of the thread's last answer into the next cell."""
    from .render import extract_code_blocks

    conv = get_thread(thread)
    last = conv.last_answer()
    blocks = extract_code_blocks(last["content"]) if last else []
    if not blocks:
        raise UsageError(f"线程 {thread!r} 的上一个回答没有代码块 / the last answer in thread {thread!r} has no "
                         "code blocks")
    if not 1 <= n <= len(blocks):
        raise UsageError(f"没有第 {n} 个代码块 / there is no code block {n} (the answer has {len(blocks)})")
    if shell is not None:
        shell.set_next_input(blocks[n - 1][1], replace=False)


def fix_prompt(ns: Mapping[str, Any]) -> str:
    """The last failed cell and its traceback, as a request for an explanation and a fix."""
    err = ns.get("Err") or {}
    if not err:
        raise UsageError("没有可解释的错误 / there is no exception to explain yet")
    n = max(err)
    inputs = ns.get("In") or []
    cell = inputs[n] if 0 <= n < len(inputs) else ""
    return ("This notebook cell raised an exception. Explain the cause briefly, then give the corrected "
            f"code in one fenced block.\n\nCell:\n```python\n{cell}\n```\n\nTraceback:\n```\n{err[n]}\n```")
