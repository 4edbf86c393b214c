"""A model name cannot steer a request to another path or query of the upstream host.

Qianfan v1 puts the model's endpoint into the URL path, next to the team's OAuth token in the query. A name such
as ``../../../../x/y`` once sent ``POST /x/y?access_token=…`` and ``ernie-speed-8k?injected=1&`` added query
parameters — through the client and through a gateway running ``--provider qianfan-v1``. Such names are now
refused before anything is sent (not even the OAuth token is fetched), and the endpoint is quoted as one path
segment besides.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ernie_widget.client import AsyncErnie, BadRequestError, Ernie
from ernie_widget.client.config import ProviderConfig
from ernie_widget.client.providers.qianfan_v1 import QianfanV1Provider
from ernie_widget.gateway.testing import gateway_for
from ernie_widget.testing import ErnieSimulator

try:  # tests/ may or may not be a package
    from tests.client_support import client_args
except ImportError:
    from client_support import client_args  # type: ignore[no-redef]

pytestmark = pytest.mark.timeout(60)

HOSTILE = [
    "../../../../x/y",
    "ernie-speed-8k?injected=1&",
    "ernie-speed-8k#frag",
    "..",
    ".",
    "a/b",
    "%2e%2e%2fx",
    "ernie speed",
    "ernie\r\nX-Injected: 1",
    "ernie-speed-8k\x00",
    "x" * 300,
]
V1_PREFIX = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"


@pytest.mark.parametrize("model", HOSTILE)
def test_sync_client_refuses_a_hostile_v1_model_before_sending_anything(ernie_simulator: ErnieSimulator,
                                                                        model: str) -> None:
    with Ernie(**client_args(ernie_simulator, "qianfan-v1", max_retries=0)) as client, \
            pytest.raises(BadRequestError, match="模型名称无效 / "):
        client.chat("hi", model=model)
    assert ernie_simulator.all_requests == []  # no chat request and no OAuth token request either


@pytest.mark.parametrize("model", ["../../../../x/y", "ernie-speed-8k?injected=1&"])
def test_async_client_refuses_a_hostile_v1_model_before_sending_anything(ernie_simulator: ErnieSimulator,
                                                                         model: str) -> None:
    async def main() -> None:
        async with AsyncErnie(**client_args(ernie_simulator, "qianfan-v1", max_retries=0)) as client:
            with pytest.raises(BadRequestError):
                await client.chat("hi", model=model)

    asyncio.run(main())
    assert ernie_simulator.all_requests == []


def test_a_hostile_default_model_is_refused_too(ernie_simulator: ErnieSimulator) -> None:
    with Ernie(**client_args(ernie_simulator, "qianfan-v1", model="../../x", max_retries=0)) as client, \
            pytest.raises(BadRequestError):
        client.chat("hi")
    assert ernie_simulator.all_requests == []


@pytest.mark.parametrize("model,endpoint", [("ERNIE-Speed-8K", "ernie_speed"),
                                            ("my_custom-endpoint.v2", "my_custom-endpoint.v2")])
def test_plain_v1_names_still_reach_their_endpoint(ernie_simulator: ErnieSimulator, model: str,
                                                   endpoint: str) -> None:
    with Ernie(**client_args(ernie_simulator, "qianfan-v1", max_retries=0)) as client:
        assert client.chat("hi", model=model).text
    assert ernie_simulator.chat_requests[-1].path == V1_PREFIX + endpoint


def test_the_gateway_refuses_a_hostile_v1_model_with_a_400(ernie_simulator: ErnieSimulator,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ernie_simulator.env("qianfan-v1").items():
        monkeypatch.setenv(key, value)
    with gateway_for(ernie_simulator, "qianfan-v1") as gw, httpx.Client(timeout=30) as http:
        url = gw.url + "/v1/chat/completions"
        for model in ["../../../../x/y", "ernie-speed-8k?injected=1&"]:
            for stream in (False, True):
                r = http.post(url, json={"model": model, "stream": stream,
                                         "messages": [{"role": "user", "content": "hi"}]})
                assert r.status_code == 400, r.text
                assert r.json()["error"]["code"] == "invalid_request"
        assert ernie_simulator.all_requests == []
        # a plain name still goes through, to its own endpoint only
        ok = http.post(url, json={"model": "ERNIE-Lite-8K", "messages": [{"role": "user", "content": "hi"}]})
    assert ok.status_code == 200, ok.text
    paths = [r.path for r in ernie_simulator.all_requests]
    assert paths[-1] == V1_PREFIX + "ernie-lite-8k"
    assert all(p == V1_PREFIX + "ernie-lite-8k" or p.startswith("/oauth/") for p in paths)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=80))
def test_any_v1_model_name_is_refused_or_stays_one_path_segment(model: str) -> None:
    provider = QianfanV1Provider(ProviderConfig(provider="qianfan-v1", base_url="https://upstream.example",
                                                api_key="ak", secret_key="sk"))
    try:
        provider.check_params({"model": model})
    except BadRequestError:
        return
    req = provider.build_request([{"role": "user", "content": "hi"}], {"model": model}, stream=True)
    url = httpx.URL(req.url)
    assert url.host == "upstream.example" and not url.query and not url.fragment
    assert url.path.startswith(V1_PREFIX)
    segment = url.raw_path.decode()[len(V1_PREFIX):]
    assert segment and "/" not in segment and segment not in (".", "..")
    assert segment == quote(segment, safe="-._~")
