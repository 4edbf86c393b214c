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
            if not isinstance(m, Mapping) or "role" not in m:
                raise BadRequestError(
                    f"第 {i} 条消息格式错误 / message {i} must be a dict with 'role' and 'content'"
                )
            role = m["role"]
            if role not in ("system", "user", "assistant", "tool"):
                raise BadRequestError(f"未知角色 / unknown role {role!r} in message {i}")
            msg: Message = {"role": role, "content": m.get("content", "")}
            for key in ("name", "tool_calls", "tool_call_id"):
                if key in m:
                    msg[key] = m[key]
            messages.append(msg)
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


def v1_messages(messages: Sequence[Message]) -> tuple[str | None, list[Message]]:
    """Apply Qianfan v1's rules: hoist system, drop leading assistant turns, merge same-role runs.

    The result alternates user/assistant and has an odd count; otherwise BadRequestError is raised
    before anything is sent (docs/ernie-wire.md §5.1).
    """
    system_parts = [text_of(m["content"]) for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] in ("user", "assistant")]
    while turns and turns[0]["role"] == "assistant":
        turns = turns[1:]
    merged: list[Message] = []
    for m in turns:
        content = text_of(m["content"])
        if merged and merged[-1]["role"] == m["role"]:
            merged[-1] = {"role": m["role"], "content": merged[-1]["content"] + "\n\n" + content}
        else:
            merged.append({"role": m["role"], "content": content})
    if not merged or merged[-1]["role"] != "user":
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


# (pattern, max_input_chars, max_input_tokens): docs/ernie-wire.md §6 and the AI Studio table (§3).
_LIMITS: tuple[tuple[re.Pattern[str], int | None, int], ...] = tuple(
    (re.compile(p, re.I), c, t)
    for p, c, t in (
        (r"(speed|lite)[-_]?(pro[-_])?128k|3\.5[-_]128k", 516096, 126976),
        (r"(4\.5|x1).*(128k|vl)|4\.5-21b|4\.5-0\.3b|4\.5-vl", None, 120000),
        (r"x1.*32k|4\.5.*32k|x1", None, 28000),
        (r"4\.0-turbo-128k|turbo-128k", None, 124000),
        (r"speed|lite-8k|eb-instant|ernie_speed|ai_apaas", 11200, 7168),
        (r"lite-pro|tiny|char|novel", 24000, 6144),
        (r"ernie-(4\.0|3\.5)|completions(_pro)?$|ernie-bot", 20000, 5120),
    )
)


def input_limit(model: str | None) -> tuple[int | None, int | None]:
    """(max input characters, max input tokens) for a model name, or (None, None) when unknown."""
    if not model:
        return None, None
    for pattern, chars, tokens in _LIMITS:
        if pattern.search(model):
            return chars, tokens
    return None, None


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
        rest = rest[drop:]
        removed += drop
    return system + rest, removed
