"""What each ERNIE model takes: input and output limits, and what it can do (tools, images, JSON schema, thinking).

One row per model or model family, each with the source of its facts (docs/ernie-wire.md §6 collects them). A
figure no source gives is a conservative estimate, and the row's ``source`` says so. Model names are data, not a
closed list (SDKs with hard-coded lists reject newer models, docs/ernie-wire.md §1.2): a name no row knows still
works, with `UNKNOWN`'s conservative figures and every capability off, and the client sends it unchanged.

    >>> model_info("ERNIE-4.5-Turbo-128K").max_input_tokens
    123000
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

__all__ = ["MODELS", "UNKNOWN", "ModelInfo", "model_info", "thinking_models"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model (or family) and what it takes. Token counts are the server's tokens; limits are upper bounds."""

    #: the model's name as the v2 / AI Studio surface spells it (for a family: its best-known member)
    name: str
    #: a coarse grouping for display ("ernie-4.5-turbo", "ernie-x1", "ernie-speed", …)
    family: str
    #: tokens the model sees at once (input plus output), from the name or the source
    context_window: int
    #: the longest prompt, in tokens (what history trimming keeps under)
    max_input_tokens: int
    #: the largest `max_tokens` the model accepts
    max_output_tokens: int
    #: the longest prompt in characters, where a source gives one (Qianfan v1 counts characters as well)
    max_input_chars: int | None
    #: function calling (`tools`, or v1 `functions`) is documented for it
    tools: bool
    #: it reads images (OpenAI `image_url` content parts)
    vision: bool
    #: `response_format: {"type": "json_schema"}` is documented for it
    json_schema: bool
    #: thinking can be switched per request with `enable_thinking` (Qianfan v2 / AI Studio)
    thinking: bool
    #: a reasoning model: every answer starts with thinking, and no documented switch turns it off
    always_thinks: bool
    #: where the facts come from; "not in sources" marks the conservative estimates
    source: str
    #: regular expression searched in the lower-cased model name (anchor it for an exact name)
    pattern: str = ""
    #: False for `UNKNOWN`: no row matched, the figures are guesses and nothing may be refused on their account
    known: bool = True


def _row(name: str, family: str, pattern: str, context: int, tokens: int, output: int, chars: int | None,
         *, tools: bool = False, vision: bool = False, json_schema: bool = False, thinking: bool = False,
         always_thinks: bool = False, source: str) -> ModelInfo:
    return ModelInfo(name, family, context, tokens, output, chars, tools, vision, json_schema, thinking,
                     always_thinks, source, pattern)


# Abbreviations for the sources, kept short because every row repeats one.
_W = "docs/ernie-wire.md"
_SDK = "qianfan 0.4.12.3 chat_completion.py"
# AI Studio's table says "123k" and "120k": read as thousands, the smaller reading (the limits are upper bounds)
_K = 1000

#: First match wins, so a specific name comes before the family pattern that would also match it.
#: `json_schema` is False everywhere: §1.2 documents the `json_schema` response format for the v2 surface, but no
#: source says which models honour it (the v1 SDK lists only `json_object`/`text` via `response_format`).
MODELS: tuple[ModelInfo, ...] = (
    # -- ERNIE 5 ----------------------------------------------------------------------------------------------
    _row("ernie-5.0-thinking-preview", "ernie-5", r"ernie[-_]5\.0[-_]thinking", 32768, 28000, 2048, None,
         thinking=True,
         source=f"{_W} §6 (enable_thinking, on by default); limits, tools, vision not in sources: "
                "the 32k estimate"),
    # -- ERNIE X1.1 / X1 (reasoning models, v2 only) ------------------------------------------------------------
    _row("ernie-x1.1-preview", "ernie-x1.1", r"ernie[-_]x1\.1", 32768, 28000, 2048, None, always_thinks=True,
         source=f"{_W} §1.2 (name), §1.5 (reasoning_content); limits not in sources: the 32k estimate"),
    _row("ernie-x1-turbo-32k", "ernie-x1", r"ernie[-_]x1[-_]turbo", 32768, 28000, 2048, None, always_thinks=True,
         source=f"{_W} §1.2 (name), §1.5 (reasoning); context from the name, input and output not in sources: "
                "the 32k estimate"),
    _row("ernie-x1-32k", "ernie-x1", r"ernie[-_]x1", 32768, 28000, 2048, None, always_thinks=True,
         source=f"{_W} §1.2 (name, lobe-chat list), §1.5; limits not in sources: the 32k estimate"),
    # -- ERNIE 4.5 VL (images; thinking switch documented) ------------------------------------------------------
    _row("ernie-4.5-turbo-vl-32k-preview", "ernie-4.5-turbo-vl", r"ernie[-_]4\.5[-_]turbo[-_]vl[-_]32k", 32768, 28000,
         2048, None, vision=True, thinking=True,
         source=f"{_W} §6 (enable_thinking); context from the name, input and output not in sources: "
                "the 32k estimate"),
    _row("ernie-4.5-turbo-vl-preview", "ernie-4.5-turbo-vl", r"ernie[-_]4\.5[-_]turbo[-_]vl[-_]preview", 131072, 123 * _K,
         12288, None, vision=True, thinking=True,
         source=f"{_W} §6 (enable_thinking); limits of ernie-4.5-turbo-vl ({_W} §3), the preview's own "
                "not in sources"),
    _row("ernie-4.5-turbo-vl", "ernie-4.5-turbo-vl", r"ernie[-_]4\.5[-_]turbo[-_]vl", 131072, 123 * _K, 12288, None,
         vision=True, source=f"{_W} §3 (AI Studio table); enable_thinking not documented for it (§6)"),
    _row("ernie-4.5-vl-28b-a3b", "ernie-4.5-vl", r"ernie[-_]4\.5[-_]vl[-_]28b", 131072, 123 * _K, 12288, None,
         vision=True, thinking=True,
         source=f"{_W} §3 (AI Studio table), §6 (enable_thinking), §4.1 (VL thinking on by default)"),
    _row("ernie-4.5-vl-424b-a47b", "ernie-4.5-vl", r"ernie[-_]4\.5[-_]vl", 131072, 123 * _K, 12288, None,
         vision=True, thinking=True,
         source=f"{_W} §4.1 (VL models think by default); limits not in sources: those of ernie-4.5-vl-28b-a3b"),
    # -- ERNIE 4.5 Turbo ----------------------------------------------------------------------------------------
    _row("ernie-4.5-turbo-128k", "ernie-4.5-turbo", r"ernie[-_]4\.5[-_]turbo[-_]128k", 131072, 123 * _K, 12288, None,
         source=f"{_W} §3 (ernie-4.5-turbo-128k-preview on AI Studio); tools not in sources"),
    _row("ernie-4.5-turbo-32k", "ernie-4.5-turbo", r"ernie[-_]4\.5[-_]turbo[-_]32k", 32768, 28000, 2048, None,
         source=f"{_W} §1.2 (name); context from the name, input and output not in sources: the 32k estimate"),
    _row("ernie-4.5-8k-preview", "ernie-4.5", r"ernie[-_]4\.5[-_]8k", 8192, 5120, 2048, None,
         source=f"{_W} §1.2 (name, lobe-chat list); limits not in sources: those of the 8K ERNIE rows (§2.1)"),
    # -- open ERNIE 4.5 weights (Qianfan, AI Studio, or your own FastDeploy / vLLM / llama.cpp server) ----------
    _row("ernie-4.5-21b-a3b-thinking", "ernie-4.5-open", r"ernie[-_]4\.5[-_]21b[-_]a3b[-_]thinking", 131072, 120 * _K,
         12288, None, tools=True, always_thinks=True,
         source=f"{_W} §4.1 (reasoning and tool-call parser ernie_x1); limits not in sources: those of "
                "ernie-4.5-21b-a3b (§3)"),
    _row("ernie-4.5-21b-a3b", "ernie-4.5-open", r"ernie[-_]4\.5[-_]21b", 131072, 120 * _K, 12288, None,
         source=f"{_W} §3 (AI Studio table)"),
    _row("ernie-4.5-0.3b", "ernie-4.5-open", r"ernie[-_]4\.5[-_]0\.3b", 131072, 120 * _K, 12288, None,
         source=f"{_W} §3 (AI Studio table)"),
    _row("ernie-4.5-300b-a47b", "ernie-4.5-open", r"ernie[-_]4\.5[-_]300b", 131072, 120 * _K, 12288, None,
         source="not in sources (open weights, no served limits documented): those of the open 4.5 rows (§3)"),
    # -- ERNIE 4.0 ----------------------------------------------------------------------------------------------
    _row("ernie-4.0-turbo-128k", "ernie-4.0", r"ernie[-_]4\.0[-_]turbo[-_]128k", 131072, 124 * _K, 4096, None,
         source=f"{_W} §3 (AI Studio table); tools not in sources"),
    _row("ernie-4.0-turbo-8k", "ernie-4.0", r"ernie[-_]4\.0[-_]turbo", 8192, 5120, 2048, 20000,
         source=f"{_SDK} (limits; no functions key), {_W} §3 (output)"),
    _row("ernie-4.0-8k", "ernie-4.0", r"ernie[-_]4\.0|^completions_pro$|^ernie-bot-4$|^completions_adv_pro$", 8192, 5120,
         2048, 20000, tools=True, source=f"{_SDK} (limits, functions), {_W} §2.1, §5.7 (output)"),
    # -- ERNIE 3.5 ----------------------------------------------------------------------------------------------
    _row("ernie-3.5-128k", "ernie-3.5", r"ernie[-_]3\.5[-_]128k", 131072, 126976, 2048, 516096, tools=True,
         source=f"{_SDK} (limits, functions); output not in sources: the 8K figure"),
    _row("ernie-3.5-8k", "ernie-3.5", r"ernie[-_]3\.5|^completions$|^ernie-bot$", 8192, 5120, 2048, 20000, tools=True,
         source=f"{_SDK} (limits, functions), {_W} §2.1, §5.7 (output)"),
    # -- ERNIE Speed --------------------------------------------------------------------------------------------
    _row("ernie-speed-pro-128k", "ernie-speed", r"ernie[-_ ]speed[-_]pro[-_]128k", 131072, 126976, 2048, 516096,
         tools=True, source=f"{_SDK} (limits, tools); output not in sources: the 8K figure"),
    _row("ernie-speed-128k", "ernie-speed", r"ernie[-_ ]speed[-_]128k", 131072, 124 * _K, 2048, 507904, tools=True,
         source=f"{_SDK} (chars, tools), {_W} §3 (124k tokens, below the SDK's 126976); output not in "
                "sources: the 8K figure"),
    _row("ernie-speed-pro-8k", "ernie-speed", r"ernie[-_ ]speed[-_]pro", 8192, 6144, 2048, 24000, tools=True,
         source=f"{_SDK} (limits, tools); output not in sources: the 8K figure"),
    _row("ernie-speed-8k", "ernie-speed", r"ernie[-_ ]speed|^ai_apaas$", 8192, 6144, 2048, 11200, tools=True,
         source=f"{_SDK} (11200 chars, tools), {_W} §3 (6k tokens and output on AI Studio; the SDK says 7168)"),
    # -- ERNIE Lite ---------------------------------------------------------------------------------------------
    _row("ernie-lite-pro-128k", "ernie-lite", r"ernie[-_]lite[-_]pro[-_]128k", 131072, 126976, 2048, 516096,
         source=f"{_W} §1.2 (name); limits not in sources: those of ernie-speed-pro-128k ({_SDK})"),
    _row("ernie-lite-pro-8k", "ernie-lite", r"ernie[-_]lite[-_]pro", 8192, 6144, 2048, 24000, tools=True,
         source=f"{_SDK} (limits, tools); output not in sources: the 8K figure"),
    _row("ernie-lite-8k-0922", "ernie-lite", r"ernie[-_]lite[-_]8k[-_]0922|^eb-instant$|^ernie-bot-turbo$", 8192, 7168,
         2048, 11200, tools=True, source=f"{_SDK} (limits, tools); output not in sources: the 8K figure"),
    _row("ernie-lite-8k", "ernie-lite", r"ernie[-_]lite", 8192, 7168, 2048, 11200,
         source=f"{_SDK} (ERNIE-Lite-8K-0308: limits, no tools key); output not in sources: the 8K figure"),
    # -- ERNIE Tiny / Character / Novel -------------------------------------------------------------------------
    _row("ernie-tiny-8k", "ernie-tiny", r"ernie[-_]tiny", 8192, 6144, 2048, 24000, tools=True,
         source=f"{_SDK} (limits, tools); output not in sources: the 8K figure"),
    _row("ernie-char-fiction-8k", "ernie-char", r"ernie[-_]char[a-z]*[-_]fiction", 8192, 6144, 2048, 24000,
         source=f"{_SDK} (limits, no tools key); output not in sources: the 8K figure"),
    _row("ernie-char-8k", "ernie-char", r"ernie[-_]char", 8192, 6144, 2048, 24000,
         source=f"{_SDK} (limits, no tools key; AI Studio says 7k, {_W} §3), {_W} §3 (output)"),
    _row("ernie-novel-8k", "ernie-novel", r"ernie[-_]novel", 8192, 6144, 2048, 24000, tools=True,
         source=f"{_SDK} (limits, tools); output not in sources: the 8K figure"),
    # -- not ERNIE, served on Qianfan v2 / AI Studio ------------------------------------------------------------
    _row("deepseek-v3", "deepseek", r"deepseek[-_]v3", 131072, 128 * _K, 12288, None,
         source=f"{_W} §3 (AI Studio table); thinking is the `thinking` object on v2 (§6), not enable_thinking"),
)

#: What a name no row knows gets: the smallest figures of the documented 8K rows, and no capability. `known=False`
#: means no refusal is based on it, and `input_limit` does not trim for it (a custom endpoint's own limit is
#: unknown, and trimming to 5k tokens would drop context the server would have taken).
UNKNOWN = ModelInfo("unknown", "unknown", 8192, 5120, 2048, None, False, False, False, False, False,
                    "no row matched: conservative figures (the 8K ERNIE rows), capabilities off", "", known=False)

@functools.cache
def _compiled() -> tuple[tuple[re.Pattern[str], ModelInfo], ...]:
    # compiled on first use, not at import: importing the client stays ~4 ms faster
    return tuple((re.compile(m.pattern), m) for m in MODELS)


@functools.lru_cache(maxsize=512)
def model_info(name: str | None) -> ModelInfo:
    """What the table knows of ``name`` (case-insensitive, any surface's spelling: ``ERNIE-Speed-8K``,
    ``ernie_speed``, ``baidu/ERNIE-4.5-21B-A3B-Thinking``). An unknown name gets `UNKNOWN`'s conservative
    figures under its own name, with ``known=False``; so does an empty one."""
    # cached: a client sends few distinct names, and this runs once or twice per request (history trimming,
    # thinking checks), so the regex walk is paid once per name
    if not name:
        return UNKNOWN
    lowered = name.lower()
    for pattern, info in _compiled():
        if pattern.search(lowered):
            return info
    return replace(UNKNOWN, name=name)


def thinking_models() -> tuple[str, ...]:
    """Names of the models whose thinking `enable_thinking` switches (for error messages and docs)."""
    return tuple(m.name for m in MODELS if m.thinking)
