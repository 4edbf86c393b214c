"""Structured output: ``schema=`` asks for JSON matching a pydantic model or a JSON Schema, and checks it.

How each surface is asked (docs/ernie-wire.md §1.2, §2.3):
- Qianfan v2, AI Studio and OpenAI-compatible servers: ``response_format: {"type": "json_schema", …}``.
- Qianfan v1 has no ``json_schema``: ``response_format: "json_object"`` plus the schema as an instruction.
- The local model: the instruction only.
Whatever the surface, the answer is validated (pydantic for model classes, `jsonschema` for dicts); an answer
that does not validate gets one repair round trip from `chat`, then raises `StructuredOutputError` with the
raw text. A caller's own ``response_format=`` passes through untouched (and nothing is validated).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadRequestError, ErnieError
from .events import Reply
from .messages import Message

__all__ = ["SchemaSpec", "StructuredOutputError", "prepare_schema", "schema_spec"]

_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n(.*?)\n?```\s*$", re.S)
_NAME = re.compile(r"[^A-Za-z0-9_-]")


class StructuredOutputError(ErnieError):
    """The answer is not JSON matching the schema; ``raw_text`` is the answer as it came."""

    def __init__(self, message: str, *, raw_text: str, problems: list[str]) -> None:
        super().__init__(message)
        self.raw_text = raw_text
        self.problems = problems
        self.retryable = False


@dataclass(frozen=True)
class SchemaSpec:
    """One request's schema: what to validate with, and how it was asked for."""

    schema: dict[str, Any]
    name: str
    model_class: Any  # a pydantic BaseModel subclass, or None for a JSON Schema dict
    mode: str  # "json_schema", "json_object" or "instruction"

    def instruction(self) -> str:
        return ("Answer with one JSON object that matches this JSON Schema, and nothing else (no prose, no code "
                f"fence):\n{json.dumps(self.schema, ensure_ascii=False)}")

    def with_instruction(self, messages: list[Message]) -> list[Message]:
        """The messages with the schema in the system message (for surfaces that cannot take it as a format)."""
        if self.mode == "json_schema":
            return messages
        if messages and messages[0]["role"] == "system":
            first = {**messages[0], "content": f"{messages[0]['content']}\n\n{self.instruction()}"}
            return [first, *messages[1:]]
        return [{"role": "system", "content": self.instruction()}, *messages]

    @property
    def fields(self) -> list[str]:
        """The top-level properties of the schema (a model's fields), in order."""
        if self.model_class is not None:
            return list(self.model_class.model_fields)
        props = self.schema.get("properties")
        return list(props) if isinstance(props, dict) else []

    def field_values(self, parsed: Any) -> dict[str, Any]:
        """The top-level values of a parsed answer, by field (missing ones as None)."""
        if parsed is None:
            return dict.fromkeys(self.fields)
        if self.model_class is not None:
            return {f: getattr(parsed, f, None) for f in self.fields}
        return {f: parsed.get(f) if isinstance(parsed, dict) else None for f in self.fields}

    def parse(self, reply: Reply) -> Reply:
        """The reply with ``parsed`` set; StructuredOutputError when the text does not validate."""
        text = reply.text
        fenced = _FENCE.match(text)
        body = fenced.group(1) if fenced else text.strip()
        problems = self._problems(body)
        if problems:
            raise StructuredOutputError(
                f"回答不符合 schema / the answer does not match the schema {self.name}: {'; '.join(problems[:5])}",
                raw_text=text, problems=problems)
        return dataclasses.replace(reply, parsed=self._value(body))

    def _problems(self, body: str) -> list[str]:
        try:
            value = json.loads(body)
        except ValueError as exc:
            return [f"not JSON ({exc})"]
        except RecursionError:
            return ["nested too deeply"]
        if self.model_class is not None:
            import pydantic

            try:
                self.model_class.model_validate(value)
            except pydantic.ValidationError as exc:
                return [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()]
            return []
        import jsonschema

        validator = jsonschema.Draft202012Validator(self.schema)
        return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))]

    def _value(self, body: str) -> Any:
        value = json.loads(body)
        return self.model_class.model_validate(value) if self.model_class is not None else value

    def repair(self, messages: list[Message], error: StructuredOutputError) -> list[Message]:
        """The messages of the one repair round trip: the bad answer, then what was wrong with it."""
        return [*messages, {"role": "assistant", "content": error.raw_text or "(empty)"},
                {"role": "user", "content": "That answer does not match the schema: " + "; ".join(error.problems[:8])
                 + ". Reply with only the corrected JSON object."}]


def schema_spec(schema: Any, mode: str = "json_schema") -> SchemaSpec:
    """A `SchemaSpec` for a pydantic model class or a JSON Schema dict (BadRequestError for anything else)."""
    model_class = None
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        model_class = schema
        json_schema = schema.model_json_schema()
        name = schema.__name__
    elif isinstance(schema, Mapping):
        json_schema = dict(schema)
        _check_schema(json_schema)
        name = str(json_schema.get("title") or "answer")
    else:
        raise BadRequestError(f"schema 取值 / schema is a pydantic model class or a JSON Schema dict, not "
                              f"{type(schema).__name__}")
    return SchemaSpec(json_schema, _NAME.sub("_", name)[:64] or "answer", model_class, mode)


def prepare_schema(provider: str, params: dict[str, Any]) -> SchemaSpec | None:
    """Pop ``schema`` from the request parameters and ask for it the way ``provider`` can; None without one."""
    schema = params.pop("schema", None)
    if schema is None:
        return None
    if params.get("response_format") is not None:
        raise BadRequestError("schema= 与 response_format= 只能二选一 / pass schema= or response_format=, not both")
    spec = schema_spec(schema)
    if provider == "qianfan-v1":
        params["response_format"] = "json_object"  # v1 spells it as a string (§2.3)
        return dataclasses.replace(spec, mode="json_object")
    if provider == "local":
        return dataclasses.replace(spec, mode="instruction")
    params["response_format"] = {"type": "json_schema",
                                 "json_schema": {"name": spec.name, "schema": spec.schema, "strict": True}}
    return spec


def _check_schema(schema: dict[str, Any]) -> None:
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise BadRequestError(f"JSON Schema 无效 / the schema is not a valid JSON Schema: {exc.message}") from None
