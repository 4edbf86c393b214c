"""``web_search=``: ERNIE's own web search, spelled the way each surface takes it.

Qianfan v2 and AI Studio take a `web_search` object (docs/ernie-wire.md §1.2): ``enable``, ``enable_citation``
(``^[1]^`` markers in the text), ``enable_trace`` (the sources in `search_results`), ``enable_status``,
``search_mode`` ("auto" or "required"; ERNIE models do not take "required"), ``search_number`` and ``reference_number``
(1–28). Qianfan v1 takes top-level ``disable_search``, ``enable_citation`` and ``enable_trace`` (§2.3).
OpenAI-compatible servers and the local model have no search: asking them is refused before sending.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import BadRequestError

__all__ = ["prepare_web_search"]

#: what ``web_search=True`` asks for: search, with citation markers and the sources they point to
DEFAULTS = {"enable": True, "enable_citation": True, "enable_trace": True}
_BOOLS = ("enable", "enable_citation", "enable_trace", "enable_status")
_COUNTS = ("search_number", "reference_number")
_KNOWN = (*_BOOLS, *_COUNTS, "search_mode")


def prepare_web_search(provider: str, model: str | None, params: dict[str, Any]) -> None:
    """Rewrite ``params["web_search"]`` (True/False or a dict of Qianfan's options) for ``provider``, in place;
    BadRequestError for an option out of range or a surface without search."""
    value = params.pop("web_search", None)
    if value is None:
        return
    options = _options(value)
    if options.get("search_mode") == "required" and (model or "").lower().startswith("ernie"):
        raise BadRequestError("ERNIE 模型不支持 search_mode='required' / ERNIE models take search_mode 'auto' only")
    if provider in ("qianfan", "aistudio", "replay"):  # replay: cassettes are recorded from v2 bodies
        params["web_search"] = options
    elif provider == "qianfan-v1":
        params["disable_search"] = not options["enable"]
        for key in ("enable_citation", "enable_trace"):
            if key in options:
                params[key] = options[key]
    elif options["enable"]:
        raise BadRequestError(
            f"{provider} 不支持联网搜索 / web search is ERNIE's own (Qianfan or AI Studio): {provider} has none")


def _options(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return dict(DEFAULTS) if value else {"enable": False}
    if not isinstance(value, Mapping):
        raise BadRequestError(f"web_search 取值 / web_search is True, False or a dict of options, not "
                              f"{type(value).__name__}")
    unknown = sorted(set(value) - set(_KNOWN))
    if unknown:
        raise BadRequestError(f"未知的 web_search 选项 / unknown web_search option(s) {unknown}; known: {list(_KNOWN)}")
    options = {"enable": True, **value}
    for key in _BOOLS:
        if key in options and not isinstance(options[key], bool):
            raise BadRequestError(f"web_search.{key} 必须是布尔值 / web_search.{key} must be True or False")
    for key in _COUNTS:
        n = options.get(key)
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 28):
            raise BadRequestError(f"web_search.{key} 取值 1–28 / web_search.{key} must be an integer from 1 to 28, "
                                  f"got {n!r}")
    mode = options.get("search_mode")
    if mode is not None and mode not in ("auto", "required"):
        raise BadRequestError(f"web_search.search_mode 取值 / search_mode is 'auto' or 'required', got {mode!r}")
    return options
