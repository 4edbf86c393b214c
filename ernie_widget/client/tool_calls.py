"""Assembling streamed tool calls from their fragments.

Servers stream a call as `delta.tool_calls` fragments: the first usually carries `index`, `id` and
`function.name`, the rest only `index` and a piece of `function.arguments`. Real servers differ (no capture of
Qianfan's live streamed tool calls exists), so the assembler tolerates every shape seen across
OpenAI-compatible servers: `id`/`name` repeated on every fragment, parallel calls interleaved, a whole call in
one chunk, fragments without `index` (matched by `id`, else continuing the latest call), and several calls
sharing one `index` but naming different ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .events import ToolCall, ToolCallDelta

__all__ = ["ToolCallAssembler", "parse_arguments"]

#: a call's argument text is capped: a model looping on one call must not grow memory without bound
MAX_ARGUMENT_CHARS = 1_000_000


class _Forming:
    __slots__ = ("arguments", "id", "name", "position", "thoughts")

    def __init__(self, position: int, call_id: str | None) -> None:
        self.position = position
        self.id = call_id
        self.name = ""
        self.arguments: list[str] = []
        self.thoughts: str | None = None


class ToolCallAssembler:
    """Folds `tool_calls` fragments into complete `ToolCall`s, in the order the calls first appeared."""

    __slots__ = ("_by_id", "_by_index", "_calls", "_chars")

    def __init__(self) -> None:
        self._calls: list[_Forming] = []
        self._by_index: dict[int, _Forming] = {}
        self._by_id: dict[str, _Forming] = {}
        self._chars = 0

    def __bool__(self) -> bool:
        return bool(self._calls)

    def feed(self, fragments: Iterable[Any]) -> list[ToolCallDelta]:
        """Fold one chunk's fragments in; what each added, for the caller's `tool_call_delta` events.

        A fragment that is not a dict is ignored (it cannot say which call it belongs to).
        """
        deltas: list[ToolCallDelta] = []
        for frag in fragments:
            if not isinstance(frag, dict):
                continue
            fn = frag.get("function")
            if not isinstance(fn, dict):
                fn = {}
            call_id = frag.get("id") if isinstance(frag.get("id"), str) and frag.get("id") else None
            index = frag.get("index") if isinstance(frag.get("index"), int) else None
            call = self._call_for(index, call_id)
            name = fn.get("name") if isinstance(fn.get("name"), str) else None
            new_name = None
            if name and name != call.name:
                # a repeated name is the same name; a different one is the next piece of a streamed name
                call.name = name if not call.name or name.startswith(call.name) else call.name + name
                new_name = call.name
            piece = _argument_text(fn.get("arguments"))
            if piece:
                if self._chars + len(piece) > MAX_ARGUMENT_CHARS:
                    piece = piece[: max(0, MAX_ARGUMENT_CHARS - self._chars)]
                self._chars += len(piece)
                call.arguments.append(piece)
            thoughts = frag.get("thoughts")
            if isinstance(thoughts, str) and thoughts:
                call.thoughts = thoughts
            if piece or new_name or call_id:
                deltas.append(ToolCallDelta(call.position, call.id, call.name or None, piece))
        return deltas

    def _call_for(self, index: int | None, call_id: str | None) -> _Forming:
        if call_id is not None:
            known = self._by_id.get(call_id)
            if known is not None:
                return known
            at = self._by_index.get(index) if index is not None else None
            if at is not None and at.id is None:  # the id came after the first fragment
                at.id = call_id
                self._by_id[call_id] = at
                return at
            # a new id: a new call, even where a server reused an index for parallel calls (later id-less
            # fragments with that index then continue this newest call)
            return self._new(index, call_id)
        if index is not None:
            at = self._by_index.get(index)
            return at if at is not None else self._new(index, None)
        return self._calls[-1] if self._calls else self._new(None, None)

    def _new(self, index: int | None, call_id: str | None) -> _Forming:
        call = _Forming(len(self._calls), call_id)
        self._calls.append(call)
        if index is not None:
            self._by_index[index] = call
        if call_id is not None:
            self._by_id[call_id] = call
        return call

    def calls(self) -> tuple[ToolCall, ...]:
        """The complete calls; ids the server did not send are made up (``call_0``, …), stable per answer."""
        out = []
        for call in self._calls:
            text = "".join(call.arguments)
            parsed, error = parse_arguments(text)
            out.append(ToolCall(call.id or f"call_{call.position}", call.name, text, parsed, error, call.thoughts))
        return tuple(out)


def _argument_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    # a server that sends the arguments as an object rather than JSON text
    return json.dumps(value, ensure_ascii=False)


def parse_arguments(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The arguments as a dict, or None and why not. No arguments at all mean ``{}``."""
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, f"参数不是有效的 JSON / the arguments are not valid JSON: {exc}"
    except RecursionError:
        return None, "参数嵌套过深 / the arguments are nested too deeply"
    if not isinstance(value, dict):
        return None, f"参数必须是 JSON 对象 / the arguments must be a JSON object, got {type(value).__name__}"
    return value, None
