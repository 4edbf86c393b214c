"""Every simulator fault × every consumer: the sync client, the async client, the widget and the magic.

Each case checks the same four promises, whoever consumes the stream:

1. the failure is reported as the right typed error (clients), or as one clear "中文 / English" line
   (the widget's answer `error`, the magic's one-line error named for what it is);
2. the text streamed before the fault is kept — shown to the user and stored — exactly;
3. the conversation stays usable: a follow-up question succeeds, and the simulator saw it (with the
   partial answer in the history, for the widget and the magic);
4. nothing is left behind: file descriptors, threads and tasks on the private loop come back to what
   they were after warm-up.

Time limits are small (idle 0.3 s, whole answer 1 s, one retry) so the matrix stays fast.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from ernie_widget import ErnieChat, threads
from ernie_widget.client import (
    APITimeoutError,
    AsyncErnie,
    AuthenticationError,
    Ernie,
    ErnieError,
    IncompleteStreamError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from ernie_widget.testing import Answer, ErnieSimulator, Fault, RecordedRequest, echo_answer
from tests.client_support import client_args

from ._support import LeakGuard, is_bilingual, save_result

LIMITS: dict[str, Any] = {"stream_idle_timeout": 0.3, "max_stream_seconds": 1.0, "max_retries": 1}
ANSWER = Answer(text="第一段回答abcdefgh", chunk_size=2)
PARTIAL = "第一段回"  # the first two chunks
QUESTION = "讲一个故事"
FOLLOW_UP = "下一个问题"
WARM_UP = "warm up"


@dataclass(frozen=True)
class Case:
    """One fault: what the simulator does, and what every consumer must report."""

    id: str
    scripts: tuple[Answer | Fault, ...]
    error: type[ErnieError]
    says: str  # an English fragment of the message, the same for every consumer
    partial: str | None  # the text kept; None: an unknown but non-empty prefix (endless)
    requests: int  # chat requests the simulator sees for the failed turn (retries included)
    provider: str = "qianfan"
    disconnect: bool = False  # the client had to close the connection itself
    extra: Callable[[ErnieError | None, list[RecordedRequest]], None] | None = None


def _retry_after_honoured(err: ErnieError | None, reqs: list[RecordedRequest]) -> None:
    assert reqs[1].started - reqs[0].started >= 0.2  # the one retry waited for Retry-After
    if err is not None:
        assert err.status_code == 429 and err.retry_after == 0.2


def _status(code: int) -> Callable[[ErnieError | None, list[RecordedRequest]], None]:
    def check(err: ErnieError | None, reqs: list[RecordedRequest]) -> None:
        assert all(r.status == code for r in reqs)
        if err is not None:
            assert err.status_code == code and err.request_id and err.request_id.startswith("as-")

    return check


def _code(code: object) -> Callable[[ErnieError | None, list[RecordedRequest]], None]:
    def check(err: ErnieError | None, reqs: list[RecordedRequest]) -> None:
        assert reqs[-1].status == 200  # the status said nothing: the error was in the body
        if err is not None:
            assert err.code == code and err.status_code is None

    return check


CASES = [
    Case("429-retry-after", (Fault.status(429, retry_after=0.2),) * 2, RateLimitError, "HTTP 429", "", 2,
         extra=_retry_after_honoured),
    Case("5xx", (Fault.status(503),) * 2, ServerError, "HTTP 503", "", 2, extra=_status(503)),
    Case("401", (Fault.status(401),), AuthenticationError, "HTTP 401", "", 1, extra=_status(401)),
    Case("403", (Fault.status(403),), PermissionDeniedError, "HTTP 403", "", 1, extra=_status(403)),
    Case("error-in-200", (Fault.error_in_200(style="code_msg"),) * 2, RateLimitError, "Rate limit reached",
         "", 2, extra=_code("rpm_rate_limit_exceeded")),
    Case("v1-bare-json-midstream", (Fault.error_midstream(after_chunks=2, code=336100, answer=ANSWER),),
         ServerError, "code=336100", PARTIAL, 1, provider="qianfan-v1", extra=_code(336100)),
    Case("error-event-midstream", (Fault.error_midstream(after_chunks=2, answer=ANSWER),), ServerError,
         "code=internal_error", PARTIAL, 1, extra=_code("internal_error")),
    Case("cut", (Fault.cut(after_chunks=2, answer=ANSWER),), IncompleteStreamError, "connection broke",
         PARTIAL, 1),
    Case("stall", (Fault.stall(after_chunks=2, seconds=10, answer=ANSWER),), APITimeoutError,
         "stream_idle_timeout", PARTIAL, 1, disconnect=True),
    Case("malformed-json", (Fault.malformed(after_chunks=2, answer=ANSWER),), IncompleteStreamError,
         "not valid JSON", PARTIAL, 1),
    Case("oversized-event", (Fault.oversized(after_chunks=2, answer=ANSWER),), IncompleteStreamError,
         "exceeded 1024 KiB", PARTIAL, 1),
    Case("endless", (Fault.endless(interval=0.01, answer=ANSWER),), APITimeoutError, "max_stream_seconds=1",
         None, 1, disconnect=True),
    Case("no-end-signal", (Fault.no_end(after_chunks=2, answer=ANSWER),), IncompleteStreamError,
         "without its end signal", PARTIAL, 1),
]


@dataclass
class Observed:
    """What one consumer did with a failed answer."""

    error: ErnieError | None  # the typed error (the clients); None for the widget and the magic
    message: str  # what the user reads
    shown: str  # the text the user saw while it streamed
    kept: str  # the text stored afterwards (error.partial_text, the answer, the thread)
    notes: dict[str, Any] = field(default_factory=dict)


def _history(msgs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in msgs]


def _expected_history(kept: str) -> list[tuple[str, str]]:
    """A stateful consumer's follow-up: the warm-up exchange, the failed one if it kept text, the question."""
    failed = [("user", QUESTION), ("assistant", kept)] if kept else []
    return [("user", WARM_UP), ("assistant", echo_answer(WARM_UP)), *failed, ("user", FOLLOW_UP)]


# -- consumers ---------------------------------------------------------------------------------------


class SyncConsumer:
    def __init__(self, sim: ErnieSimulator, provider: str, **_: Any) -> None:
        self.client = Ernie(**client_args(sim, provider, **LIMITS))

    def warm_up(self) -> None:
        self.client.chat(WARM_UP)

    def ask(self) -> Observed:
        shown: list[str] = []
        with pytest.raises(ErnieError) as info, self.client.stream(QUESTION) as stream:
            for ev in stream:
                if ev.type == "text":
                    shown.append(ev.text)
        err = info.value
        return Observed(err, str(err), "".join(shown), err.partial_text)

    def follow_up(self) -> str:
        return self.client.chat(FOLLOW_UP).text

    def expected_history(self, kept: str) -> list[tuple[str, str]]:
        return [("user", FOLLOW_UP)]

    def close(self) -> None:
        self.client.close()


class AsyncConsumer:
    """`AsyncErnie` on a loop owned by the test (kept between steps, so its pool stays warm like the others)."""

    def __init__(self, sim: ErnieSimulator, provider: str, **_: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = AsyncErnie(**client_args(sim, provider, **LIMITS))

    def _run(self, coro: Any) -> Any:
        result = self.loop.run_until_complete(coro)
        assert not asyncio.all_tasks(self.loop), "a task was left on the caller's loop"
        return result

    def warm_up(self) -> None:
        self._run(self.client.chat(WARM_UP))

    def ask(self) -> Observed:
        shown: list[str] = []

        async def run() -> ErnieError:
            try:
                async with self.client.stream(QUESTION) as stream:
                    async for ev in stream:
                        if ev.type == "text":
                            shown.append(ev.text)
            except ErnieError as err:
                return err
            raise AssertionError("no error raised")

        err = self._run(run())
        return Observed(err, str(err), "".join(shown), err.partial_text)

    def follow_up(self) -> str:
        reply = self._run(self.client.chat(FOLLOW_UP))
        return reply.text

    def expected_history(self, kept: str) -> list[tuple[str, str]]:
        return [("user", FOLLOW_UP)]

    def close(self) -> None:
        self._run(self.client.aclose())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


class WidgetConsumer:
    """`ErnieChat` without a browser: the comm messages are captured (`sent`)."""

    def __init__(self, sim: ErnieSimulator, provider: str, sent: Any, **_: Any) -> None:
        self.client = Ernie(**client_args(sim, provider, **LIMITS))
        self.chat = ErnieChat(self.client)
        self.sent = sent

    def warm_up(self) -> None:
        assert self.chat.ask(WARM_UP).wait(10)["status"] == "ok"

    def ask(self) -> Observed:
        answer = self.chat.ask(QUESTION).wait(10)
        assert answer["status"] == "error", answer
        mid = answer["mid"]
        done = self.sent.custom("done", mid)
        assert done == [{"type": "done", "mid": mid, "status": "error", "error": answer["error"]}]
        assert self.chat.status == "idle"
        stored = self.chat.messages[-1]  # the trait the browser renders from
        assert stored["status"] == "error" and stored["content"] == answer["content"]
        return Observed(None, answer["error"], self.sent.delta_text(mid), answer["content"])

    def follow_up(self) -> str:
        answer = self.chat.ask(FOLLOW_UP).wait(10)
        assert answer["status"] == "ok", answer
        return str(answer["content"])

    def expected_history(self, kept: str) -> list[tuple[str, str]]:
        return _expected_history(kept)

    def close(self) -> None:
        self.chat.close()
        self.client.close()


class MagicConsumer:
    """`%%ernie -p PROVIDER` cells in a real InteractiveShell."""

    def __init__(self, sim: ErnieSimulator, provider: str, ip: Any, monkeypatch: pytest.MonkeyPatch,
                 **_: Any) -> None:
        env = {**sim.env("qianfan-v1"), **sim.env("qianfan", api_key=client_args(sim, "qianfan")["api_key"])}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        self.ip = ip
        self.provider = provider

    def _cell(self, prompt: str) -> tuple[Any, Any]:
        with capture_output() as io:
            # a thread: the follow-up continues the conversation (a call without one stands alone)
            result = self.ip.run_cell(f"%%ernie -p {self.provider} --thread matrix\n{prompt}", store_history=True)
        return io, result

    def warm_up(self) -> None:
        # the same limits as the other consumers, through the magics' own configuration
        # (set on the instance, not with %config: the fixture restores instance traits, and a %config would
        # stay in the shared test shell's config for every later ErnieMagics)
        m = self.ip.magics_manager.registry["ErnieMagics"]
        for name, value in LIMITS.items():
            setattr(m, name, value)
        _, result = self._cell(WARM_UP)
        assert result.success

    def ask(self) -> Observed:
        io, result = self._cell(QUESTION)
        err = result.error_in_exec
        assert isinstance(err, ErnieError) and not isinstance(err, UsageError), repr(err)
        lines = [ln for ln in (io.stdout + io.stderr).splitlines() if ln.strip()]
        assert lines == [f"{type(err).__name__}: {err}"], lines  # one line naming the error, no traceback
        shown = io.outputs[-1].data["text/plain"] if io.outputs else ""
        last = threads.get_thread("matrix").messages[-1]
        assert last["role"] == "assistant" and last["status"] == "error" and last["error"] == str(err)
        return Observed(None, str(err), shown, last["content"])

    def follow_up(self) -> str:
        io, result = self._cell(FOLLOW_UP)
        assert result.success, result.error_in_exec
        return str(io.outputs[-1].data["text/plain"])

    def expected_history(self, kept: str) -> list[tuple[str, str]]:
        return _expected_history(kept)

    def close(self) -> None:
        pass  # the `ip` fixture closes the magics' clients


CONSUMERS = {"sync": SyncConsumer, "async": AsyncConsumer, "widget": WidgetConsumer, "magic": MagicConsumer}
_observed: list[dict[str, Any]] = []


@pytest.fixture(scope="module", autouse=True)
def _record() -> Any:
    yield
    if _observed:
        save_result("fault_matrix", _observed)


@pytest.fixture
def consumer(request: pytest.FixtureRequest, ernie_simulator: ErnieSimulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    kind, case = request.param
    extra: dict[str, Any] = {}
    if kind == "widget":
        extra["sent"] = request.getfixturevalue("sent")
    if kind == "magic":
        extra["ip"] = request.getfixturevalue("ip")
    made = CONSUMERS[kind](ernie_simulator, case.provider, monkeypatch=monkeypatch, **extra)
    yield made
    made.close()


@pytest.mark.parametrize(
    ("consumer", "case"),
    [pytest.param((kind, case), case, id=f"{kind}-{case.id}") for case in CASES for kind in CONSUMERS],
    indirect=["consumer"],
)
def test_fault_is_reported_keeps_the_partial_text_and_leaves_a_usable_conversation(
    consumer: Any, case: Case, ernie_simulator: ErnieSimulator
) -> None:
    sim = ernie_simulator
    consumer.warm_up()
    guard = LeakGuard()
    first = len(sim.chat_requests)
    sim.push(*case.scripts)
    t0 = time.monotonic()

    seen = consumer.ask()
    elapsed = time.monotonic() - t0
    failed = sim.chat_requests[first:]

    # 1. the right error, in words the user can read
    if seen.error is not None:
        assert type(seen.error) is case.error, repr(seen.error)
    assert is_bilingual(seen.message), seen.message
    assert case.says in seen.message, seen.message
    # 2. the text before the fault, kept exactly
    if case.partial is not None:
        assert seen.shown == seen.kept == case.partial
    else:
        assert seen.kept and seen.shown == seen.kept and seen.kept.startswith(PARTIAL)
    # what the simulator saw of the failed turn
    assert sim.pending == 0 and len(failed) == case.requests, [r.status for r in failed]
    if case.disconnect:
        assert sim.wait_for(lambda: failed[-1].disconnected, timeout=2), "the client did not close the stream"
    if case.extra is not None:
        case.extra(seen.error, failed)

    # 3. the next turn works, and carries what was kept
    assert consumer.follow_up() == echo_answer(FOLLOW_UP)
    assert _history(sim.chat_requests[-1].messages) == consumer.expected_history(seen.kept)

    # 4. nothing left behind
    guard.assert_clean(sim)

    kind = type(consumer).__name__.removesuffix("Consumer").lower()
    _observed.append({"consumer": kind, "fault": case.id, "error": case.error.__name__, "message": seen.message,
                      "partial_chars": len(seen.kept), "requests": len(failed), "seconds": round(elapsed, 3)})


# -- the response's byte iterators are closed with the stream, not by the garbage collector ------------------


def _open_httpx_generators() -> list[str]:
    """httpx2/httpcore2 async generators that are still suspended (not finished, not closed)."""
    return sorted(o.ag_code.co_qualname for o in gc.get_objects()
                  if inspect.isasyncgen(o) and o.ag_frame is not None
                  and ("httpx2" in o.ag_code.co_filename or "httpcore2" in o.ag_code.co_filename))


# Left suspended, they are finalized later by the GC (any thread, any time), which sometimes printed
# "Exception ignored … async generator already executing" into whatever cell was running.
@pytest.mark.parametrize("how", ["error-event", "malformed-json", "oversized-event", "consumer-stops"])
def test_a_stream_that_ends_early_closes_its_byte_iterators_at_once(how: str, ernie_simulator: ErnieSimulator) -> None:
    sim = ernie_simulator
    slow = Answer(text="abcdefgh" * 40, chunk_size=2, delay=0.002)  # still streaming when we stop reading
    with Ernie(**client_args(sim, "qianfan", max_retries=0)) as client:
        client.chat(WARM_UP)
        gc.collect()
        gc.disable()  # a leftover generator must be found here, before a collection finalizes it somewhere else
        try:
            if how == "consumer-stops":
                sim.push(slow)
                with client.stream(QUESTION) as stream:
                    next(iter(stream))
            else:
                sim.push({"error-event": Fault.error_midstream(after_chunks=2, answer=slow),
                          "malformed-json": Fault.malformed(after_chunks=2, answer=slow),
                          "oversized-event": Fault.oversized(after_chunks=2, answer=slow)}[how])
                with pytest.raises(ErnieError):
                    client.chat(QUESTION)
            assert sim.wait_for(lambda: sim.chat_requests[-1].finished, timeout=5)
            left = _open_httpx_generators()
        finally:
            gc.enable()
    assert left == [], f"left suspended for the GC: {left}"
