"""Tools the model may call: OpenAI-style dicts, or plain Python callables described by their signature.

A callable's JSON Schema comes from its parameters' type hints and defaults (through pydantic, which also
validates and converts the model's arguments before the call) and its docstring (the first paragraph
describes the tool; a Google, NumPy or reST parameter section describes the parameters).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from .errors import BadRequestError

__all__ = ["Tool", "as_tool", "prepare_tool_params", "tool", "tool_specs"]

#: OpenAI's rule for function names, which Qianfan follows: what a model can echo back reliably
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Tool:
    """One tool: its name, description and JSON Schema, and (for tools that can run) the function.

    ``timeout`` (seconds) overrides `run_tools`' own for this tool; see tool_runner.py for where a
    timeout can be enforced.
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    fn: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    timeout: float | None = None
    _model: Any = field(default=None, repr=False, compare=False)  # the pydantic model of the arguments

    @property
    def is_async(self) -> bool:
        return self.fn is not None and inspect.iscoroutinefunction(self.fn)

    def spec(self) -> dict[str, Any]:
        """The OpenAI-shaped entry of a request's ``tools``."""
        fn: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            fn["description"] = self.description
        return {"type": "function", "function": fn}

    def arguments(self, parsed: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments of a call: validated and converted by the signature's types.

        Raises ValueError with a message the model can act on when they do not fit.
        """
        if self._model is None:
            return dict(parsed)
        import pydantic

        try:
            validated = self._model.model_validate(dict(parsed))
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                                 for e in exc.errors()[:8])
            raise ValueError(f"invalid arguments for {self.name}: {problems}") from None
        return {name: getattr(validated, name) for name in type(validated).model_fields}


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(*, name: str | None = None, description: str | None = None,
         timeout: float | None = None) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None, description: str | None = None,
         timeout: float | None = None) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Describe a function as a tool: ``@tool`` or ``@tool(name=…, description=…, timeout=…)``."""
    def make(f: Callable[..., Any]) -> Tool:
        return _from_callable(f, name=name, description=description, timeout=timeout)

    return make(fn) if fn is not None else make


def as_tool(obj: Any) -> Tool:
    """A `Tool` from a Tool, a callable, or an OpenAI-style dict (``{"type": "function", "function": {…}}``
    or the bare ``{"name", "description", "parameters"}``)."""
    if isinstance(obj, Tool):
        return obj
    if isinstance(obj, Mapping):
        return _from_dict(obj)
    if callable(obj):
        return _from_callable(obj)
    raise BadRequestError(f"无法作为工具 / a tool is a function, a Tool or an OpenAI-style dict, "
                          f"not {type(obj).__name__}")


def tool_specs(tools: Iterable[Any]) -> list[dict[str, Any]]:
    """The request's ``tools`` list; refuses duplicate names (the model could not say which one it means)."""
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Iterable):
        tools = [tools]
    made = [as_tool(t) for t in tools]
    seen: set[str] = set()
    for t in made:
        if t.name in seen:
            raise BadRequestError(f"工具名称重复 / two tools are named {t.name!r}")
        seen.add(t.name)
    return [t.spec() for t in made]


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadRequestError(f"工具名称无效 / a tool name is 1–64 letters, digits, '_' or '-', got {str(name)[:70]!r}")
    return name


def _from_dict(obj: Mapping[str, Any]) -> Tool:
    fn = obj.get("function") if obj.get("type", "function") == "function" and "function" in obj else obj
    if not isinstance(fn, Mapping):
        raise BadRequestError("工具格式错误 / a tool dict is {'type': 'function', 'function': {'name', "
                              "'description', 'parameters'}}")
    params = fn.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(params, Mapping):
        raise BadRequestError(f"工具 {fn.get('name')!r} 的 parameters 必须是 JSON Schema 对象 / the parameters of a "
                              "tool must be a JSON Schema object")
    desc = fn.get("description") or ""
    if not isinstance(desc, str):
        raise BadRequestError("工具的 description 必须是字符串 / a tool's description must be a string")
    return Tool(_check_name(fn.get("name")), desc, dict(params))


def _from_callable(f: Callable[..., Any], *, name: str | None = None, description: str | None = None,
                   timeout: float | None = None) -> Tool:
    import pydantic

    tool_name = _check_name(name or getattr(f, "__name__", None))
    summary, param_docs = _docstring(inspect.getdoc(f) or "")
    try:
        sig = inspect.signature(f)
        hints = _hints(f)
    except (TypeError, ValueError) as exc:
        raise BadRequestError(f"无法读取 {tool_name} 的参数 / cannot read the signature of {tool_name}: {exc}") from None
    fields: dict[str, Any] = {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue  # *args/**kwargs cannot be described to the model
        if p.kind is p.POSITIONAL_ONLY:
            raise BadRequestError(f"工具 {tool_name} 的参数 {p.name} 只能按位置传递 / a tool's parameters are "
                                  "passed by name; make it a normal parameter")
        annotation = hints.get(p.name, Any)
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (annotation, pydantic.Field(default, description=param_docs.get(p.name)))
    try:
        model = pydantic.create_model(f"{tool_name}_arguments", **fields)
        schema = model.model_json_schema()
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, TypeError) as exc:
        raise BadRequestError(f"无法为 {tool_name} 生成 JSON Schema / cannot describe {tool_name}'s parameters as "
                              f"JSON Schema: {str(exc).splitlines()[0]}") from None
    _drop_titles(schema)
    return Tool(tool_name, description if description is not None else summary, schema, f, timeout, model)


def _hints(f: Callable[..., Any]) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(f)
    except Exception:  # an unresolvable forward reference: use the raw annotations
        return dict(getattr(f, "__annotations__", {}))


def _drop_titles(schema: Any) -> None:
    """pydantic titles every property after its name; the model gains nothing from them but tokens.
    (A parameter named "title" is a key of a `properties` mapping, which is never popped from.)"""
    if not isinstance(schema, dict):
        return
    schema.pop("title", None)
    for key, sub in schema.items():
        if key in ("properties", "$defs") and isinstance(sub, dict):
            for s in sub.values():
                _drop_titles(s)
        elif key in ("items", "additionalProperties"):
            _drop_titles(sub)
        elif key in ("anyOf", "allOf", "oneOf", "prefixItems") and isinstance(sub, list):
            for s in sub:
                _drop_titles(s)


_SECTION = re.compile(r"^(args|arguments|parameters|params)\s*:?\s*$", re.I)
_NUMPY_RULE = re.compile(r"^-{3,}\s*$")
_OTHER_SECTION = re.compile(r"^(returns?|yields?|raises?|examples?|notes?|see also|attributes)\s*:?\s*$", re.I)
_GOOGLE_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^(\w+)\s*:\s*[^:]*$|^(\w+)\s*$")
_REST_ITEM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def _docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(the summary paragraph, {parameter: description}) from a Google, NumPy or reST docstring."""
    lines = doc.splitlines()
    summary: list[str] = []
    i = 0
    while i < len(lines) and lines[i].strip() and not _SECTION.match(lines[i].strip()) \
            and not lines[i].strip().startswith(":"):
        summary.append(lines[i].strip())
        i += 1
    params: dict[str, str] = {}
    current: str | None = None
    in_section = False
    item_indent = -1  # the indent of a section's items; deeper lines continue the current item
    numpy_style = False  # "Parameters" underlined with dashes: items are "name : type"
    for raw in lines[i:]:
        line = raw.strip()
        rest = _REST_ITEM.match(line)
        if rest:
            current, params[rest.group(1)] = rest.group(1), rest.group(2).strip()
            continue
        if _SECTION.match(line):
            in_section, current, item_indent, numpy_style = True, None, -1, False
            continue
        if in_section and current is None and _NUMPY_RULE.match(line):
            numpy_style = True
            continue
        if _OTHER_SECTION.match(line) or line.startswith(":"):
            in_section, current = False, None
            continue
        if not in_section or not line or _NUMPY_RULE.match(line):
            continue
        indent = len(raw) - len(raw.lstrip())
        if item_indent < 0:
            item_indent = indent
        google = _GOOGLE_ITEM.match(line)
        numpy = _NUMPY_ITEM.match(line)
        if indent <= item_indent and numpy_style and numpy:
            current = numpy.group(1) or numpy.group(2)
            params[current] = ""
        elif indent <= item_indent and google:
            current = google.group(1).lstrip("*")
            params[current] = google.group(3).strip()
        elif current is not None:
            params[current] = (params[current] + " " + line).strip()
    return " ".join(summary), {k: v for k, v in params.items() if v}


def prepare_tool_params(params: dict[str, Any]) -> None:
    """Turn a request's ``tools`` into OpenAI-shaped dicts and check ``tool_choice`` and
    ``parallel_tool_calls``, in place, before anything is sent."""
    tools = params.get("tools")
    if tools is not None:
        params["tools"] = tool_specs(tools) or None
    choice = params.get("tool_choice")
    if choice is not None:
        if isinstance(choice, Tool) or (callable(choice) and not isinstance(choice, str)):
            choice = as_tool(choice).name
        if isinstance(choice, str) and choice not in ("auto", "none", "required"):
            choice = {"type": "function", "function": {"name": _check_name(choice)}}
        if not isinstance(choice, str | Mapping):
            raise BadRequestError("tool_choice 取值 / tool_choice is 'auto', 'none', 'required', a tool name or "
                                  "{'type': 'function', 'function': {'name': …}}")
        params["tool_choice"] = choice
    parallel = params.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise BadRequestError(f"parallel_tool_calls 必须是布尔值 / parallel_tool_calls must be True or False, "
                              f"got {parallel!r}")
