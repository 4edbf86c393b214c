"""The model table (client/models.py): limits, capability flags and the source of every row."""

from __future__ import annotations

import pytest

from ernie_widget.client import ModelInfo, model_info
from ernie_widget.client.messages import input_limit
from ernie_widget.client.models import MODELS, UNKNOWN, thinking_models

# -- the model table -----------------------------------------------------------------------------------------------


def test_every_row_has_a_source_and_sane_limits():
    names = [m.name for m in MODELS]
    assert len(names) == len(set(names))
    for m in MODELS:
        assert isinstance(m, ModelInfo) and m.known
        assert m.source.strip() and ("docs/ernie-wire.md §" in m.source or "qianfan 0.4.12.3" in m.source
                                     or "not in sources" in m.source), m.name
        assert m.context_window > 0 and m.max_output_tokens > 0 and m.max_input_tokens > 0, m.name
        assert m.max_input_tokens <= m.context_window and m.max_output_tokens <= m.context_window, m.name
        assert m.max_input_chars is None or m.max_input_chars > 0, m.name
        assert not (m.thinking and m.always_thinks), m.name  # a switch, or always on: not both
        assert m.pattern and m.name == m.name.lower()


def test_each_rows_own_name_finds_that_row():
    # first match wins: a family pattern listed too early would hide a specific row
    for m in MODELS:
        assert model_info(m.name) is m, m.name
        assert model_info(m.name.upper()) is m, m.name


@pytest.mark.parametrize("name", ["some-unknown-model", "gpt-3.5-turbo", "default", "SmolLM2-135M-Instruct-Q4_1",
                                  "", None])
def test_an_unknown_model_gets_conservative_figures_and_no_capability(name):
    info = model_info(name)
    assert not info.known and info.family == "unknown"
    assert info.name == (name or "unknown")
    assert not (info.tools or info.vision or info.json_schema or info.thinking or info.always_thinks)
    assert info.max_input_tokens <= min(m.max_input_tokens for m in MODELS)
    assert info.max_output_tokens <= min(m.max_output_tokens for m in MODELS)
    assert info.max_input_chars is None
    assert input_limit(name) == (None, None)  # not trimmed: its server's own limit is unknown


@pytest.mark.parametrize(("spelling", "row"), [
    ("ERNIE-Speed-8K", "ernie-speed-8k"), ("ernie_speed", "ernie-speed-8k"), ("ERNIE Speed-AppBuilder", "ernie-speed-8k"),
    ("ERNIE-Bot", "ernie-3.5-8k"), ("completions", "ernie-3.5-8k"), ("ERNIE-Bot-4", "ernie-4.0-8k"),
    ("completions_pro", "ernie-4.0-8k"), ("ERNIE-Bot-turbo", "ernie-lite-8k-0922"), ("eb-instant", "ernie-lite-8k-0922"),
    ("ERNIE-Character-8K", "ernie-char-8k"), ("ERNIE-4.0-Turbo-8K-Latest", "ernie-4.0-turbo-8k"),
    ("baidu/ERNIE-4.5-21B-A3B-Thinking", "ernie-4.5-21b-a3b-thinking"), ("ERNIE-4.5-21B-A3B-PT", "ernie-4.5-21b-a3b"),
    ("baidu/ERNIE-4.5-0.3B-Paddle", "ernie-4.5-0.3b"), ("ERNIE-4.5-300B-A47B-Paddle", "ernie-4.5-300b-a47b"),
    ("baidu/ERNIE-4.5-VL-28B-A3B-PT", "ernie-4.5-vl-28b-a3b"), ("ernie-4.5-turbo-128k-preview", "ernie-4.5-turbo-128k"),
    ("ernie-x1-32k-preview", "ernie-x1-32k"), ("ERNIE-X1.1-Preview", "ernie-x1.1-preview"),
])
def test_lookup_is_case_insensitive_across_each_surfaces_spelling(spelling, row):
    assert model_info(spelling).name == row


def test_capability_flags_of_named_models():
    flags = {n: (i.tools, i.vision, i.thinking, i.always_thinks)
             for n in ("ernie-5.0-thinking-preview", "ernie-x1-turbo-32k", "ernie-x1.1-preview",
                       "ernie-4.5-turbo-vl-preview", "ernie-4.5-turbo-vl", "ernie-4.5-vl-28b-a3b",
                       "ernie-4.5-turbo-128k", "ernie-4.5-21b-a3b-thinking", "ernie-4.0-8k", "ernie-3.5-8k",
                       "ernie-speed-8k", "ernie-lite-8k", "ernie-char-8k")
             for i in [model_info(n)]}
    assert flags == {
        #                              tools  vision thinking always
        "ernie-5.0-thinking-preview": (False, False, True, False),
        "ernie-x1-turbo-32k": (False, False, False, True),
        "ernie-x1.1-preview": (False, False, False, True),
        "ernie-4.5-turbo-vl-preview": (False, True, True, False),
        "ernie-4.5-turbo-vl": (False, True, False, False),
        "ernie-4.5-vl-28b-a3b": (False, True, True, False),
        "ernie-4.5-turbo-128k": (False, False, False, False),
        "ernie-4.5-21b-a3b-thinking": (True, False, False, True),
        "ernie-4.0-8k": (True, False, False, False),  # v1 `functions`
        "ernie-3.5-8k": (True, False, False, False),
        "ernie-speed-8k": (True, False, False, False),  # v1 `tools`
        "ernie-lite-8k": (False, False, False, False),
        "ernie-char-8k": (False, False, False, False),
    }
    assert not any(m.json_schema for m in MODELS)  # documented per surface, for no model (docs/ernie-wire.md §6)
    # what the refusal names are exactly the documented switches (docs/ernie-wire.md §6, Wm95lyynv)
    assert {"ernie-5.0-thinking-preview", "ernie-4.5-turbo-vl-preview", "ernie-4.5-turbo-vl-32k-preview",
            "ernie-4.5-vl-28b-a3b"} <= set(thinking_models())


@pytest.mark.parametrize(("name", "chars", "tokens"), [
    ("ERNIE-Speed-8K", 11200, 6144), ("ernie-speed-128k", 507904, 124000), ("ernie-3.5-128k", 516096, 126976),
    ("ernie-4.0-8k", 20000, 5120), ("ernie-lite-pro-8k", 24000, 6144), ("ernie-4.0-turbo-128k", None, 124000),
    ("ernie-4.5-turbo-128k", None, 123000), ("ernie-4.5-21b-a3b", None, 120000), ("ernie-x1-turbo-32k", None, 28000),
])
def test_input_limit_comes_from_the_table(name, chars, tokens):
    assert input_limit(name) == (chars, tokens)
    info = model_info(name)
    assert (info.max_input_chars, info.max_input_tokens) == (chars, tokens)


def test_unknown_figures_are_the_unknown_row():
    assert model_info("nope").context_window == UNKNOWN.context_window
