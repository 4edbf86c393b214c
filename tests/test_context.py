"""@-mention context (ernie_widget.context): what each type sends, every bound, the secret rule, the variable list,
the ``%%ernie`` mention rules and the token budget. Real objects throughout: a 10-million-row frame, a real IPython
shell for errors and cells, objects that record every access made to them."""

from __future__ import annotations

import re
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ernie_widget.client.messages import estimate_tokens
from ernie_widget.client.redact import redact
from ernie_widget.context import (
    MentionError,
    describe,
    find_mentions,
    fit_to_budget,
    format_context,
    list_variables,
)
from ernie_widget.context.budget import SHORTENED
from ernie_widget.context.render import TIME_LIMIT
from ernie_widget.context.timelimit import time_limit

ROWS = 10_000_000
#: a key of a shape `redact` knows; the part after the last slash must never leave describe()
CANARY = "bce-v3/ALTAK-canary1234/canarysecret5678"
CANARY_SECRET = "canarysecret5678"


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    """10 M rows, two of them object columns of Python strings (one with None): built once (≈0.3 s, ≈330 MB)."""
    names = np.tile(np.array(["alice", "bob", "carol", "dave"], dtype=object), ROWS // 4)
    cities = np.tile(np.array(["北京", "上海", None], dtype=object), ROWS // 3 + 1)[:ROWS]
    return pd.DataFrame(
        {
            "id": np.arange(ROWS),
            "amount": np.random.default_rng(1).random(ROWS),
            "name": pd.Series(names, dtype=object, copy=False),
            "city": pd.Series(cities, dtype=object, copy=False),
        },
        copy=False,
    )


@pytest.fixture
def no_last_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for attr in ("last_exc", "last_value", "last_type", "last_traceback"):
        monkeypatch.delattr(sys, attr, raising=False)


def _text(name: str, ns: dict[str, Any], **kw: Any) -> str:
    return describe(name, ns, **kw).item["text"]


# -- pandas ------------------------------------------------------------------------------------------------------


def test_ten_million_row_frame_is_described_from_a_sample_quickly(big: pd.DataFrame) -> None:
    ns = {"sales": big}
    describe("sales", ns)  # warm: pandas' first-call imports
    started = time.perf_counter()
    mention = describe("sales", ns)
    elapsed = time.perf_counter() - started
    item = mention.item
    text = item["text"]
    # full scans take ≈1.7 s here (describe() + isna().sum()); the benchmark holds the 50 ms goal, this the bound
    assert elapsed < 0.5, elapsed
    assert text.splitlines()[0] == "@sales: pandas DataFrame, 10,000,000 rows × 4 columns"
    assert item["label"] == "DataFrame 10,000,000 × 4"
    assert item["tokens"] == estimate_tokens(text) <= 2000
    assert mention.images == []
    assert "sampled 1,000 of 10,000,000 rows" in text
    for line in ("- id: int64", "- amount: float64", "- name: object", "- city: object"):
        assert line in text
    # the null count is the sample's (a third of the rows are None: about 333 of 1,000), not the frame's 3.3 M
    city = next(line for line in text.splitlines() if line.startswith("- city"))
    nulls = int(city.split("nulls ")[1].split(" ")[0].replace(",", ""))
    assert 250 < nulls < 420
    assert "top 'alice'" in text or "top 'bob'" in text or "top 'carol'" in text or "top 'dave'" in text
    assert "5 of the sampled rows:" in text
    assert describe("sales", ns).item["text"] == text  # a fixed seed: the same frame, the same context


def test_a_small_frame_is_described_exactly() -> None:
    df = pd.DataFrame({"a": [1.0, None, 3.0], "b": ["x", "y", "x"], "when": pd.to_datetime(["2024-01-01"] * 3)})
    text = _text("df", {"df": df})
    assert "statistics: all 3 rows" in text
    assert "- a: float64 · nulls 1 · min 1 · median 2 · mean 2 · max 3" in text
    assert "- b: " in text and "2 distinct · top 'x' ×2, 'y' ×1" in text
    assert "min 2024-01-01 00:00:00 · max 2024-01-01 00:00:00" in text
    assert "first rows:" in text


def test_a_wide_frame_names_the_columns_past_the_limit() -> None:
    df = pd.DataFrame(np.zeros((3, 100)), columns=[f"c{i}" for i in range(100)])
    text = _text("wide", {"wide": df})
    assert "columns (40 of 100 shown):" in text
    assert "- c39: float64" in text and "- c40:" not in text
    assert "…[60 more columns: c40, c41" in text


def test_a_long_string_cell_is_cut_before_it_is_formatted() -> None:
    df = pd.DataFrame({"doc": ["x" * 5_000_000, "short"]})
    started = time.perf_counter()
    text = _text("docs", {"docs": df})
    assert time.perf_counter() - started < 0.5
    assert "x" * 41 not in text and len(text) < 3000


def test_a_series() -> None:
    s = pd.Series(np.arange(2_000_000, dtype="float64"), name="price")
    item = describe("price", {"price": s}).item
    assert item["text"].startswith("@price: pandas Series 'price', 2,000,000 rows, float64\n")
    assert item["label"] == "Series 2,000,000"
    assert "sampled 1,000 of 2,000,000 rows" in item["text"]


# -- numpy, builtins, code ---------------------------------------------------------------------------------------------


def test_numpy_arrays_small_large_and_many_dimensional() -> None:
    small = describe("a", {"a": np.arange(12.0).reshape(3, 4)}).item
    assert small["text"].startswith("@a: numpy ndarray, shape 3 × 4, dtype float64\n")
    assert small["label"] == "ndarray 3 × 4"
    assert "[[ 0.  1.  2.  3.]" in small["text"] and "statistics (all 12 items)" in small["text"]

    large = np.random.default_rng(0).random((3000, 4000))
    started = time.perf_counter()
    text = _text("big", {"big": large})
    assert time.perf_counter() - started < 0.5
    assert "sampled 1,000 of 12,000,000 items, seed 0" in text and "..." in text and len(text) < 2000

    cube = np.zeros((7,) * 6)  # numpy would print 6⁶ edge items
    text = _text("cube", {"cube": cube})
    assert "not printed: 6 dimensions" in text and len(text) < 1000


def test_deep_nesting_cycles_and_huge_containers_stay_bounded() -> None:
    deep: list[Any] = []
    node = deep
    for _ in range(10_000):  # repr() of this would hit the recursion limit
        node.append([])
        node = node[0]
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    huge = list(range(10_000_000))
    ns = {"deep": deep, "cyclic": cyclic, "huge": huge, "d": {"k": {"k": {"k": {"k": {"k": 1}}}}}}
    assert "[[[[…1 item]]]]" in _text("deep", ns)
    assert "[1, […]]" in _text("cyclic", ns)
    started = time.perf_counter()
    item = describe("huge", ns).item
    assert time.perf_counter() - started < 0.2
    assert item["label"] == "list 10,000,000 items"
    assert "…[9,999,950 more items not sent]" in item["text"]
    assert "{…1 item}" in _text("d", ns)


def test_a_huge_string_is_cut_and_counted() -> None:
    text = "第一行\n" + "y" * 50_000_000
    started = time.perf_counter()
    item = describe("doc", {"doc": text}, max_tokens=500).item
    assert time.perf_counter() - started < 0.5
    assert item["text"].startswith("@doc: str, 50,000,004 chars\n第一行\n")  # lines are counted up to 1 M chars
    assert "more chars not sent]" in item["text"]
    assert len(item["text"]) < 2100 and item["tokens"] <= 500


def test_scalars_bytes_and_huge_ints() -> None:
    ns = {"n": 42, "x": 0.5, "flag": True, "none": None, "blob": b"\x00" * 100_000, "googol": 10**100_000,
          "np_scalar": np.float64(1.5)}
    assert _text("n", ns) == "@n: int = 42"
    assert _text("x", ns) == "@x: float = 0.5"
    assert _text("none", ns) == "@none: NoneType = None"
    assert _text("np_scalar", ns) == "@np_scalar: float64 = np.float64(1.5)"
    assert "about 100,001 digits" in _text("googol", ns)
    blob = describe("blob", ns).item
    assert blob["label"] == "bytes 100,000" and "more bytes not sent" in blob["text"] and len(blob["text"]) < 2200


def test_functions_and_classes_send_their_source() -> None:
    def scale(values: list[float], factor: float = 2.0) -> list[float]:
        """Multiply every value."""
        return [v * factor for v in values]

    class Model:
        """A model."""

        def fit(self) -> None:
            pass

    ns = {"scale": scale, "Model": Model, "length": len}
    text = _text("scale", ns)
    assert text.startswith("@scale: function test_functions_and_classes_send_their_source.<locals>.scale(values: ")
    assert "return [v * factor for v in values]" in text
    assert "def fit(self)" in _text("Model", ns)
    builtin = _text("length", ns)  # no source: the signature and the docstring
    assert "(source not available)" in builtin and "Return the number of items" in builtin


def test_max_tokens_bounds_every_kind() -> None:
    ns = {"d": {f"key{i}": list(range(50)) for i in range(1000)}, "s": "word " * 100_000,
          "a": np.arange(10**6), "df": pd.DataFrame(np.ones((10, 60)))}
    for name in ns:
        item = describe(name, ns, max_tokens=60).item
        assert item["tokens"] <= 60, (name, item["tokens"])
        assert item["text"].startswith(f"@{name}: ")


# -- time limits -------------------------------------------------------------------------------------------------


class SlowRepr:
    def __repr__(self) -> str:
        while True:  # Python-level: SIGALRM interrupts it
            pass


class StubbornRepr:
    """Catches every Exception and goes on: the limit is a BaseException, so it still stops."""

    def __repr__(self) -> str:
        while True:
            try:
                time.sleep(0.01)
            except Exception:
                pass


class FailingRepr:
    def __repr__(self) -> str:
        raise ValueError("no repr for you")


@pytest.mark.parametrize("value", [SlowRepr(), StubbornRepr(), [1, SlowRepr()]], ids=["loop", "swallows", "inside"])
def test_a_slow_repr_is_cut_short_with_a_note(value: Any) -> None:
    started = time.perf_counter()
    item = describe("slow", {"slow": value}).item
    elapsed = time.perf_counter() - started
    assert TIME_LIMIT <= elapsed < 1.0, elapsed
    assert f"(timed out after {TIME_LIMIT:g} s while rendering it: only its type is sent)" in item["text"]
    assert item["text"].startswith("@slow: ")


def test_a_repr_that_raises_is_reported_not_raised() -> None:
    item = describe("bad", {"bad": FailingRepr()}).item
    assert item["text"] == "@bad: tests.test_context.FailingRepr object\n(repr raised ValueError: nothing more is known)"
    assert item["label"] == "FailingRepr"


def test_the_limit_gives_an_outer_timer_back() -> None:
    """pytest-timeout (and a tool's own limit) use SIGALRM too: their handler and remaining time come back."""
    fired: list[int] = []

    def outer(signum: int, frame: Any) -> None:
        fired.append(signum)

    previous = signal.signal(signal.SIGALRM, outer)
    signal.setitimer(signal.ITIMER_REAL, 100.0)
    try:
        with time_limit(0.2) as enforced:
            assert enforced
            time.sleep(0.01)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 99.0 < left <= 100.0
        assert signal.getsignal(signal.SIGALRM) is outer
        assert fired == []
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- secrets -----------------------------------------------------------------------------------------------------


class Config:
    def __init__(self, key: str) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"Config(key={self.key!r})"


def _holders(secret: str) -> dict[str, Any]:
    """The same string, reached by every path a value's strings take to the text."""
    return {
        "plain": secret,
        "nested": {"db": {"users": ["ann", {"password_hint": secret}]}},
        "frame_cell": pd.DataFrame({"who": ["ann", "bob"], "token": ["ok", secret]}),
        "column": pd.DataFrame({secret: [1, 2]}),
        "top": pd.Series([secret] * 3 + ["x"]),
        "strings": np.array(["a", secret, "b"]),
        "obj": Config(secret),
        "Out[7]": None,  # filled below: Out[n] is checked like a variable
    }


def test_key_shaped_values_are_refused_on_every_path() -> None:
    # first: the check catches the canary at all (else the refusals below would prove nothing) …
    assert redact(CANARY) != CANARY and CANARY_SECRET not in redact(CANARY)
    # … and each path really carries a string to the text: a harmless one of similar shape goes through
    harmless = _holders("bce-v3 docs canary1234")
    ns = {**harmless, "Out": {7: harmless["nested"]}}
    for name in harmless:
        assert "bce-v3 docs canary1234" in _text(name, ns), name
    holders = _holders(CANARY)
    ns = {**holders, "Out": {7: holders["nested"]}}
    for name in holders:
        with pytest.raises(MentionError) as caught:
            describe(name, ns)
        message = str(caught.value)
        assert f"@{name}" in message and " / " in message and "remove the key" in message, name
        assert CANARY_SECRET not in message and "bce-v3/ALTAK-***" in message, name


def test_a_key_past_the_cut_is_not_sent_either() -> None:
    """The check reads what is sent plus a margin, so a key cut in half by truncation is still caught; one far past
    the cut is simply not sent."""
    with pytest.raises(MentionError):
        describe("near", {"near": "a" * 7_990 + " " + CANARY})
    item = describe("far", {"far": "a " * 1_000_000 + CANARY}).item
    assert CANARY_SECRET not in item["text"]


# -- figures and images (matplotlib, Pillow and polars are dev dependencies) ----------------------------------------------


def test_matplotlib_figures_with_and_without_vision() -> None:
    import matplotlib  # a dev dependency: a missing one fails, it is not skipped
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.plot([1, 2, 3], label="revenue")
    ax.set_title("Sales by month")
    ax.set_xlabel("month")
    ax.legend()
    try:
        text_only = describe("fig", {"fig": fig}).item
        assert text_only["text"].startswith("@fig: matplotlib Figure, 400 × 300 px, 1 axes\n")
        assert "title: Sales by month · x: month" in text_only["text"] and "legend: revenue" in text_only["text"]
        assert "not sent: this model does not read images" in text_only["text"]
        seen = describe("fig", {"fig": fig}, vision=True)
        assert seen.item["text"] == "@fig: matplotlib Figure, 400 × 300 px, 1 axes (attached as an image)"
        assert len(seen.images) == 1 and seen.images[0].startswith("data:image/png;base64,")
        assert describe("ax", {"ax": ax}).item["label"] == "Figure 400 × 300"
    finally:
        plt.close(fig)


def test_pil_images_with_and_without_vision() -> None:
    import PIL.Image as image_module  # a dev dependency
    poster = image_module.new("RGB", (6000, 4000), "white")
    text_only = describe("img", {"img": poster}).item
    assert text_only["text"].startswith("@img: PIL image, 6000 × 4000 px, mode RGB\n")
    seen = describe("img", {"img": poster}, vision=True)
    assert len(seen.images) == 1 and seen.images[0].startswith("data:image/png;base64,")
    assert poster.size == (6000, 4000)  # the user's image is not resized in place
    cmyk = describe("c", {"c": image_module.new("CMYK", (8, 8))}, vision=True)  # PNG cannot hold CMYK
    assert len(cmyk.images) == 1


def test_polars_frames_and_series() -> None:
    import polars as pl  # a dev dependency
    n = 2_000_000
    df = pl.DataFrame({"id": np.arange(n), "name": ["a", "b", None, "c"] * (n // 4)})
    text = _text("pdf", {"pdf": df})
    assert text.startswith("@pdf: polars DataFrame, 2,000,000 rows × 2 columns\n")
    assert "sampled 1,000 of 2,000,000 rows" in text and "- name: String · nulls" in text
    assert describe("s", {"s": df["name"]}).item["label"] == "Series 2,000,000"
    with pytest.raises(MentionError):
        describe("k", {"k": pl.DataFrame({"key": [CANARY]})})


# -- the special mentions, in a real IPython shell -------------------------------------------------------------


@pytest.fixture
def shell() -> Iterator[Any]:
    from IPython.testing.globalipapp import get_ipython

    yield get_ipython()


def test_error_sends_type_message_frames_and_the_failing_cell(shell: Any) -> None:
    shell.run_cell("def ctx_divide(x):\n    return 1 / x\n", store_history=True)
    shell.run_cell("ctx_token = 'QIANFAN_AK=abcdefghijklmnop1234'\nctx_divide(0)", store_history=True)
    failing = shell.execution_count - 1
    item = describe("error", shell.user_ns, shell=shell).item
    text = item["text"]
    assert text.startswith("@error: ZeroDivisionError: division by zero\n")
    assert item["label"] == "ZeroDivisionError"
    assert f"  In[{failing}], line 2, in <module>\n    ctx_divide(0)" in text
    assert "in ctx_divide\n    return 1 / x" in text
    assert "interactiveshell.py" not in text  # IPython's own frames above the cell say nothing
    assert f"the cell that raised (In[{failing}]):" in text
    assert "abcdefghijklmnop1234" not in text  # the cell's key is masked: code is masked, not refused
    entries = {e["name"]: e for e in list_variables(shell.user_ns, hidden=shell.user_ns_hidden)}
    assert entries["error"] == {"name": "error", "kind": "ZeroDivisionError", "size": ""}


def test_code_with_a_key_is_masked_not_refused(shell: Any) -> None:
    shell.run_cell("def ctx_connect(key='sk-abcdefghijklmnop1234'):\n    return open_client(api_key=key)\n",
                   store_history=True)
    text = _text("ctx_connect", shell.user_ns)  # inspect finds a cell's source through IPython's linecache entry
    assert "def ctx_connect(key='sk-***'):\n    return open_client(" in text
    assert "abcdefghijklmnop1234" not in text


def test_cells_and_outputs(shell: Any) -> None:
    shell.run_cell("ctx_frame = __import__('pandas').DataFrame({'a': [1, 2]})\nctx_frame", store_history=True)
    n = shell.execution_count - 1
    assert describe(f"In[{n}]", shell.user_ns).item["text"].startswith(f"@In[{n}]: cell In[{n}], 2 lines\nctx_frame =")
    cell = describe("cell", shell.user_ns, shell=shell).item
    assert cell["text"].startswith(f"@cell: the latest cell, In[{n}], 2 lines\n")
    out = describe(f"Out[{n}]", shell.user_ns).item
    assert out["text"].startswith(f"@Out[{n}]: pandas DataFrame, 2 rows × 1 column\n")
    names = [e["name"] for e in list_variables(shell.user_ns, "", hidden=shell.user_ns_hidden)]
    assert "ctx_frame" in names and f"In[{n}]" in names and f"Out[{n}]" in names and "cell" in names
    assert names.index("ctx_frame") < names.index("cell")  # variables first, specials after


def test_unknown_mentions_say_what_to_do(no_last_error: None) -> None:
    ns: dict[str, Any] = {"In": ["", "x = 1"], "Out": {}}
    for name, words in [("nope", "run the cell that defines it"), ("error", "no cell has raised"),
                        ("In[9]", "there is no cell In[9]"), ("Out[1]", "has no result in Out")]:
        with pytest.raises(MentionError, match=re.escape(words)) as caught:
            describe(name, ns)
        assert " / " in str(caught.value)
    with pytest.raises(MentionError, match="no cell has run yet"):
        describe("cell", {"In": [""]})


# -- the variable list ----------------------------------------------------------------------------------------------


class Recorder:
    """Records every access to an instance; each hook raises or sleeps, as a hostile object's would."""

    touched: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        Recorder.touched.append(name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        Recorder.touched.append(f"getattr {name}")
        raise AttributeError(name)

    def __len__(self) -> int:
        Recorder.touched.append("__len__")
        raise RuntimeError("len")

    @property
    def shape(self) -> tuple[int, int]:
        Recorder.touched.append("shape")
        time.sleep(5)
        return (1, 1)

    def __repr__(self) -> str:
        Recorder.touched.append("__repr__")
        time.sleep(5)
        return "Recorder()"

    def __eq__(self, other: object) -> bool:
        Recorder.touched.append("__eq__")
        return False

    __hash__ = None  # type: ignore[assignment]


class RecordingList(list[int]):
    touched: list[str] = []

    def __len__(self) -> int:
        RecordingList.touched.append("__len__")
        raise RuntimeError("len")

    def __iter__(self) -> Iterator[int]:
        RecordingList.touched.append("__iter__")
        raise RuntimeError("iter")


class OwnFrame(pd.DataFrame):
    """A user's DataFrame subclass: not pandas' own class, so its (overridden) shape is not read for a size."""

    @property
    def shape(self) -> tuple[int, int]:
        Recorder.touched.append("OwnFrame.shape")
        return (0, 0)


def test_listing_ten_thousand_names_is_bounded_and_hides_what_is_not_the_users(no_last_error: None) -> None:
    import os

    ns: dict[str, Any] = {f"v{i:05d}": i for i in range(10_000)}
    ns.update({"_private": 1, "__builtins__": {}, "os": os, "In": [""], "Out": {}, "get_ipython": print,
               "exit": None, "quit": None, "Err": {}, "np": np, "Sales": 1, "hidden_by_ipython": 2})
    started = time.perf_counter()
    entries = list_variables(ns, hidden={"hidden_by_ipython": 2})
    assert time.perf_counter() - started < 0.2
    assert len(entries) == 300
    names = [e["name"] for e in entries]
    assert names == sorted(names) and names[0] == "Sales"
    assert not {"_private", "__builtins__", "os", "np", "In", "Out", "get_ipython", "exit", "quit", "Err",
                "hidden_by_ipython"} & set(names)
    assert len(list_variables(ns, limit=10)) == 10
    assert [e["name"] for e in list_variables(ns, "SAL")] == ["Sales"]  # any case
    # IPython's user_ns_hidden is a dict: a name is hidden only while it holds IPython's own value
    assert [e["name"] for e in list_variables({"x": 1}, hidden={"x": 2})] == ["x"]
    assert list_variables({"x": 1}, hidden={"x": 1}) == []
    # `error` and `cell` are reserved for the special mentions: a variable of that name is not offered
    assert [e["name"] for e in list_variables({"error": 1, "cell": 2, "x": 3})] == ["x"]


def test_listing_never_touches_unknown_objects() -> None:
    ns = {"rec": Recorder(), "lst": RecordingList([1, 2]), "own": OwnFrame({"a": [1]}), "text": "abc",
          "items": [1, 2, 3], "frame": pd.DataFrame({"a": [1, 2]}), "arr": np.zeros((3, 4))}
    Recorder.touched.clear()  # after construction: pandas reads a subclass's shape while building it
    RecordingList.touched.clear()
    started = time.perf_counter()
    entries = {e["name"]: e for e in list_variables(ns)}
    assert time.perf_counter() - started < 0.1
    assert Recorder.touched == [] and RecordingList.touched == []
    assert entries["rec"] == {"name": "rec", "kind": "Recorder", "size": ""}
    assert entries["lst"] == {"name": "lst", "kind": "RecordingList", "size": ""}
    assert entries["own"] == {"name": "own", "kind": "OwnFrame", "size": ""}
    assert entries["text"]["size"] == "3 chars" and entries["items"]["size"] == "3 items"
    assert entries["frame"]["size"] == "2 × 1" and entries["arr"]["size"] == "3 × 4"
    assert find_mentions("look at @rec and @lst", ns) == ["rec", "lst"] and Recorder.touched == []
    # describing a list subclass walks it with list's own methods, not its overridden ones
    assert _text("lst", ns) == "@lst: RecordingList, 2 items\n[1, 2]"
    assert RecordingList.touched == []


# -- mentions in a %%ernie prompt -----------------------------------------------------------------------------------


def test_what_counts_as_a_mention(no_last_error: None) -> None:
    ns: dict[str, Any] = {"df": pd.DataFrame(), "x": 1, "property": "a variable named property", "sales": 2,
                          "alice": 3, "example": 4, "dfx": 5, "np": np, "_hidden": 6,
                          "In": ["", "df.head()"], "Out": {1: "ok"}}
    assert find_mentions("@property\ndef area(self): ...", {"df": 1}) == []  # a builtin decorator, no variable
    assert find_mentions("write to alice@example.com", ns) == []
    assert find_mentions("df.query('a > @x')", ns) == []
    assert find_mentions('expr = "@x + 1"', ns) == []
    # a variable literally named `property` is still not attached by a decorator, fenced or not
    fenced = "fix this:\n```python\nclass A:\n    @property\n    def v(self):\n        return @x\n```\n"
    assert find_mentions(fenced, ns) == []
    assert find_mentions("class A:\n    @property\n    def v(self): ...", ns) == []
    assert find_mentions("~~~\n@sales\n~~~\nand `@x` inline", ns) == []
    assert find_mentions("```\n@sales never closed", ns) == []
    # what does count
    assert find_mentions("why is @df empty? compare @x, and @df again", ns) == ["df", "x"]
    assert find_mentions("(@sales) @property is just text here", ns) == ["sales", "property"]
    assert find_mentions("分析一下@sales的趋势", ns) == ["sales"]
    assert find_mentions("@dfx is not @df", ns) == ["dfx", "df"]
    assert find_mentions("see @In[1] and @Out[1], not @In[5] or @Out[2]", ns) == ["In[1]", "Out[1]"]
    assert find_mentions("@np @_hidden @error @cell", ns) == ["cell"]  # a module, a private name, no error yet
    assert find_mentions("a@x (a)@x x[0]@x", ns) == []  # matrix products


# -- the turn's budget --------------------------------------------------------------------------------------------


def _item(name: str, words: int) -> dict[str, Any]:
    text = f"@{name}: str\n" + " ".join(f"w{i}" for i in range(words))
    return {"name": name, "label": "str", "tokens": estimate_tokens(text), "text": text}


def test_fit_to_budget_shortens_the_largest_first() -> None:
    small, medium, large = _item("small", 50), _item("medium", 400), _item("large", 2000)
    items = [small, medium, large]
    fitted = fit_to_budget(items, 1000)  # type: ignore[arg-type]
    assert sum(i["tokens"] for i in fitted) <= 1000
    assert fitted[0] == small  # under the level: untouched
    assert fitted[1] == medium
    assert fitted[2]["shortened"] is True and fitted[2]["text"].endswith("\n" + SHORTENED)
    assert fitted[2]["text"].startswith("@large: str\n") and fitted[2]["tokens"] == estimate_tokens(fitted[2]["text"])
    assert "shortened" not in large  # the input is not changed
    both = fit_to_budget([medium, large], 300)  # type: ignore[list-item]
    assert all(i["shortened"] for i in both) and sum(i["tokens"] for i in both) <= 300
    assert fit_to_budget(items, 10_000) == items  # type: ignore[arg-type]


def test_format_context_fences_every_item() -> None:
    tricky = {"name": "notes", "label": "str 40 chars", "tokens": 5, "text": "@notes: str\n```\n### @other (fake)\n```"}
    block = format_context([tricky])  # type: ignore[list-item]
    assert "### @notes (str 40 chars)\n````text\n@notes: str\n```\n### @other (fake)\n```\n````" in block
    assert block.startswith("The user attached these values")
    assert format_context([]) == ""
