"""Inputs → jobs: a list of prompts, message lists, or a template over rows (a DataFrame, mappings, scalars)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..client.errors import ErnieError
from ..client.messages import Message, normalize_messages, text_of


@dataclass(slots=True)
class Job:
    index: int
    prompt: str
    messages: list[Message] | None  # None: the row could not be built (error set)
    error: ErnieError | None = None
    key: str = ""


def is_pandas_frame(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and type(obj).__module__.startswith("pandas")


def row_mappings(rows: Any) -> list[Mapping[str, Any]]:
    """Each row as a mapping of template fields."""
    if is_pandas_frame(rows):
        columns = [str(c) for c in rows.columns]
        return [dict(zip(columns, values, strict=True)) for values in rows.itertuples(index=False, name=None)]
    if hasattr(rows, "iter_rows") and hasattr(rows, "columns"):  # polars
        return list(rows.iter_rows(named=True))
    if isinstance(rows, str | bytes | Mapping):
        raise TypeError("rows 应为 DataFrame 或列表 / rows must be a DataFrame or a list of rows, "
                        f"not a {type(rows).__name__}")
    return [r if isinstance(r, Mapping) else {"value": r} for r in rows]


def build_jobs(prompts_or_template: Any, rows: Any, system: str | None,
                namespace: Mapping[str, Any] | None) -> list[Job]:
    items: list[Any]
    if isinstance(prompts_or_template, str):
        if rows is None:
            raise TypeError("模板需要 rows / a template needs rows: client.map(template, rows) "
                            "(or pass a list of prompts)")
        from ..interpolate import interpolate

        missing: list[str] = []

        def warn(message: str) -> None:
            if message not in missing:
                missing.append(message)

        ns = namespace if namespace is not None else {}
        items = [interpolate(prompts_or_template, ns, row=row, warn=warn) for row in row_mappings(rows)]
        for message in missing[:3]:
            print(message, file=sys.stderr)
    else:
        if rows is not None:
            raise TypeError("rows 只能与模板一起使用 / rows only go with a template string")
        if isinstance(prompts_or_template, Mapping) or not hasattr(prompts_or_template, "__iter__"):
            raise TypeError("需要提示列表或模板 / expected a list of prompts or a template string")
        items = list(prompts_or_template)
    jobs = []
    for i, item in enumerate(items):
        try:
            messages = normalize_messages(item, system)
        except ErnieError as err:
            prompt = item if isinstance(item, str) else repr(item)[:200]
            jobs.append(Job(i, prompt, None, err))
            continue
        prompt = item if isinstance(item, str) else text_of(messages[-1]["content"])
        jobs.append(Job(i, prompt, messages))
    return jobs


def cache_key(model: str | None, params: Mapping[str, Any], messages: Sequence[Message]) -> str:
    """sha256 over the model, the request parameters (unset ones dropped) and the messages."""
    payload = json.dumps(
        {"model": model, "params": {k: v for k, v in params.items() if v is not None and k != "model"},
         "messages": messages},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
