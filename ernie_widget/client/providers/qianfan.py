"""Qianfan v2: OpenAI-compatible, `Authorization: Bearer bce-v3/ALTAK-…` (docs/ernie-wire.md §1)."""

from __future__ import annotations

from .chat_completions import OpenAIStyleProvider


class QianfanV2Provider(OpenAIStyleProvider):
    name = "qianfan"
    max_tokens_field = "max_completion_tokens"
    ernie_sampling = True
