"""Qianfan v1 model name → endpoint suffix (the last segment of `…/wenxinworkshop/chat/<suffix>`), as data.

Facts from qianfan 0.4.12.3, qianfan/resources/llm/chat_completion.py (`_ChatCompletionV1._local_models`, with its
`alias` and `deprecated_alias` tables): Baidu's SDK looks a name up case-insensitively (`k.lower()` on both sides,
resources/llm/base.py `_update_model_and_endpoint` and `get_model_info`). Kept as data rather than derived from the
name: the suffixes follow no rule (`ERNIE-Speed-8K` → `ernie_speed`, `ERNIE-Lite-8K-0308` → `ernie-lite-8k`,
`ERNIE-Function-8K` → `ernie-func-8k`), and SDK tables have shipped wrong ones (langchain-ai/langchain#13116).
See docs/ernie-wire.md §2.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["SDK_V1_ENDPOINTS", "V1_ENDPOINTS", "lookup_v1_endpoint"]

#: The SDK's v1 chat names, spelled as the SDK spells them. Left out: its three names with a space ("ERNIE Speed",
#: "ERNIE 3.5", "ERNIE Speed-AppBuilder"), which a v1 model name here may not contain (qianfan_v1.PLAIN_MODEL_NAME:
#: the name becomes part of the URL path); "ERNIE-Speed" and "ERNIE-3.5-8K" reach the same endpoints.
SDK_V1_ENDPOINTS: Final[Mapping[str, str]] = MappingProxyType({
    # ERNIE 4.0
    "ERNIE-4.0-8K": "completions_pro",
    "ERNIE-4.0-8K-Latest": "ernie-4.0-8k-latest",
    "ERNIE-4.0-8K-0613": "ernie-4.0-8k-0613",
    "ERNIE-4.0-8K-0329": "ernie-4.0-8k-0329",
    "ERNIE-4.0-8K-0104": "ernie-4.0-8k-0104",
    "ERNIE-4.0-8K-preview": "ernie-4.0-8k-preview",
    "ERNIE-4.0-8K-Preview-0518": "completions_adv_pro",
    "ERNIE-4.0-Turbo-8K": "ernie-4.0-turbo-8k",
    "ERNIE-4.0-Turbo-8K-Latest": "ernie-4.0-turbo-8k-latest",
    "ERNIE-4.0-Turbo-8K-Preview": "ernie-4.0-turbo-8k-preview",
    # ERNIE 3.5
    "ERNIE-3.5-8K": "completions",
    "ERNIE-3.5-8K-0701": "ernie-3.5-8k-0701",
    "ERNIE-3.5-8K-0613": "ernie-3.5-8k-0613",
    "ERNIE-3.5-8K-0329": "ernie-3.5-8k-0329",
    "ERNIE-3.5-8K-0205": "ernie-3.5-8k-0205",
    "ERNIE-3.5-8K-preview": "ernie-3.5-8k-preview",
    "ERNIE-3.5-128K": "ernie-3.5-128k",
    # ERNIE Speed / Lite / Tiny and the special-purpose models
    "ERNIE-Speed-8K": "ernie_speed",
    "ERNIE-Speed-128K": "ernie-speed-128k",
    "ERNIE-Speed-Pro-8K": "ernie-speed-pro-8k",
    "ERNIE-Speed-Pro-128K": "ernie-speed-pro-128k",
    "ERNIE-Lite-8K-0308": "ernie-lite-8k",
    "ERNIE-Lite-8K-0922": "eb-instant",
    "ERNIE-Lite-Pro-8K": "ernie-lite-pro-8k",
    "ERNIE-Lite-V": "ernie-lite-v",
    "ERNIE-Lite-AppBuilder-8K-0614": "ai_apaas_lite",
    "ERNIE-Tiny-8K": "ernie-tiny-8k",
    "ERNIE-Novel-8K": "ernie-novel-8k",
    "ERNIE-Function-8K": "ernie-func-8k",
    "ERNIE-Character-8K": "ernie-char-8k",
    "ERNIE-Character-Fiction-8K": "ernie-char-fiction-8k",
    "Qianfan-Dynamic-8K": "qianfan-dynamic-8k",
    # third-party models Baidu hosts
    "BLOOMZ-7B": "bloomz_7b1",
    "Qianfan-BLOOMZ-7B-compressed": "qianfan_bloomz_7b_compressed",
    "Llama-2-7B-Chat": "llama_2_7b",
    "Llama-2-13B-Chat": "llama_2_13b",
    "Llama-2-70B-Chat": "llama_2_70b",
    "Qianfan-Chinese-Llama-2-7B": "qianfan_chinese_llama_2_7b",
    "Qianfan-Chinese-Llama-2-13B": "qianfan_chinese_llama_2_13b",
    "Qianfan-Chinese-Llama-2-70B": "qianfan_chinese_llama_2_70b",
    "Meta-Llama-3-8B": "llama_3_8b",
    "Meta-Llama-3-70B": "llama_3_70b",
    "ChatGLM2-6B-32K": "chatglm2_6b_32k",
    "AquilaChat-7B": "aquilachat_7b",
    "XuanYuan-70B-Chat-4bit": "xuanyuan_70b_chat",
    "ChatLaw": "chatlaw",
    "Yi-34B-Chat": "yi_34b_chat",
    "Mixtral-8x7B-Instruct": "mixtral_8x7b_instruct",
    "Gemma-7B-it": "gemma_7b_it",
    # the SDK's aliases (`alias`)
    "ERNIE-Speed": "ernie_speed",
    "ERNIE-Lite-8K": "ernie-lite-8k",
    "ERNIE-4.0-preview": "ernie-4.0-8k-preview",
    "ERNIE-3.5-preview": "ernie-3.5-8k-preview",
    "ERNIE-Functions-8K": "ernie-func-8k",
    # the SDK's deprecated aliases (`deprecated_alias`)
    "ERNIE-Bot-4": "completions_pro",
    "ERNIE-Bot": "completions",
    "ERNIE-Bot-turbo": "eb-instant",
    "EB-turbo-AppBuilder": "ai_apaas",
    "ERNIE-Bot-turbo-AI": "ai_apaas",
})

#: Names this package accepted before it took the SDK's table, kept so they still reach the same endpoint; not in
#: the SDK. "ERNIE-Speed-AppBuilder" is the SDK's "ERNIE Speed-AppBuilder" without the space.
_OWN_NAMES: Final[Mapping[str, str]] = MappingProxyType({
    "ERNIE-Speed-AppBuilder": "ai_apaas",
    "ERNIE-Char-8K": "ernie-char-8k",
})

#: every known name (as spelled) → endpoint suffix
V1_ENDPOINTS: Final[Mapping[str, str]] = MappingProxyType({**SDK_V1_ENDPOINTS, **_OWN_NAMES})

# the SDK matches names case-insensitively; so does this table
_BY_LOWER: Final[Mapping[str, str]] = MappingProxyType({name.lower(): ep for name, ep in V1_ENDPOINTS.items()})


def lookup_v1_endpoint(model: str) -> str | None:
    """The endpoint suffix of a known v1 model name, matched without regard to case; None for an unknown name."""
    return _BY_LOWER.get(model.lower())
