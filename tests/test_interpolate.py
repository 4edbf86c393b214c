"""Prompt interpolation: only {name}/{In[n]}/{Out[n]}/{Err[n]} fields; every other brace is text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ernie_widget.interpolate import format_value, interpolate


class Warnings(list):
    def __call__(self, message: str) -> None:
        self.append(message)


def ns(**kw):
    return dict(kw)


# --- fields --------------------------------------------------------------------------------------------


def test_name_is_replaced_from_namespace():
    assert interpolate("Summarise {text}.", ns(text="a long story")) == "Summarise a long story."


def test_row_shadows_namespace():
    out = interpolate("{city} / {country}", ns(city="Beijing", country="China"), row={"city": "Shanghai"})
    assert out == "Shanghai / China"


def test_unicode_identifier_is_a_field():
    assert interpolate("翻译：{原文}", {"原文": "hello"}) == "翻译：hello"


def test_row_only_fields():
    assert (
        interpolate("Q: {question}", {}, row={"question": "为什么天空是蓝色的？"})
        == "Q: 为什么天空是蓝色的？"
    )


def test_in_out_err_by_positive_index():
    namespace = ns(In=["", "x = 1", "x + 1"], Out={2: 2}, Err={1: "ZeroDivisionError: division by zero"})
    assert (
        interpolate("{In[1]}|{Out[2]}|{Err[1]}", namespace) == "x = 1|2|ZeroDivisionError: division by zero"
    )


def test_negative_index_counts_back_from_the_current_cell():
    # In[-1] is the running cell; Out/Err[-k] resolve to the same execution count as In[-k].
    namespace = ns(In=["", "a = 1", "a * 10", "%%ernie ..."], Out={2: 10}, Err={1: "boom"})
    assert interpolate("{In[-2]} -> {Out[-2]}", namespace) == "a * 10 -> 10"
    assert interpolate("{Err[-3]}", namespace) == "boom"
    assert interpolate("{In[-1]}", namespace) == "%%ernie ..."


def test_negative_index_without_in_uses_recorded_order():
    assert interpolate("{Out[-1]}", ns(Out={3: "three", 7: "seven"})) == "seven"


def test_history_index_out_of_range_stays_literal_and_warns():
    warnings = Warnings()
    namespace = ns(In=["", "x"], Out={}, Err={})
    out = interpolate("{In[9]} {Out[1]} {Err[-5]}", namespace, warn=warnings)
    assert out == "{In[9]} {Out[1]} {Err[-5]}"
    assert len(warnings) == 1
    assert "{In[9]}" in warnings[0] and "{Out[1]}" in warnings[0] and "{Err[-5]}" in warnings[0]


def test_missing_name_stays_literal_and_warns_once_bilingually():
    warnings = Warnings()
    out = interpolate("{missing} and {missing} and {other}", {}, warn=warnings)
    assert out == "{missing} and {missing} and {other}"
    assert len(warnings) == 1
    message = warnings[0]
    assert "\n" not in message
    assert "{missing}" in message and "{other}" in message
    assert "未找到" in message and "Not found" in message
    assert message.count("{missing}") == 1


def test_no_warning_when_everything_resolves():
    warnings = Warnings()
    interpolate("{a}", ns(a=1), warn=warnings)
    assert warnings == []


def test_missing_name_without_warn_callback_is_silent():
    assert interpolate("{nope}", {}) == "{nope}"


# --- braces that are not fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        '{"a": 1}',
        '{"model": "ernie-4.5", "messages": [{"role": "user", "content": "hi"}]}',
        '{"a": {"b": {"c": 1}}}',  # nested JSON ends with }}} — must not be "unescaped"
        "{x for x in y}",
        'f"{x!r} {x:>10} {x=}"',
        "{0} {1}",
        "{a.b} {a[0]} {a['k']}",
        "{ spaced }",
        "unbalanced { and } and {{ and }}",
        "{",
        "}",
        "{}",
        r"\frac{1}{x^{2}}",
        "{{ jinja }}",
        "function f() { if (x) { return {}; }}",
        "{In[x]} {In[1.5]} {Out[]} {Foo[1]}",
    ],
)
def test_non_field_braces_are_literal(template):
    namespace = ns(x=1, y=[1], a=2, In=["", "c"], Out={}, Err={})
    warnings = Warnings()
    assert interpolate(template, namespace, warn=warnings) == template
    assert warnings == []


def test_doubled_braces_escape_a_field():
    assert interpolate("{{name}} is {name}", ns(name="ERNIE")) == "{name} is ERNIE"
    assert interpolate("{{In[1]}}", ns(In=["", "code"])) == "{In[1]}"


def test_jupyter_ai_967_in_cell_containing_dict_literal():
    # jupyter-ai runs format_map again over the interpolated text and raises on `{"a": 1}`.
    code = 'config = {"a": 1, "b": {"c": [1, 2]}}\nprint(f"{config!r}")'
    out = interpolate("Explain:\n{In[1]}", ns(In=["", code]))
    assert out == "Explain:\n" + code


def test_jupyter_ai_1260_json_prompt_body():
    template = 'Return JSON like {"name": "...", "tags": ["..."]} for {item}.'
    assert interpolate(template, ns(item="a teapot")) == template.replace("{item}", "a teapot")


def test_set_comprehension_next_to_a_field():
    template = "Why is {x for x in data} slower than set(data) for {data}?"
    out = interpolate(template, ns(data=[3, 1]))
    assert out == "Why is {x for x in data} slower than set(data) for [3, 1]?"


def test_single_pass_values_are_not_reinterpreted():
    namespace = ns(a="{b}", b="SHOULD NOT APPEAR", c="{{b}}")
    assert interpolate("{a} {c}", namespace) == "{b} {{b}}"


def test_value_with_braces_from_history_is_inserted_verbatim():
    namespace = ns(In=["", "d = {k: v for k, v in x}  # {name}"], name="N")
    assert interpolate("{In[1]} {name}", namespace) == "d = {k: v for k, v in x}  # {name} N"


# --- value formatting ----------------------------------------------------------------------------------


def test_strings_are_inserted_as_is():
    assert interpolate("<{s}>", ns(s="  多行\n文本  ")) == "<  多行\n文本  >"


def test_other_objects_use_repr():
    assert interpolate("{v}", ns(v={"k": [1, 2]})) == "{'k': [1, 2]}"
    assert interpolate("{n}", ns(n=3.5)) == "3.5"
    assert interpolate("{b}", ns(b=b"\x00raw")) == "b'\\x00raw'"


def test_long_string_is_truncated_with_marker():
    out = interpolate("{s}", ns(s="x" * 5000), max_value_chars=100)
    assert out == "x" * 100 + "… (4900 more chars)"


def test_huge_string_truncation_counts_all_remaining_chars():
    out = format_value("y" * 1_000_000, 50)
    assert out == "y" * 50 + "… (999950 more chars)"


def test_long_repr_is_truncated():
    out = interpolate("{v}", ns(v=list(range(10_000))), max_value_chars=200)
    assert out.startswith("[0, 1, 2, ")
    assert re.search(r"… \(\d+ more chars\)$", out)
    assert len(out) < 250


def test_broken_repr_does_not_raise():
    class Broken:
        def __repr__(self):
            raise RuntimeError("no")

    assert interpolate("{v}", ns(v=Broken())) == "<Broken object (repr failed: RuntimeError)>"


def test_dataframe_becomes_schema_and_head():
    import pandas as pd  # a dev dependency
    frame = pd.DataFrame({"city": [f"city{i}" for i in range(1000)], "pop": range(1000), "area": 1.5})
    out = interpolate("Data:\n{frame}", ns(frame=frame), max_value_chars=4000)
    assert "shape=(1000, 3)" in out
    assert "city: object" in out or "city: str" in out
    assert "pop: int64" in out and "area: float64" in out
    assert "head(5):" in out
    assert "city4" in out
    assert "city5" not in out and "city999" not in out  # never a full dump
    assert len(out) < 4000


def test_dataframe_summary_respects_max_chars():
    import pandas as pd  # a dev dependency
    frame = pd.DataFrame({f"column_{i}": range(3) for i in range(200)})
    out = format_value(frame, 500)
    assert out.startswith("DataFrame shape=(3, 200)")
    assert re.search(r"… \(\d+ more chars\)$", out)
    assert len(out) <= 500 + len("… (99999 more chars)")


def test_series_summary():
    import pandas as pd  # a dev dependency
    out = format_value(pd.Series([1.0, 2.0], name="score"))
    assert out.startswith("Series shape=(2,)")
    assert "name: score, dtype: float64" in out


def test_dataframe_like_duck_type_without_pandas():
    class Frame:
        shape = (2, 1)
        dtypes = {"a": "int64"}

        def head(self, n):
            return "a\n1\n2"

    out = format_value(Frame())
    assert out == "Frame shape=(2, 1)\ncolumns:\n  a: int64\nhead(5):\na\n1\n2"


# --- redaction -----------------------------------------------------------------------------------------


def test_key_in_a_value_is_redacted():
    out = interpolate("Debug: {cfg}", ns(cfg="api_key = bce-v3/ALTAK-abc/def"))
    assert out == "Debug: api_key = bce-v3/ALTAK-***"


def test_key_in_history_is_redacted():
    out = interpolate("{In[1]}", ns(In=["", 'Ernie(api_key="bce-v3/ALTAK-abc123/def456")']))
    assert "abc123" not in out and "def456" not in out


def test_template_text_itself_is_not_redacted():
    # The user typed it; interpolation only redacts what it inserts.
    template = "Is bce-v3/ALTAK-abc/def a valid key format? {q}"
    assert interpolate(template, ns(q="yes?")) == "Is bce-v3/ALTAK-abc/def a valid key format? yes?"


def test_redaction_happens_before_truncation():
    key = "bce-v3/ALTAK-" + "a" * 40 + "/" + "b" * 40
    out = format_value("x" * 90 + key, 100)
    assert "aaaa" not in out and "bbbb" not in out


# --- properties ----------------------------------------------------------------------------------------

_FIELD_RE = re.compile(r"\{(?:[^\W\d]\w*|(?:In|Out|Err)\[-?[0-9]+\])\}")
_brace_text = st.text(alphabet=st.sampled_from(list("{}[]()ab_xIOnutErr01-9 \"':,.!=\n中")), max_size=60)


@given(_brace_text)
def test_templates_without_fields_come_back_unchanged(template):
    if _FIELD_RE.search(template):
        return  # only field-free templates are covered by this property
    namespace = ns(a=1, b=2, x=3, In=["", "i1"], Out={1: "o1"}, Err={1: "e1"})
    assert interpolate(template, namespace) == template


@given(_brace_text)
def test_with_an_empty_namespace_only_escapes_change(template):
    warnings = Warnings()
    out = interpolate(template, {}, warn=warnings)
    # Nothing resolves, so the only change is {{field}} → {field}.
    assert out == re.sub(r"\{(\{(?:[^\W\d]\w*|(?:In|Out|Err)\[-?[0-9]+\])\})\}", r"\1", template)
    assert len(warnings) <= 1
