"""What a request asks of an answer: the simulator honours thinking switches and structured-output formats.

A scripted `Answer` is the model's answer; the request can still shape it the way the real services do:
- ``enable_thinking: false`` (Qianfan v2 / AI Studio) or ``chat_template_kwargs.enable_thinking: false``
  (FastDeploy) drops the reasoning, and ``reasoning_max_tokens`` cuts it (one token per character here);
- ``response_format`` json_schema / json_object, with no scripted text, answers with a JSON value that matches
  the schema (a deterministic example), as a model constrained to it would.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ._scripts import Answer

__all__ = ["example_for", "shaped_by_request"]


def shaped_by_request(answer: Answer, body: Any, echo: str) -> Answer:
    if not isinstance(body, dict):
        return answer
    kwargs = body.get("chat_template_kwargs")
    thinking_off = body.get("enable_thinking") is False or (
        isinstance(kwargs, dict) and kwargs.get("enable_thinking") is False)
    if answer.reasoning and thinking_off:
        answer = replace(answer, reasoning="")
    cap = body.get("reasoning_max_tokens")
    if answer.reasoning and isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0:
        answer = replace(answer, reasoning=answer.reasoning[:cap])
    if answer.text is None and not answer.tool_calls:
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            answer = replace(answer, text=json.dumps(example_for(schema, schema), ensure_ascii=False))
        elif fmt == "json_object" or (isinstance(fmt, dict) and fmt.get("type") == "json_object"):
            answer = replace(answer, text=json.dumps({"answer": echo}, ensure_ascii=False))
    return answer


def example_for(schema: Any, root: Any, depth: int = 0) -> Any:
    """A deterministic value that matches ``schema`` (the JSON Schema subset models are asked for)."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and isinstance(root, dict):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return example_for(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return example_for(schema[key][0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: example_for(sub, root, depth + 1) for name, sub in props.items()}
    if kind == "array":
        return [example_for(schema.get("items"), root, depth + 1)] * max(1, int(schema.get("minItems") or 1))
    if kind == "integer":
        return max(1, int(schema.get("minimum") or 0))
    if kind == "number":
        return max(1.5, float(schema.get("minimum") or 0))
    if kind == "boolean":
        return True
    if kind == "string":
        return "示例"
    return None
