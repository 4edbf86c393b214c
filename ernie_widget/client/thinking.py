"""Thinking controls, one portable spelling for every surface (docs/ernie-wire.md §6).

A caller writes ``client.stream(..., enable_thinking=True|False, reasoning_max_tokens=N)``; each surface gets what
its documentation says it takes:

* Qianfan v2 and AI Studio: ``enable_thinking`` goes into the body as is, for the models documented to take it
  (`models.thinking_models()`); a model the table knows but that is not documented to take it is refused before
  sending, with the names of the ones that do. A name the table does not know is sent as is: model names are data.
  Qianfan v2 documents ``thinking: {"type": "enabled"}`` for DeepSeek, kimi and GLM only, so it passes for those.
* OpenAI-compatible servers (FastDeploy, vLLM): ``enable_thinking`` becomes
  ``chat_template_kwargs: {"enable_thinking": …}``, merged into the caller's own ``chat_template_kwargs``;
  ``reasoning_max_tokens`` passes through (FastDeploy caps the reasoning with it).
* Qianfan v1 and the local model have no thinking switch: every thinking parameter is refused.

Every other thinking parameter (``thinking_budget``, ``reasoning_effort``, and ``thinking`` where it is not
documented) is refused with the name of the parameter to use instead: sent anyway, the server would either reject
it after the request was paid for, or ignore it silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import BadRequestError
from .models import model_info, thinking_models

__all__ = ["THINKING_PARAMS", "apply_thinking", "check_thinking"]

#: every request parameter this module decides about; a request with none of them costs one set test
THINKING_PARAMS = frozenset({"enable_thinking", "reasoning_max_tokens", "thinking", "thinking_budget",
                             "reasoning_effort"})

#: non-ERNIE models that Qianfan v2 documents with `thinking: {"type": "enabled"}` (docs/ernie-wire.md §6)
_THINKING_OBJECT_MODELS = re.compile(r"deepseek|kimi|glm", re.I)

_OPENAI_COMPAT = "openai"
_ERNIE_OPENAI_STYLE = ("qianfan", "aistudio")
_NO_THINKING = {
    "qianfan-v1": "千帆 v1 没有思考模型 / Qianfan v1 has no thinking models (ERNIE X1 and 4.5 are v2-only): use "
                  "provider 'qianfan'",
    "local": "本地模型没有思考开关 / the local model has no thinking switch (a model that thinks writes "
             "<think>…</think>, shown as reasoning); for a switch, serve it with FastDeploy or vLLM and use "
             "provider 'openai'",
}


def check_thinking(provider_name: str, model: str | None, params: Mapping[str, Any]) -> None:
    """Raise BadRequestError for a thinking parameter ``provider_name`` / ``model`` does not take (nothing is
    changed: `HTTPProvider.check_params` runs this on the caller's own dict)."""
    if params.keys().isdisjoint(THINKING_PARAMS):
        return
    given = {k: params[k] for k in THINKING_PARAMS if params.get(k) is not None}
    if not given:
        return
    if provider_name in _NO_THINKING:
        names = ", ".join(sorted(given))
        raise BadRequestError(f"{_NO_THINKING[provider_name]} ({names})")
    if provider_name == _OPENAI_COMPAT:
        _check_openai(params, given)
    elif provider_name in _ERNIE_OPENAI_STYLE:
        _check_ernie(provider_name, model, given)
    # replay and any other provider: the parameters are part of what was recorded, nothing is sent


def apply_thinking(provider_name: str, model: str | None, params: dict[str, Any]) -> None:
    """Validate the thinking parameters of ``params`` (as `check_thinking`) and rewrite them in place into what
    ``provider_name`` takes. Runs once per request attempt, on the attempt's own copy of the parameters."""
    if params.keys().isdisjoint(THINKING_PARAMS):
        return
    check_thinking(provider_name, model, params)
    if provider_name == _OPENAI_COMPAT:
        enable = params.pop("enable_thinking", None)
        if enable is not None:
            # a new dict: the caller's own chat_template_kwargs is shared with every attempt and never changed
            params["chat_template_kwargs"] = {**(params.get("chat_template_kwargs") or {}), "enable_thinking": enable}


def _check_openai(params: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    enable = given.get("enable_thinking")
    if enable is not None:
        _check_bool(enable)
        own = params.get("chat_template_kwargs")
        if own is not None and not isinstance(own, Mapping):
            raise BadRequestError("chat_template_kwargs 必须是字典 / chat_template_kwargs must be a dict, got "
                                  f"{type(own).__name__}")
        if own and own.get("enable_thinking") not in (None, enable):
            raise BadRequestError(
                "enable_thinking 与 chat_template_kwargs 冲突 / enable_thinking="
                f"{enable} contradicts chat_template_kwargs={{'enable_thinking': {own['enable_thinking']}}}: "
                "pass one of them")
    if "reasoning_max_tokens" in given:
        _check_positive_int("reasoning_max_tokens", given["reasoning_max_tokens"])
    for name in ("thinking", "thinking_budget", "reasoning_effort"):
        if name in given:
            raise BadRequestError(
                f"OpenAI 兼容服务不支持 {name} / {name} is not documented for OpenAI-compatible servers "
                "(FastDeploy, vLLM): use enable_thinking=True|False (sent as chat_template_kwargs) and "
                "reasoning_max_tokens=N to cap the thinking")


def _check_ernie(provider_name: str, model: str | None, given: Mapping[str, Any]) -> None:
    zh, en = ("千帆 v2", "Qianfan v2") if provider_name == "qianfan" else ("星河", "AI Studio")
    thinking_object = bool(model and _THINKING_OBJECT_MODELS.search(model))
    if "enable_thinking" in given:
        _check_bool(given["enable_thinking"])
        _check_enable_thinking(model, thinking_object)
    if "thinking" in given:
        if provider_name != "qianfan" or not thinking_object:
            raise BadRequestError(
                f"{zh} 不支持 thinking 参数 / the `thinking` object is documented on Qianfan v2 for DeepSeek, "
                "kimi and GLM models only: for ERNIE use enable_thinking=True|False "
                f"({', '.join(thinking_models())})")
        if not isinstance(given["thinking"], Mapping) or not isinstance(given["thinking"].get("type"), str):
            raise BadRequestError('thinking 格式错误 / thinking must be a dict such as {"type": "enabled"}, got '
                                  f"{str(given['thinking'])[:40]!r}")
    if "reasoning_max_tokens" in given or "thinking_budget" in given:
        name = "reasoning_max_tokens" if "reasoning_max_tokens" in given else "thinking_budget"
        raise BadRequestError(
            f"{zh} 不支持 {name} / {en} documents no thinking budget ({name}): bound "
            "the whole answer with max_tokens, or switch thinking off with enable_thinking=False on a model that "
            "takes it; reasoning_max_tokens works on FastDeploy (provider 'openai')")
    if "reasoning_effort" in given:
        raise BadRequestError(
            f"{zh} 不支持 reasoning_effort / reasoning_effort is not documented on {en}: use enable_thinking=True|False ({', '.join(thinking_models())})")


def _check_enable_thinking(model: str | None, thinking_object: bool) -> None:
    if thinking_object:
        raise BadRequestError(
            f"{model} 不支持 enable_thinking / {model} takes thinking={{'type': 'enabled'}} on Qianfan v2, "
            "not enable_thinking")
    info = model_info(model)
    if not info.known or info.thinking:
        return  # documented, or a name the table does not know: sent as is
    takes = ", ".join(thinking_models())
    if info.always_thinks:
        raise BadRequestError(
            f"{model} 总是先思考，不能切换 / {model} always thinks and takes no enable_thinking: omit it (its "
            f"thinking arrives as reasoning events); models whose thinking can be switched: {takes}")
    raise BadRequestError(
        f"{model} 不支持深度思考开关 / {model} does not take enable_thinking: omit it, or choose a model that "
        f"does: {takes} (ERNIE X1 models always think)")


def _check_bool(value: Any) -> None:
    if not isinstance(value, bool):
        raise BadRequestError(f"enable_thinking 必须是 True 或 False / enable_thinking must be True or False, "
                              f"got {value!r}")


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequestError(f"{name} 必须是正整数 / {name} must be a positive integer, got {value!r}")
