"""AI Studio (星河) v3: OpenAI-compatible with the personal access token as bearer (docs/ernie-wire.md §3)."""

from __future__ import annotations

from .chat_completions import OpenAIStyleProvider


class AIStudioProvider(OpenAIStyleProvider):
    name = "aistudio"
    max_tokens_field = "max_completion_tokens"
    ernie_sampling = True
