"""Keys, AK/SK and v1 access tokens never show up in a repr, an error or a log line — even at DEBUG."""

from __future__ import annotations

import json
import logging
import pickle
import secrets
import traceback

import pytest

try:  # tests/ may or may not be a package
    from tests.client_support import MODES, PROVIDERS, client_args, collect
except ImportError:
    from client_support import MODES, PROVIDERS, client_args, collect  # type: ignore[no-redef]

from ernie_widget.client import AsyncErnie, AuthenticationError, BadRequestError, Ernie, ErnieError
from ernie_widget.testing import Fault


def _key() -> str:
    return "k" + secrets.token_hex(12)


def _everything_about(err: BaseException) -> str:
    """Every way an error can be shown: str, repr, fields, traceback, pickle round trip."""
    parts = [str(err), repr(err), "".join(traceback.format_exception(err))]
    if isinstance(err, ErnieError):
        parts += [err.message, repr(err.body), repr(err.code), str(pickle.loads(pickle.dumps(err)))]
    return "\n".join(parts)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_key_is_not_in_the_repr_of_the_client_or_its_config(ernie_simulator, provider):
    key, sk = _key(), _key()
    args = client_args(ernie_simulator, provider, api_key=key, secret_key=sk)
    for client in (Ernie(**args), AsyncErnie(**args)):
        shown = "\n".join([repr(client), str(client), repr(client.config), str(client.config)])
        assert key not in shown and sk not in shown
        assert provider in repr(client)


@pytest.mark.parametrize("mode", MODES)
def test_key_echoed_in_an_error_body_is_masked(ernie_simulator, mode):
    key = "bce-v3/ALTAK-" + secrets.token_hex(8) + "/" + secrets.token_hex(16)
    body = {"error": {"code": "invalid_iam_token", "message": f"key {key} is not valid",
                      "type": "invalid_request_error"}}
    ernie_simulator.push(Fault.status(401, body=body))
    out = collect(ernie_simulator, mode, "qianfan", api_key=key)
    assert isinstance(out.error, AuthenticationError)
    assert "is not valid" in out.error.message  # the server's message is kept…
    assert key not in _everything_about(out.error)  # …without the key


@pytest.mark.parametrize("mode", MODES)
def test_key_in_a_non_json_error_body_is_masked(ernie_simulator, mode):
    key = _key()
    ernie_simulator.push(Fault.status(502, body=f"<html>upstream rejected Bearer {key}</html>"))
    out = collect(ernie_simulator, mode, "openai", api_key=key, max_retries=0)
    assert isinstance(out.error, ErnieError)
    assert "upstream rejected" in out.error.message
    assert key not in _everything_about(out.error)


@pytest.mark.parametrize("mode", MODES)
def test_v1_token_echoed_in_an_error_is_masked(ernie_simulator, mode):
    args = client_args(ernie_simulator, "qianfan-v1")
    with Ernie(**args) as client:  # learn the token this process will be given
        client.chat("hi")
    token = ernie_simulator.chat_requests[-1].query["access_token"]
    ernie_simulator.push(Fault.error_in_200(code=336003, message=f"bad request for access_token={token} ({token})"))
    if mode == "sync":
        with Ernie(**args) as client, pytest.raises(BadRequestError) as info:
            client.chat("again")
    else:
        import asyncio

        async def run() -> None:
            async with AsyncErnie(**args) as client:
                await client.chat("again")

        with pytest.raises(BadRequestError) as info:
            asyncio.run(run())
    assert "bad request for" in info.value.message
    assert token not in _everything_about(info.value)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.names: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.names.add(record.name.split(".", 1)[0])


@pytest.fixture
def debug_logs():
    """Every log record of the process at DEBUG (root, httpx2, httpcore2, ernie_widget), formatted."""
    handler = _Capture()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("", "httpx2", "httpcore2", "ernie_widget")}
    root.addHandler(handler)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("mode", MODES)
def test_debug_logs_never_contain_the_v1_token_or_ak_sk(ernie_simulator, debug_logs, mode):
    ak, sk = "AK" + secrets.token_hex(12), "SK" + secrets.token_hex(16)
    args = client_args(ernie_simulator, "qianfan-v1", api_key=ak, secret_key=sk)
    # an answer after a retried failure, then an expired token: every path that logs a URL or an error
    ernie_simulator.push(Fault.cut(after_chunks=0))
    if mode == "sync":
        with Ernie(**args) as client:
            client.chat("one")
            ernie_simulator.expire_tokens()
            list(client.stream("two"))
    else:
        import asyncio

        async def run() -> None:
            async with AsyncErnie(**args) as client:
                await client.chat("one")
                ernie_simulator.expire_tokens()
                async with client.stream("two") as stream:
                    async for _ in stream:
                        pass

        asyncio.run(run())

    oauth = [r for r in ernie_simulator.requests if r.surface == "oauth"]
    tokens = [json.loads(r.response_body)["access_token"] for r in oauth]
    chats = ernie_simulator.chat_requests
    # preconditions: the secrets really went over the wire, and the libraries really logged requests
    assert oauth[0].query["client_id"] == ak and oauth[0].query["client_secret"] == sk
    assert len(chats) == 4 and len(tokens) == 2  # cut + retry, then expired + refreshed
    assert [r.query["access_token"] for r in chats] == [tokens[0], tokens[0], tokens[0], tokens[1]]
    assert {"httpx2", "httpcore2", "ernie_widget"} <= debug_logs.names
    assert any("oauth/2.0/token" in line for line in debug_logs.lines)
    assert any("access_token=" in line for line in debug_logs.lines)

    logged = "\n".join(debug_logs.lines)
    for secret in (ak, sk, *tokens):
        assert secret not in logged
