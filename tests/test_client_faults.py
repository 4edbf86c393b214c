"""Errors are read from the body whatever the HTTP status, typed, and retried only before any content."""

from __future__ import annotations

import logging

import pytest

try:  # tests/ may or may not be a package
    from tests.client_support import MODES, collect
except ImportError:
    from client_support import MODES, collect  # type: ignore[no-redef]

from ernie_widget.client import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ErnieError,
    IncompleteStreamError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from ernie_widget.testing import Answer, Fault

TEXT = "abcdefghijklmnop"


@pytest.fixture
def sim(ernie_simulator):
    ernie_simulator.set_answer(text=TEXT, chunk_size=2)
    return ernie_simulator


# -- errors detected from the body ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("code", "expected"), [
    (336003, BadRequestError),
    (336501, RateLimitError),
    (18, RateLimitError),
    (336100, ServerError),
    (6, AuthenticationError),
])
def test_v1_error_code_inside_http_200_is_an_error(sim, mode, code, expected):
    sim.push(Fault.error_in_200(code=code, message="from the body"))
    out = collect(sim, mode, "qianfan-v1", max_retries=0)
    assert type(out.error) is expected
    assert out.error.code == code and "from the body" in out.error.message
    assert sim.chat_requests[-1].status == 200  # precondition: the status said nothing


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("code", "expected"), [
    ("rpm_rate_limit_exceeded", RateLimitError),
    ("internal_error", ServerError),
    ("invalid_messages", BadRequestError),
    ("invalid_iam_token", AuthenticationError),
])
def test_v2_error_body_on_http_200_is_an_error(sim, mode, code, expected):
    sim.push(Fault.error_in_200(code=code))
    out = collect(sim, mode, "qianfan", max_retries=0)
    assert type(out.error) is expected and out.error.code == code


@pytest.mark.parametrize("mode", MODES)
def test_code_msg_body_on_http_200_is_a_rate_limit_error(sim, mode):
    # Baidu's rate-limit page: HTTP 200 with {"code": "rpm_rate_limit_exceeded", "msg": "..."}
    sim.push(Fault.error_in_200(style="code_msg"))
    out = collect(sim, mode, "qianfan", max_retries=0)
    assert isinstance(out.error, RateLimitError)
    assert "Rate limit reached for RPM" in out.error.message


@pytest.mark.parametrize("mode", MODES)
def test_bare_json_error_line_mid_v1_stream_is_an_error_with_the_partial_text(sim, mode):
    sim.push(Fault.error_midstream(after_chunks=3, code=336100))
    out = collect(sim, mode, "qianfan-v1", max_retries=2)
    assert isinstance(out.error, ServerError) and out.error.code == 336100
    assert out.error.partial_text == TEXT[:6]
    assert out.text == TEXT[:6]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "aistudio", "openai"])
def test_data_error_event_mid_stream_is_an_error_with_the_partial_text(sim, mode, provider):
    sim.push(Fault.error_midstream(after_chunks=2))
    out = collect(sim, mode, provider, max_retries=2)
    assert isinstance(out.error, ServerError)
    assert out.error.partial_text == TEXT[:4]
    assert any('"error"' in e for e in sim.chat_requests[-1].events)  # precondition: `data: {"error":…}`


@pytest.mark.parametrize("mode", MODES)
def test_llamacpp_error_line_mid_stream_is_an_error(sim, mode):
    sim.push(Fault.error_midstream(after_chunks=2, code=500, message="slot unavailable", style="llamacpp"))
    out = collect(sim, mode, "openai", max_retries=2)
    assert isinstance(out.error, ServerError)
    assert "slot unavailable" in out.error.message
    assert out.error.partial_text == TEXT[:4]
    assert not any("slot unavailable" in e for e in sim.chat_requests[-1].events)  # it was not a data: event


@pytest.mark.parametrize("mode", MODES)
def test_malformed_json_chunk_is_an_incomplete_stream_error(sim, mode):
    sim.push(Fault.malformed(after_chunks=2))
    out = collect(sim, mode, "qianfan")
    assert isinstance(out.error, IncompleteStreamError)
    assert out.error.partial_text == TEXT[:4]


# -- typed errors by status ------------------------------------------------------------------------

STATUSES = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (429, RateLimitError),
    (500, ServerError),
    (502, ServerError),
    (503, ServerError),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "aistudio", "openai"])
@pytest.mark.parametrize(("status", "expected"), STATUSES)
def test_http_status_gives_a_typed_error(sim, mode, provider, status, expected):
    sim.push(Fault.status(status))
    out = collect(sim, mode, provider, max_retries=0)
    assert type(out.error) is expected
    assert out.error.status_code == status
    assert out.error.request_id and out.error.request_id.startswith("as-")  # from X-Baidu-Request-Id


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("status", "expected"), STATUSES)
def test_http_status_with_a_non_json_body_gives_a_typed_error(sim, mode, status, expected):
    sim.push(Fault.status(status, body=b"<html><body>nginx says no</body></html>"))
    out = collect(sim, mode, "qianfan-v1", max_retries=0)
    assert type(out.error) is expected
    assert out.error.status_code == status and "nginx says no" in out.error.message


# -- retries ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_429_retry_after_is_honoured(sim, mode):
    sim.push(Fault.status(429, retry_after=0.6))
    out = collect(sim, mode, "qianfan", max_retries=2)
    assert out.error is None and out.text == TEXT
    first, second = sim.chat_requests
    assert second.started - first.started >= 0.6
    assert out.reply.metrics.retries == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "openai"])
def test_5xx_is_retried_until_it_succeeds(sim, mode, provider):
    sim.push(Fault.status(500), Fault.status(503))
    out = collect(sim, mode, provider, max_retries=2)
    assert out.error is None and out.text == TEXT
    assert len(sim.chat_requests) == 3
    assert out.reply.metrics.retries == 2


@pytest.mark.parametrize("mode", MODES)
def test_v1_retryable_code_in_http_200_is_retried(sim, mode):
    sim.push(Fault.error_in_200(code=336100))
    out = collect(sim, mode, "qianfan-v1", max_retries=2)
    assert out.error is None and out.text == TEXT
    assert out.reply.metrics.retries == 1


@pytest.mark.parametrize("mode", MODES)
def test_retries_stop_after_max_retries(sim, mode):
    sim.push(*[Fault.status(503)] * 4)
    out = collect(sim, mode, "qianfan", max_retries=2)
    assert isinstance(out.error, ServerError)
    assert len(sim.chat_requests) == 3


@pytest.mark.parametrize("mode", MODES)
def test_connection_cut_before_content_is_retried(sim, mode):
    sim.push(Fault.cut(after_chunks=0))
    out = collect(sim, mode, "qianfan", max_retries=2)
    assert out.error is None and out.text == TEXT
    assert len(sim.chat_requests) == 2 and out.reply.metrics.retries == 1


@pytest.mark.parametrize("mode", MODES)
def test_stall_before_content_is_retried(sim, mode):
    sim.push(Fault.stall(after_chunks=0, seconds=5))
    out = collect(sim, mode, "qianfan", max_retries=2, stream_idle_timeout=0.2)
    assert out.error is None and out.text == TEXT
    assert out.reply.metrics.retries == 1


@pytest.mark.parametrize("mode", MODES)
def test_refused_connection_is_retried_then_raised(ernie_simulator, caplog, mode):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    caplog.set_level(logging.INFO, logger="ernie_widget")
    out = collect(ernie_simulator, mode, "openai", base_url=f"http://127.0.0.1:{port}/v1", max_retries=2)
    assert type(out.error) is APIConnectionError
    assert f"127.0.0.1:{port}" in str(out.error)
    retries = [r for r in caplog.records if r.getMessage().startswith("retrying after APIConnectionError")]
    assert len(retries) == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", [
    Fault.error_midstream(after_chunks=2),
    Fault.cut(after_chunks=2),
    Fault.malformed(after_chunks=2),
], ids=["error", "cut", "malformed"])
def test_failure_after_text_is_not_retried(sim, mode, fault):
    sim.push(fault)
    out = collect(sim, mode, "qianfan", max_retries=3)
    assert isinstance(out.error, ErnieError)
    assert len(sim.chat_requests) == 1
    assert out.error.partial_text == TEXT[:4] == out.text


@pytest.mark.parametrize("mode", MODES)
def test_failure_after_reasoning_only_is_not_retried(sim, mode):
    sim.push(Fault.cut(after_chunks=1, answer=Answer(text="answer", reasoning="thinking", chunk_size=4)))
    out = collect(sim, mode, "qianfan", max_retries=3)
    assert isinstance(out.error, IncompleteStreamError)
    assert len(sim.chat_requests) == 1
    assert out.error.partial_reasoning == "thin"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("status", "expected"), [
    (400, BadRequestError), (401, AuthenticationError), (403, PermissionDeniedError), (404, BadRequestError),
])
def test_client_errors_are_never_retried(sim, mode, status, expected):
    sim.push(Fault.status(status), Fault.status(status), Fault.status(status))
    out = collect(sim, mode, "qianfan", max_retries=3)
    assert type(out.error) is expected
    assert len(sim.chat_requests) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("code", [17, 19])
def test_v1_quota_exhausted_is_not_retried(sim, mode, code):
    # 17 daily / 19 total request limit: a quota, not a burst; retrying cannot help (docs/ernie-wire.md §2.5)
    sim.push(*[Fault.error_in_200(code=code)] * 3)
    out = collect(sim, mode, "qianfan-v1", max_retries=2)
    assert isinstance(out.error, RateLimitError)
    assert len(sim.chat_requests) == 1
