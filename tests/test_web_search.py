"""`web_search=`: the body each surface is sent, refusals before sending, and the sources that come back."""

from __future__ import annotations

from typing import Any

import pytest

from ernie_widget.client import BadRequestError, Ernie
from ernie_widget.testing import Answer, ErnieSimulator
from tests.client_support import client_args, collect

SOURCES = [{"index": 1, "url": "https://example.com/a", "title": "北京天气"},
           {"index": 2, "url": "https://example.org/b", "title": "Forecast"}]
CITED = "北京今天晴^[1]^，明天有雨^[1][2]^。"


@pytest.fixture(scope="module")
def sim() -> Any:
    with ErnieSimulator() as s:
        yield s


@pytest.mark.parametrize("provider", ["qianfan", "aistudio"])
def test_v2_body(sim: ErnieSimulator, provider: str) -> None:
    with Ernie(**client_args(sim, provider)) as client:
        client.chat("天气", web_search=True)
        assert sim.chat_requests[-1].json["web_search"] == {"enable": True, "enable_citation": True,
                                                            "enable_trace": True}
        client.chat("天气", web_search={"search_number": 5, "enable_status": True})
        assert sim.chat_requests[-1].json["web_search"] == {"enable": True, "search_number": 5,
                                                            "enable_status": True}
        client.chat("天气", web_search=False)
        assert sim.chat_requests[-1].json["web_search"] == {"enable": False}


def test_v1_body(sim: ErnieSimulator) -> None:
    with Ernie(**client_args(sim, "qianfan-v1")) as client:
        client.chat("天气", web_search=True)
        body = sim.chat_requests[-1].json
        assert (body["disable_search"], body["enable_citation"], body["enable_trace"]) == (False, True, True)
        assert "web_search" not in body


@pytest.mark.parametrize("bad, match", [
    ({"search_number": 29}, "1 to 28"),
    ({"search_number": True}, "1 to 28"),
    ({"enable_citation": "yes"}, "True or False"),
    ({"serch_number": 3}, "unknown web_search option"),
    ({"search_mode": "always"}, "search_mode"),
    ("on", "True, False or a dict"),
])
def test_bad_options_are_refused_before_sending(sim: ErnieSimulator, bad: Any, match: str) -> None:
    before = len(sim.chat_requests)
    with Ernie(**client_args(sim, "qianfan")) as client, pytest.raises(BadRequestError, match=match):
        client.chat("天气", web_search=bad)
    assert len(sim.chat_requests) == before


def test_surfaces_without_search_refuse(sim: ErnieSimulator) -> None:
    before = len(sim.chat_requests)
    with Ernie(**client_args(sim, "openai")) as client:
        with pytest.raises(BadRequestError, match="web search is ERNIE's own"):
            client.chat("天气", web_search=True)
        with Ernie(**client_args(sim, "qianfan", model="ernie-4.5-turbo-128k")) as ernie, \
                pytest.raises(BadRequestError, match="search_mode 'auto' only"):
            ernie.chat("天气", web_search={"search_mode": "required"})
    assert len(sim.chat_requests) == before


@pytest.mark.parametrize("placement", ["top", "web_search"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sources_arrive_as_events_and_on_the_reply(sim: ErnieSimulator, placement: str, mode: str) -> None:
    sim.push(Answer(text=CITED, search_results=SOURCES, search_placement=placement, chunk_size=3))
    out = collect(sim, mode, "qianfan", "天气", stream_kw={"web_search": True})
    assert out.reply is not None and out.reply.text == CITED
    assert list(out.reply.search_results) == SOURCES
    assert out.of("search_results") and list(out.of("search_results")[0].results or ()) == SOURCES
    assert out.reply.citations == {1: SOURCES[0], 2: SOURCES[1]}


def test_v1_sources(sim: ErnieSimulator) -> None:
    sim.push(Answer(text=CITED, search_results=SOURCES))
    reply = collect(sim, "sync", "qianfan-v1", "天气", stream_kw={"web_search": True}).reply
    assert reply is not None and list(reply.search_results) == SOURCES and set(reply.citations) == {1, 2}
