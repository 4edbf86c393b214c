"""Message lists: normalizing user input, images, v1 alternation rules, token estimates, trimming."""

from __future__ import annotations

import base64
import io
import mimetypes
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import BadRequestError
from .models import model_info

Message = dict[str, Any]

__all__ = [
    "Message",
    "estimate_tokens",
    "image",
    "input_limit",
    "normalize_messages",
    "text_of",
    "trim_to_limit",
    "v1_messages",
]

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_WORD = re.compile(r"[A-Za-z0-9_]+")


def image(x: Any, *, mime: str | None = None) -> dict[str, Any]:
    """Turn a path, bytes, a PIL image or a matplotlib figure into an OpenAI-style image content part."""
    data: bytes
    if hasattr(x, "savefig"):  # matplotlib Figure
        buf = io.BytesIO()
        x.savefig(buf, format="png", bbox_inches="tight")
        data, mime = buf.getvalue(), "image/png"
    elif hasattr(x, "save") and hasattr(x, "mode"):  # PIL.Image.Image
        buf = io.BytesIO()
        x.save(buf, format="PNG")
        data, mime = buf.getvalue(), "image/png"
    elif isinstance(x, (bytes, bytearray, memoryview)):
        data = bytes(x)
        mime = mime or _sniff(data)
    elif isinstance(x, (str, Path)):
        if isinstance(x, str) and x.startswith("data:image/"):
            return {"type": "image_url", "image_url": {"url": x}}
        path = Path(x)
        if not path.is_file():
            raise BadRequestError(f"找不到图片文件 / image file not found: {path}")
        data = path.read_bytes()
        mime = mime or mimetypes.guess_type(path.name)[0] or _sniff(data)
    else:
        raise BadRequestError(
            f"无法作为图片发送 / cannot send a {type(x).__name__} as an image: "
            "use a path, bytes, a PIL image or a matplotlib figure"
        )
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url}}


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def text_of(content: Any) -> str:
    """The text of a message content (a string or a list of OpenAI content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return "" if content is None else str(content)


def normalize_messages(prompt_or_messages: str | Sequence[Mapping[str, Any]], system: str | None = None) -> list[Message]:
    """Accept a prompt string or a list of role/content dicts; return a fresh, validated list."""
    if isinstance(prompt_or_messages, str):
        messages: list[Message] = [{"role": "user", "content": prompt_or_messages}]
    elif isinstance(prompt_or_messages, Iterable):
        messages = []
        for i, m in enumerate(prompt_or_messages):
            if hasattr(m, "to_message") and not isinstance(m, Mapping):  # a Reply: its assistant message
                m = m.to_message()
            if not isinstance(m, Mapping) or "role" not in m:
                raise BadRequestError(
                    f"第 {i} 条消息格式错误 / message {i} must be a dict with 'role' and 'content'"
                )
            role = m["role"]
            if role not in ("system", "user", "assistant", "tool", "function"):
                raise BadRequestError(f"未知角色 / unknown role {role!r} in message {i}")
            messages.append(tool_turn(m, i, messages) if _is_tool_turn(m) else _plain(m))
    else:
        raise BadRequestError("prompt 必须是字符串或消息列表 / prompt must be a string or a list of messages")
    if system:
        if messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": system}
        else:
            messages.insert(0, {"role": "system", "content": system})
    if not any(m["role"] != "system" for m in messages):
        raise BadRequestError("没有要发送的用户消息 / there is no user message to send")
    last = messages[-1]
    if last["role"] == "user" and not text_of(last["content"]).strip() and not isinstance(last["content"], list):
        raise BadRequestError("最后一条消息为空 / the last message is empty")
    return messages


def _plain(m: Mapping[str, Any]) -> Message:
    msg: Message = {"role": m["role"], "content": m.get("content", "")}
    if "name" in m:
        msg["name"] = m["name"]
    return msg


def _is_tool_turn(m: Mapping[str, Any]) -> bool:
    return m["role"] in ("tool", "function") or bool(m.get("tool_calls")) or bool(m.get("function_call"))


def tool_turn(m: Mapping[str, Any], i: int, before: Sequence[Message]) -> Message:
    """A tool-calling turn in the one shape every surface is translated from (OpenAI's): an assistant message
    with ``tool_calls`` (v1's ``function_call`` and `ToolCall` objects accepted), or a ``role: "tool"`` message
    with ``tool_call_id`` (v1's ``role: "function"`` accepted: it answers the latest call of that name)."""
    role = m["role"]
    if role == "assistant":
        calls = m.get("tool_calls")
        if not calls and isinstance(m.get("function_call"), Mapping):  # v1's single call
            fc = m["function_call"]
            calls = [{"id": f"call_{i}_0", "type": "function",
                      "function": {"name": fc.get("name"), "arguments": fc.get("arguments") or "{}"}}]
        if not isinstance(calls, list | tuple):
            raise BadRequestError(f"第 {i} 条消息的 tool_calls 必须是列表 / message {i}: tool_calls must be a list")
        content = m.get("content")
        return {"role": "assistant", "content": "" if content is None else content,
                "tool_calls": [_call_dict(c, i, n) for n, c in enumerate(calls)]}
    call_id = m.get("tool_call_id")
    name = m.get("name")
    if call_id and not any(c["id"] == call_id for b in before for c in b.get("tool_calls") or ()):
        raise BadRequestError(
            f"第 {i} 条工具结果没有对应的调用 / message {i} answers tool call {str(call_id)[:40]!r}, which no "
            "earlier assistant message made: keep the assistant message with its tool_calls (Reply.to_message())")
    if not call_id:
        call_id = _answered_call(name, before)
        if call_id is None:
            raise BadRequestError(
                f"第 {i} 条工具结果没有对应的调用 / message {i} is a tool result that answers no earlier tool "
                "call: give it the call's tool_call_id (Reply.tool_calls[n].id)")
    content = m.get("content")
    if not isinstance(content, str):  # results are text on the wire; a value the caller passed is JSON
        import json

        content = json.dumps(content, ensure_ascii=False, default=str)
    msg: Message = {"role": "tool", "tool_call_id": str(call_id), "content": content}
    if isinstance(name, str):
        msg["name"] = name
    return msg


def _call_dict(call: Any, i: int, n: int) -> dict[str, Any]:
    if hasattr(call, "to_dict") and not isinstance(call, Mapping):  # a ToolCall
        call = call.to_dict()
    fn = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise BadRequestError(
            f"第 {i} 条消息的工具调用格式错误 / message {i}: each tool call needs function.name "
            "(the shape of Reply.tool_calls[n].to_dict())")
    args = fn.get("arguments")
    if not isinstance(args, str):
        import json

        args = json.dumps({} if args is None else args, ensure_ascii=False)
    return {"id": str(call.get("id") or f"call_{i}_{n}"), "type": "function",
            "function": {"name": fn["name"], "arguments": args}}


def _answered_call(name: Any, before: Sequence[Message]) -> str | None:
    """The id of the latest call named ``name`` (or of the latest call, when no name is given) that no tool
    message after it answers yet."""
    answered = {m.get("tool_call_id") for m in before if m["role"] == "tool"}
    for m in reversed(before):
        for call in reversed(m.get("tool_calls") or ()):
            if call["id"] not in answered and (name is None or call["function"]["name"] == name):
                return str(call["id"])
    return None


def v1_messages(messages: Sequence[Message]) -> tuple[str | None, list[Message]]:
    """Apply Qianfan v1's rules: hoist system, drop leading assistant turns, merge same-role runs, and spell
    tool turns v1's way (an assistant ``function_call``, then a ``role: "function"`` message with ``name``).

    The result alternates user (or function) / assistant and has an odd count; otherwise BadRequestError is
    raised before anything is sent (docs/ernie-wire.md §5.1).
    """
    system_parts = [text_of(m["content"]) for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] in ("user", "assistant", "tool")]
    while turns and turns[0]["role"] != "user":
        turns = turns[1:]
    names = {c["id"]: c["function"]["name"] for m in turns for c in m.get("tool_calls") or ()}
    merged: list[Message] = []
    for m in turns:
        content = text_of(m["content"])
        if m["role"] == "tool":
            merged.append({"role": "function", "name": m.get("name") or names.get(m.get("tool_call_id"), ""),
                           "content": content})
        elif m.get("tool_calls"):
            if len(m["tool_calls"]) > 1:
                raise BadRequestError(
                    "千帆 v1 每轮只能调用一个函数 / Qianfan v1 takes one function call per turn; this history has "
                    f"{len(m['tool_calls'])} in one message (use Qianfan v2 for parallel calls)")
            fn = m["tool_calls"][0]["function"]
            merged.append({"role": "assistant", "content": content,
                           "function_call": {"name": fn["name"], "arguments": fn["arguments"]}})
        elif merged and merged[-1]["role"] == m["role"] and "function_call" not in merged[-1]:
            merged[-1] = {"role": m["role"], "content": merged[-1]["content"] + "\n\n" + content}
        else:
            merged.append({"role": m["role"], "content": content})
    if not merged or merged[-1]["role"] not in ("user", "function"):
        raise BadRequestError(
            "千帆 v1 要求最后一条消息来自用户 / Qianfan v1 needs the conversation to end with a user message"
        )
    return ("\n\n".join(system_parts) or None), merged


def estimate_tokens(messages: Iterable[Message] | str) -> int:
    """A local token estimate (CJK chars × 0.625 + words, as the qianfan SDK does), plus per-message overhead."""
    if isinstance(messages, str):
        texts = [messages]
        overhead = 0
    else:
        msgs = list(messages)
        texts = [text_of(m.get("content")) for m in msgs]
        overhead = 4 * len(msgs)
    total = 0.0
    for t in texts:
        total += len(_CJK.findall(t)) * 0.625 + len(_WORD.findall(t)) + 0.25 * len(re.findall(r"[^\w\s]", t))
    return int(total) + overhead


def input_limit(model: str | None) -> tuple[int | None, int | None]:
    """(max input characters, max input tokens) for a model name, or (None, None) when unknown.

    The figures are the model table's (models.py, docs/ernie-wire.md §6). A name the table does not know is not
    trimmed: its server's limit is unknown, and a guess would drop history the server would have taken."""
    info = model_info(model)
    if not info.known:
        return None, None
    return info.max_input_chars, info.max_input_tokens


def _chars(messages: Iterable[Message]) -> int:
    return sum(len(text_of(m.get("content"))) for m in messages)


def trim_to_limit(messages: list[Message], model: str | None, reserve_tokens: int = 0) -> tuple[list[Message], int]:
    """Drop the oldest turns until the history fits the model's input limit; keep system and the last turn.

    Returns the trimmed list and how many messages were removed. Removal goes by whole exchanges
    (user + assistant) so alternation survives.
    """
    max_chars, max_tokens = input_limit(model)
    if max_chars is None and max_tokens is None:
        return messages, 0
    system = [m for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    removed = 0

    def fits(msgs: list[Message]) -> bool:
        if max_chars is not None and _chars(msgs) > max_chars:
            return False
        return not (max_tokens is not None and estimate_tokens(msgs) + reserve_tokens > max_tokens)

    while len(rest) > 1 and not fits(system + rest):
        drop = 2 if len(rest) > 2 and rest[0]["role"] == "user" and rest[1]["role"] == "assistant" else 1
        # never start on a tool result (or an answer) whose call was dropped: the history would not parse
        while drop < len(rest) - 1 and rest[drop]["role"] in ("tool", "assistant"):
            drop += 1
        rest = rest[drop:]
        removed += drop
    return system + rest, removed
