"""Several upstreams: routing by model name, and falling back to the next upstream on a connection error or 5xx
before any content reached the caller (never after). Two protocol simulators stand in for Qianfan and a
self-hosted OpenAI-compatible server (FastDeploy serving ERNIE-4.5 weights)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ernie_widget.gateway import GatewaySettings
from ernie_widget.gateway.cli import serve_parser, settings_from_args
from ernie_widget.gateway.settings import UpstreamSpec
from ernie_widget.gateway.testing import free_port, gateway_for
from ernie_widget.testing import Answer, ErnieSimulator, Fault

pytestmark = pytest.mark.timeout(60)

LOCAL_MODEL = "ernie-4.5-0.3b-paddle"


@pytest.fixture
def fastdeploy() -> Iterator[ErnieSimulator]:
    with ErnieSimulator() as sim:
        yield sim


def _spec(sim: ErnieSimulator, name: str = "fd", models: tuple[str, ...] = ("*",)) -> UpstreamSpec:
    return UpstreamSpec(name, "openai", sim.base_url("openai"), models)


def _ask(gw: Any, model: str | None = None, stream: bool = False) -> httpx.Response:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
    if model:
        body["model"] = model
    return httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=30)


def _text(r: httpx.Response) -> str:
    if r.headers["content-type"].startswith("application/json"):
        return str(r.json()["choices"][0]["message"]["content"])
    out = []
    for line in r.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            event = json.loads(line[6:])
            assert "error" not in event, event
            out.extend(c["delta"].get("content") or "" for c in event["choices"])
    return "".join(out)


def test_requests_go_to_the_upstream_that_serves_their_model(ernie_simulator: ErnieSimulator,
                                                             fastdeploy: ErnieSimulator) -> None:
    ernie_simulator.set_answer(text="from qianfan")
    fastdeploy.set_answer(text="from fastdeploy")
    with gateway_for(ernie_simulator, upstreams=(_spec(fastdeploy, models=("ernie-4.5-0.3b*",)),)) as gw:
        assert _text(_ask(gw, LOCAL_MODEL)) == "from fastdeploy"
        assert _text(_ask(gw, "ernie-4.5-turbo-128k", stream=True)) == "from qianfan"
        assert _text(_ask(gw)) == "from qianfan"  # no model: the default upstream's default model
        default_model = gw.gateway.client.model
    assert [r.json["model"] for r in fastdeploy.chat_requests] == [LOCAL_MODEL]
    assert [r.json.get("model") for r in ernie_simulator.chat_requests] == ["ernie-4.5-turbo-128k", default_model]


def test_a_5xx_before_any_content_falls_back_to_the_next_upstream(ernie_simulator: ErnieSimulator,
                                                                 fastdeploy: ErnieSimulator) -> None:
    ernie_simulator.set_answer(text="from qianfan")
    fastdeploy.push(Fault.status(503), Fault.status(500))
    with gateway_for(ernie_simulator, upstreams=(_spec(fastdeploy),), upstream_retries=0) as gw:
        assert _text(_ask(gw, "ernie-4.5-turbo-128k", stream=True)) == "from qianfan"
        assert _text(_ask(gw, "ernie-4.5-turbo-128k")) == "from qianfan"
        metrics = httpx.get(gw.url + "/metrics").text
    assert len(fastdeploy.chat_requests) == 2 and len(ernie_simulator.chat_requests) == 2
    assert 'ernie_gateway_upstream_fallbacks_total{upstream="fd"} 2.0' in metrics


def test_a_dead_upstream_falls_back_and_the_access_log_names_who_answered(
        ernie_simulator: ErnieSimulator, caplog: pytest.LogCaptureFixture) -> None:
    ernie_simulator.set_answer(text="from qianfan")
    dead = UpstreamSpec("dead", "openai", f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    with gateway_for(ernie_simulator, upstreams=(dead,), upstream_retries=0) as gw, \
            caplog.at_level("INFO", logger="ernie_widget.gateway.access"):
        assert _text(_ask(gw, stream=True)) == "from qianfan"
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ernie_widget.gateway.access"]
    assert logged and logged[-1]["upstream"] == "default" and logged[-1]["status"] == 200


def test_no_fallback_once_content_reached_the_caller(ernie_simulator: ErnieSimulator,
                                                      fastdeploy: ErnieSimulator) -> None:
    fastdeploy.push(Fault.cut(after_chunks=2, answer=Answer(text="partial answer here", chunk_size=3)))
    with gateway_for(ernie_simulator, upstreams=(_spec(fastdeploy),), upstream_retries=0) as gw:
        r = _ask(gw, "ernie-4.5-turbo-128k", stream=True)
    assert '"code":"upstream_connection_error"' in r.text  # an explicit error, never a spliced answer
    assert ernie_simulator.chat_requests == []  # the default upstream was never asked


def test_upstream_flags_parse_and_refuse_what_they_cannot_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FD_KEY", "fd-secret")
    args = serve_parser().parse_args(["--no-auth", "--upstream",
                                      "fd=openai,http://10.0.0.5:8180/v1,models=ernie-4.5-0.3b*|ernie-4.5-21b*,"
                                      "key-env=FD_KEY", "--upstream-retries", "0"])
    settings = settings_from_args(args)
    settings.validate()
    (spec,) = settings.upstreams
    assert spec.models == ("ernie-4.5-0.3b*", "ernie-4.5-21b*") and spec.key_env == "FD_KEY"
    assert spec.serves("ernie-4.5-21b-a3b") and not spec.serves("ernie-4.5-turbo-128k") and not spec.serves(None)
    assert "fd-secret" not in repr(settings)
    for bad in ("fd", "fd=openai", "Default=openai,http://x/v1", "fd=grpc,http://x/v1", "fd=openai,ftp://x",
                "fd=openai,http://x/v1,color=red", "fd=openai,http://x/v1,key-env=NOT_SET_ANYWHERE"):
        with pytest.raises(ValueError):
            UpstreamSpec.parse(bad)
    with pytest.raises(ValueError):
        GatewaySettings(no_auth=True, upstreams=(spec, spec)).validate()
