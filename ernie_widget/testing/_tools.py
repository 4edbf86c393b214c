"""Tool calls on the wire: how the simulator streams scripted calls, and how it checks a tool history.

No capture of Qianfan's live streamed tool calls is public, so every shape a client may meet is scriptable
(`Answer.tool_call_style`): OpenAI's (id and name on the first fragment, then argument pieces), id and name
repeated on every fragment, parallel calls interleaved, each call whole in one chunk, all calls in one chunk,
and fragments that carry an id but no index.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["TOOL_CALL_STYLES", "call_fragments", "tool_history_problem", "v1_function_call", "v1_function_problem",
           "whole_calls"]

TOOL_CALL_STYLES = ("fragments", "repeated", "interleaved", "whole", "one_chunk", "no_index")


def _normalized(calls: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(id, name, argument text) per scripted call; `arguments` may be a dict or JSON text."""
    out = []
    for i, call in enumerate(calls):
        args = call.get("arguments", {})
        text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        out.append((str(call.get("id") or f"call_sim_{i}"), str(call["name"]), text))
    return out


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def whole_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls as an unstreamed `message.tool_calls` list."""
    return [{"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in _normalized(calls)]


def call_fragments(calls: list[dict[str, Any]], style: str, size: int) -> list[list[dict[str, Any]]]:
    """The `delta.tool_calls` list of each chunk that streams ``calls`` in ``style``."""
    if style not in TOOL_CALL_STYLES:
        raise ValueError(f"tool_call_style must be one of {TOOL_CALL_STYLES}, not {style!r}")
    norm = _normalized(calls)
    if style == "whole":
        return [[w | {"index": i}] for i, w in enumerate(whole_calls(calls))]
    if style == "one_chunk":
        return [[w | {"index": i} for i, w in enumerate(whole_calls(calls))]]
    per_call: list[list[dict[str, Any]]] = []
    for i, (cid, name, args) in enumerate(norm):
        frags: list[dict[str, Any]] = []
        for n, piece in enumerate(_pieces(args, size)):
            if style == "repeated":
                frags.append({"index": i, "id": cid, "type": "function",
                              "function": {"name": name, "arguments": piece}})
            elif style == "no_index":
                frag: dict[str, Any] = {"id": cid, "function": {"arguments": piece}}
                if n == 0:
                    frag["function"]["name"] = name
                frags.append(frag)
            else:  # fragments / interleaved: OpenAI's shape
                if n == 0:
                    frags.append({"index": i, "id": cid, "type": "function",
                                  "function": {"name": name, "arguments": ""}})
                frags.append({"index": i, "function": {"arguments": piece}})
        per_call.append(frags)
    if style == "interleaved":
        out: list[list[dict[str, Any]]] = []
        for step in range(max(len(f) for f in per_call)):
            out.extend([f[step]] for f in per_call if step < len(f))
        return out
    return [[frag] for frags in per_call for frag in frags]


def v1_function_call(calls: list[dict[str, Any]], thoughts: str | None = None) -> dict[str, Any]:
    """Qianfan v1's `function_call` object (v1 asks for one function at a time: the first call)."""
    _, name, args = _normalized(calls)[0]
    out: dict[str, Any] = {"name": name, "arguments": args}
    if thoughts is not None:
        out["thoughts"] = thoughts
    return out


def tool_history_problem(messages: list[Any]) -> str | None:
    """Why a v2/OpenAI message list's tool turns are malformed, else None: every assistant tool call needs
    an id, a function name and argument text, and every `tool` message answers a call made before it."""
    asked: set[str] = set()
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return f"message {i} is not an object"
        if m.get("role") == "assistant" and m.get("tool_calls") is not None:
            calls = m["tool_calls"]
            if not isinstance(calls, list) or not calls:
                return f"message {i}: tool_calls must be a non-empty list"
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not call.get("id") or not isinstance(fn.get("name"), str) \
                        or not isinstance(fn.get("arguments"), str):
                    return f"message {i}: each tool call needs id, function.name and function.arguments (a string)"
                asked.add(call["id"])
        elif m.get("role") == "tool":
            if m.get("tool_call_id") not in asked:
                return f"message {i}: tool_call_id {m.get('tool_call_id')!r} answers no earlier tool call"
            if not isinstance(m.get("content"), str):
                return f"message {i}: a tool message's content must be a string"
    return None


def v1_function_problem(body: dict[str, Any]) -> str | None:
    """Why a v1 function-calling body is malformed, else None: each `functions` entry has a name, a
    description and parameters, and each `role: "function"` message answers the assistant `function_call`
    of the same name just before it."""
    functions = body.get("functions")
    if not isinstance(functions, list) or not all(
            isinstance(f, dict) and f.get("name") and f.get("description") and isinstance(f.get("parameters"), dict)
            for f in functions):
        return "each of functions needs name, description and parameters"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "the messages can not be empty"
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return f"invalid message {i}"
        if m.get("role") == "function":
            before = messages[i - 1] if i else {}
            call = before.get("function_call") if isinstance(before, dict) else None
            if not isinstance(call, dict) or call.get("name") != m.get("name"):
                return f"message {i}: a function message must answer the function_call just before it"
    return None
