"""After the server says it is overloaded or rate-limited, the next try waits at least 1 s (as Baidu's SDK does).

The waits are measured where they matter: between two requests arriving at the simulator over real sockets, for
a stream, an unstreamed chat and a batch row (one policy, client/retry.py). A broken connection is still retried
quickly, and a Retry-After is honoured. The pure function's bounds are checked over many draws.
"""

from __future__ import annotations

import pytest

from ernie_widget.client import APIConnectionError, Ernie, ErnieError, RateLimitError, ServerError
from ernie_widget.client.retry import backoff
from ernie_widget.testing import ErnieSimulator, Fault

try:  # tests/ may or may not be a package
    from tests.client_support import chat, client_args, collect
except ImportError:
    from client_support import chat, client_args, collect  # type: ignore[no-redef]

pytestmark = pytest.mark.timeout(60)

#: time for one request to the local simulator and back, beyond the wait itself
SLACK = 0.9


def _gap(sim: ErnieSimulator) -> float:
    """Seconds between the arrivals of the first and the second chat request."""
    first, second = sim.chat_requests[:2]
    return second.started - first.started


def test_a_stream_waits_at_least_1s_after_v1_high_load(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.error_in_200(code=336100))  # v1 "server high load, please try again later"
    out = collect(ernie_simulator, "async", "qianfan-v1", max_retries=1)
    assert out.error is None and out.text
    assert 1.0 <= _gap(ernie_simulator) < 2.0 + SLACK


def test_a_chat_waits_at_least_1s_after_a_429_without_retry_after(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.status(429))  # v2 rpm_rate_limit_exceeded, no Retry-After header
    assert chat(ernie_simulator, "sync", "qianfan", max_retries=1).text
    assert 1.0 <= _gap(ernie_simulator) < 2.0 + SLACK


def test_retry_after_is_honoured_above_the_floor(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.status(429, retry_after=2))
    assert chat(ernie_simulator, "sync", "qianfan", max_retries=1).text
    assert 2.0 <= _gap(ernie_simulator) < 2.0 + SLACK


def test_a_batch_row_waits_at_least_1s_after_v2_high_load(ernie_simulator: ErnieSimulator) -> None:
    # v2 internal_error "high load" in a 200 body; the client gives up at once, so the retry is the row's own
    ernie_simulator.push(Fault.error_in_200())
    with Ernie(**client_args(ernie_simulator, "qianfan", max_retries=0)) as client:
        result = client.map(["q"], progress=False, row_retries=1)
    assert result.errors == {}
    assert 1.0 <= _gap(ernie_simulator) < 2.0 + SLACK


def test_a_broken_connection_is_still_retried_quickly(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.cut(after_chunks=0))  # the connection drops before any text
    out = collect(ernie_simulator, "sync", "qianfan", max_retries=1)
    assert out.error is None and out.text
    assert _gap(ernie_simulator) < 0.5 + SLACK


# -- the function itself ----------------------------------------------------------------------------------------

DRAWS = 4000


def _draws(retry: int, err: ErnieError) -> list[float]:
    return [backoff(retry, err) for _ in range(DRAWS)]


@pytest.mark.parametrize("err", [ServerError("high load", code=336100), RateLimitError("qps", code=18),
                                 ServerError("internal_error", code="internal_error"),
                                 RateLimitError("rpm", status_code=429, code="rpm_rate_limit_exceeded")])
def test_after_an_overload_the_wait_is_at_least_1s_doubles_is_jittered_and_capped(err: ErnieError) -> None:
    for retry, (low, high) in {1: (1, 2), 2: (2, 4), 3: (4, 8), 4: (4, 8), 50: (4, 8)}.items():
        waits = _draws(retry, err)
        assert low <= min(waits) and max(waits) <= high, retry
        # spread over the range, not bunched: many clients do not come back together
        assert max(waits) - min(waits) > 0.9 * (high - low), retry


def test_after_a_broken_connection_the_wait_stays_short() -> None:
    err = APIConnectionError("connection reset")
    for retry, high in {1: 0.5, 2: 1.0, 3: 2.0, 5: 8.0, 50: 8.0}.items():
        waits = _draws(retry, err)
        assert min(waits) >= 0.25 and max(waits) <= high, retry


def test_retry_after_is_a_floor_capped_at_120s() -> None:
    assert min(_draws(1, RateLimitError("rpm", retry_after=5))) >= 5
    assert min(_draws(1, APIConnectionError("reset", retry_after=3))) >= 3
    assert max(_draws(1, RateLimitError("rpm", retry_after=10_000))) == 120
