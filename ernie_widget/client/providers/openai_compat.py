"""Any OpenAI-compatible server: FastDeploy, vLLM, llama.cpp serving open ERNIE-4.5 weights.

See docs/ernie-wire.md §4.
"""

from __future__ import annotations

from .chat_completions import OpenAIStyleProvider


class OpenAICompatProvider(OpenAIStyleProvider):
    name = "openai"
    max_tokens_field = "max_tokens"
