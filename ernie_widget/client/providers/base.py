"""What a provider is: an HTTP surface (build a request, read a chunk) or a direct in-process source."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BadRequestError, IncompleteStreamError
from ..events import Safety, StreamEvent, Usage
from ..thinking import apply_thinking, check_thinking

if TYPE_CHECKING:
    import httpx2

    from ..config import ProviderConfig
    from ..messages import Message

__all__ = ["Chunk", "DirectProvider", "HTTPProvider", "HTTPRequest", "text_field", "unreadable_chunk"]


ERNIE_MIN_TEMPERATURE = 0.01

#: The longest model name any surface is sent; real names are well under 100 characters.
MAX_MODEL_NAME = 256


def check_model_name(model: Any) -> None:
    """Refuse a model name no surface could mean: not a string, empty, too long, or holding whitespace or
    control characters (they would reach a request line, a header or a log line)."""
    if model is None:
        return
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
        raise BadRequestError(f"模型名称无效 / the model name must be a non-empty string of at most "
                              f"{MAX_MODEL_NAME} characters, got {str(model)[:40]!r}")
    if any(c.isspace() or not c.isprintable() for c in model):
        raise BadRequestError(f"模型名称无效 / the model name holds whitespace or control characters: "
                              f"{model[:40]!r}")


@dataclass(slots=True)
class HTTPRequest:
    method: str
    url: str
    json: dict[str, Any] = field(repr=False)
    # headers and query carry keys and tokens: never in a repr (tracebacks may print locals)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    params: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class Chunk:
    """What one parsed data event says, in provider-neutral terms."""

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    safety: Safety | None = None
    search_results: tuple[dict[str, Any], ...] | None = None
    #: `tool_calls` fragments as the server sent them (a whole call is one fragment); see tool_calls.py
    tool_calls: list[Any] | None = None
    request_id: str | None = None
    model: str | None = None
    is_end: bool = False
    truncated: bool = False


#: Baidu says "normal" where OpenAI says "stop"; FastDeploy adds "recover_stop".
_FINISH = {"normal": "stop", "stop": "stop", "recover_stop": "stop", "length": "length",
           "content_filter": "content_filter", "tool_calls": "tool_calls", "function_call": "tool_calls"}


#: what a chunk of an unexpected shape raises inside `parse_data` (a list where a dict belongs, …)
SHAPE_ERRORS = (AttributeError, TypeError, ValueError, IndexError, KeyError, OverflowError)


def text_field(value: Any) -> str:
    """A text field of a chunk: a string, or null/absent. Anything else is a chunk we cannot read."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts, as some OpenAI-compatible servers send them
        return "".join(p["text"] for p in value if isinstance(p, dict) and isinstance(p.get("text"), str))
    raise TypeError(f"expected text, got {type(value).__name__}")


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def unreadable_chunk(obj: Any) -> IncompleteStreamError:
    return IncompleteStreamError(f"无法识别的流数据 / a stream chunk had an unexpected shape: {str(obj)[:80]!r}")


def normalize_finish(reason: Any) -> str | None:
    if not reason:
        return None
    return _FINISH.get(str(reason), str(reason))


class HTTPProvider:
    """Base of the HTTP surfaces. Subclasses override `build_request` and `parse_data`."""

    name: str = "http"
    #: ERNIE's own surfaces take temperature in (0, 1], not 0 (docs/ernie-wire.md §5.7); OpenAI-compatible
    #: servers take [0, 2]
    ernie_sampling = False
    #: whether the stream ends with `data: [DONE]` (v1 ends with is_end instead)
    done_sentinel = True
    #: every HTTP surface takes `tools` (v1 as `functions`); whether the model uses them is the model's business
    supports_tools = True

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @property
    def model(self) -> str | None:
        return self.config.model

    def secrets(self) -> tuple[str, ...]:
        return self.config.secrets

    def no_tools_reason(self) -> str:
        return f"{self.name} 不支持工具调用 / {self.name} cannot call tools"

    async def authenticate(self, http: httpx2.AsyncClient, *, force: bool = False) -> None:
        """Obtain or refresh a derived token (Qianfan v1 OAuth). Most surfaces need nothing."""

    def needs_reauth(self, code: Any) -> bool:
        return False

    def check_messages(self, messages: list[Message]) -> None:
        """Raise BadRequestError for a history this surface cannot take, before anything is sent."""

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise BadRequestError for a parameter this surface refuses, before anything is sent."""
        model = params.get("model") or self.model
        check_model_name(model)
        t = params.get("temperature")
        if self.ernie_sampling and t is not None and t > 1:
            raise BadRequestError(f"temperature 超出范围 / ERNIE takes temperature in (0, 1], got {t}")
        check_thinking(self.name, model, params)  # enable_thinking & co. per surface and model (thinking.py)

    def adapt_params(self, params: dict[str, Any]) -> None:
        """Map portable values to what this surface takes: ERNIE refuses temperature 0, and what 0 asks
        for (the most deterministic answer) is its smallest accepted value. Thinking parameters become this
        surface's spelling (an OpenAI-compatible server takes enable_thinking inside chat_template_kwargs)."""
        if self.ernie_sampling and params.get("temperature") == 0:
            params["temperature"] = ERNIE_MIN_TEMPERATURE
        apply_thinking(self.name, params.get("model") or self.model, params)

    def build_request(self, messages: list[Message], params: dict[str, Any], stream: bool) -> HTTPRequest:
        raise NotImplementedError

    def parse_data(self, obj: dict[str, Any]) -> Chunk:
        raise NotImplementedError

    def parse_body(self, obj: dict[str, Any]) -> Chunk:
        """A non-streamed answer; by default the same reader as a chunk."""
        chunk = self.parse_data(obj)
        chunk.is_end = True
        return chunk


class DirectProvider:
    """A provider that produces events itself, in process (the local model, cassette replay)."""

    name: str = "direct"
    supports_tools = True

    def no_tools_reason(self) -> str:
        return f"{self.name} 不支持工具调用 / {self.name} cannot call tools"

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @property
    def model(self) -> str | None:
        return self.config.model

    def secrets(self) -> tuple[str, ...]:
        return ()

    def check_messages(self, messages: list[Message]) -> None:
        """Raise BadRequestError for a history this provider cannot take (default: any history)."""

    def events(self, messages: list[Message], params: dict[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release resources held for this client (shared model weights stay loaded)."""
