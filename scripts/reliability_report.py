#!/usr/bin/env python
"""Run the reliability suite and the browser XSS tests, then write RELIABILITY.md from what they measured.

    .venv/bin/python scripts/reliability_report.py              # run the tests, write RELIABILITY.md
    .venv/bin/python scripts/reliability_report.py --no-run     # rewrite it from the last run's results

Inputs: pytest's JUnit XML (no plugin needed) and the JSON figures the tests leave in
tests/reliability/.results/ (git-ignored). The XSS corpus size comes from tests/e2e/xss_vectors.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "tests" / "reliability" / ".results"
JUNIT = RESULTS / "junit.xml"
OUT = ROOT / "RELIABILITY.md"
SUITES = ["tests/reliability", "tests/e2e/test_xss_e2e.py"]
CONSUMERS = ["sync", "async", "widget", "magic"]

#: bugs these tests found, and the tests that now guard their fixes (kept by hand: the history is not in the results)
FOUND = [
    ("A traceback that prints local variables (IPython `%xmode Verbose`, `traceback` with `capture_locals=True`, "
     "error trackers) showed the raw key: client/core.py kept it in a local `secrets` tuple and `HTTPRequest`'s "
     "repr showed its headers.", "c795e40", "test_a_traceback_that_shows_locals_does_not_show_the_key"),
    ("After an error between two reads (error event, malformed JSON, oversized event), httpx2's byte iterators "
     "were left suspended for the garbage collector, whose finalizer — in any thread, at any time — sometimes "
     "printed “Exception ignored … async generator already executing” into the running cell.", "c795e40",
     "test_a_stream_that_ends_early_closes_its_byte_iterators_at_once"),
]


@dataclass
class Case:
    file: str
    name: str
    params: str
    outcome: str  # passed | failed | skipped | xfailed
    seconds: float
    message: str


def run_tests() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for old in RESULTS.glob("*.json"):
        old.unlink()  # figures from an earlier run must not pass for this one
    suites = [s for s in SUITES if (ROOT / s).exists()]
    cmd = [sys.executable, "-m", "pytest", *suites, "-q", "-rxs", f"--junitxml={JUNIT}", "-p", "no:cacheprovider"]
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def read_junit(path: Path) -> list[Case]:
    cases = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        name = tc.get("name", "")
        base, _, params = name.partition("[")
        outcome, message = "passed", ""
        for child in tc:
            if child.tag in ("failure", "error"):
                outcome, message = "failed", child.get("message", "")
            elif child.tag == "skipped":
                xfail = child.get("type") == "pytest.xfail"
                outcome, message = ("xfailed" if xfail else "skipped"), child.get("message", "")
        file = tc.get("classname", "").rsplit(".", 1)[-1]
        cases.append(Case(file, base, params.rstrip("]"), outcome, float(tc.get("time", 0)), message))
    return cases


def load(name: str) -> Any:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def xss_vector_count() -> int | None:
    path = ROOT / "tests" / "e2e" / "xss_vectors.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("xss_vectors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["xss_vectors"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return len(module.vectors("127.0.0.1:1"))


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def mark(outcome: str) -> str:
    return {"passed": "✓", "failed": "✗ FAILED", "skipped": "– skipped", "xfailed": "✗ known bug"}[outcome]


def summary_table(cases: list[Case]) -> list[str]:
    by_file: dict[str, list[Case]] = defaultdict(list)
    for c in cases:
        by_file[c.file].append(c)
    rows = ["| suite | tests | passed | failed | skipped | known bugs (xfail) | seconds |", "|---|--:|--:|--:|--:|--:|--:|"]
    for file in sorted(by_file):
        cs = by_file[file]
        count = {o: sum(1 for c in cs if c.outcome == o) for o in ("passed", "failed", "skipped", "xfailed")}
        rows.append(f"| `{file}` | {len(cs)} | {count['passed']} | {count['failed']} | {count['skipped']} | "
                    f"{count['xfailed']} | {sum(c.seconds for c in cs):.1f} |")
    total = {o: sum(1 for c in cases if c.outcome == o) for o in ("passed", "failed", "skipped", "xfailed")}
    rows.append(f"| **all** | **{len(cases)}** | **{total['passed']}** | **{total['failed']}** | {total['skipped']} | "
                f"{total['xfailed']} | {sum(c.seconds for c in cases):.1f} |")
    return rows


def fault_section(cases: list[Case], observed: list[dict[str, Any]] | None) -> list[str]:
    matrix = [c for c in cases if c.file == "test_fault_matrix" and c.name.startswith("test_fault_is_reported")]
    if not matrix:
        return ["*(the fault matrix did not run)*"]
    cells: dict[str, dict[str, Case]] = defaultdict(dict)
    for c in matrix:
        consumer, _, fault = c.params.partition("-")
        cells[fault][consumer] = c
    seen = {(o["consumer"], o["fault"]): o for o in observed or []}
    lines = ["| fault | expected error | " + " | ".join(CONSUMERS) + " |", "|---|---|" + "---|" * len(CONSUMERS)]
    for fault, row in cells.items():
        error = next((o["error"] for (_, f), o in seen.items() if f == fault), "")
        lines.append(f"| {fault} | `{error}` | " + " | ".join(
            mark(row[k].outcome) + (f" {seen[(k, fault)]['seconds']:.2f}s" if (k, fault) in seen else "")
            if k in row else "" for k in CONSUMERS) + " |")
    per = {k: sum(1 for row in cells.values() if k in row and row[k].outcome == "passed") for k in CONSUMERS}
    lines += ["", "Faults held per consumer: " + ", ".join(f"{k} {per[k]}/{len(cells)}" for k in CONSUMERS) + "."]
    samples = [o for o in observed or [] if o["consumer"] == "widget"]
    if samples:
        lines += ["", "<details><summary>What the user reads (the widget's answer <code>error</code>; the magic shows "
                  "the same line as a UsageError)</summary>", ""]
        lines += [f"- **{o['fault']}** — {o['message']}" + (f" *(kept {o['partial_chars']} characters)*"
                                                            if o["partial_chars"] else "") for o in samples]
        lines += ["", "</details>"]
    return lines


def soak_section(soak: dict[str, Any] | None) -> list[str]:
    if not soak:
        return ["*(no soak figures: tests/reliability/test_soak.py did not run)*"]
    rows = ["| run | streams | concurrency | errors | streams/s | RSS after warm-up → end | threads | fds |",
            "|---|--:|--:|--:|--:|---|---|---|"]
    labels = {"sequential": "sequential, `Ernie`", "concurrent_sync": "concurrent, `Ernie` + 50 threads",
              "concurrent_async": "concurrent, `AsyncErnie` + gather"}
    for key, label in labels.items():
        s = soak.get(key)
        if not s:
            continue
        b, a = s["before"], s["after"]
        rows.append(f"| {label} | {s['streams']:,} | {s.get('concurrency', 1)} | {s['errors']} | {s['streams_per_s']} | "
                    f"{mb(b['rss'])} → {mb(a['rss'])} ({mb(a['rss'] - b['rss'])}) | {b['threads']} → {a['threads']} | "
                    f"{b['fds']} → {a['fds']} |")
    peak = [soak[k]["peak_in_flight"] for k in ("concurrent_sync", "concurrent_async") if k in soak]
    if peak:
        rows += ["", f"Peak requests in flight at the simulator: {', '.join(map(str, peak))} (all 50 really overlapped). "
                 "The simulator runs in the same process and shares the GIL, so throughput is a floor, not a benchmark."]
    return rows


def rate_section(memory: dict[str, Any] | None, shared: dict[str, Any] | None) -> list[str]:
    lines = []
    if memory:
        lines.append(f"- **In memory** (`Ernie(rpm={memory['rpm']})`, window shortened to {memory['window_s']:g} s): "
                     f"{memory['callers']} concurrent callers → busiest window held **{memory['busiest_window']}** "
                     f"requests (limit {memory['rpm']}); all {memory['requests']} done in {memory['seconds']} s "
                     f"(ideal {memory['ideal_seconds']:g} s).")
    if shared:
        lines.append(f"- **Shared through Redis** ({shared['processes']} processes, `rate_limit_backend=redis://…`, "
                     f"rpm={shared['rpm']}, window {shared['window_s']:g} s): busiest window held "
                     f"**{shared['busiest_window']}** of {shared['requests']} requests (limit {shared['rpm']} for all "
                     f"processes together); first to last request {shared['span_s']} s (ideal {shared['ideal_span_s']:g} s).")
    if lines:
        lines.append(f"- Windows are measured on the simulator's arrival times, {(memory or shared or {}).get('jitter_s', 0):g}"
                     "–0.15 s shorter than the limiter's window: a request is stamped by the limiter and arrives a "
                     "moment later.")
    return lines or ["*(no rate-limit figures)*"]


def fuzz_section(fuzz: dict[str, Any] | None) -> list[str]:
    if not fuzz:
        return ["*(no fuzz figures)*"]
    lines = []
    if "chunking" in fuzz:
        c = fuzz["chunking"]
        lines.append(f"- {c['examples']} random chunkings of recorded streams (Qianfan v2, v1, AI Studio, OpenAI-"
                     f"compatible; {c['pieces']} socket writes, cuts inside UTF-8 characters included) gave the "
                     "same answer as the unsplit stream.")
    if "garbage" in fuzz:
        g = fuzz["garbage"]
        lines.append(f"- {g['examples']} garbage bodies ({mb(g['bytes'])} in all: invalid UTF-8, broken JSON, odd "
                     f"statuses and content types) → {g['errors']} typed `ErnieError`s, {g['ok']} readable "
                     f"answer{'' if g['ok'] == 1 else 's'}, "
                     "no other exception, no hang (8 s bound per example).")
    for key, label in (("huge_event-stream", "a 50 MB SSE line without newline"),
                       ("huge_json", "a 50 MB JSON body")):
        h = fuzz.get(key)
        if h:
            lines.append(f"- {label}: rejected after {mb(h['bytes_sent'])} had been written to the socket; peak RSS "
                         f"growth {mb(h['peak_rss_growth'])} (bound 20 MB). Error: “{h['error']}”.")
    if "markdown" in fuzz:
        m = fuzz["markdown"]
        lines.append(f"- {m['examples']} random hostile markdown documents, rendered at {m['prefixes']} streamed "
                     "prefixes, in every output format: always sanitized (no script/img/style/iframe, no `on*`, "
                     "only http(s)/mailto/# links).")
    return lines


def listing(cases: list[Case], file: str) -> list[str]:
    return [f"- {mark(c.outcome)} `{c.name}{'[' + c.params + ']' if c.params else ''}` ({c.seconds:.1f} s)"
            for c in cases if c.file == file] or [f"*(`{file}` did not run)*"]


def known_bugs(cases: list[Case]) -> list[str]:
    bugs: dict[str, list[str]] = defaultdict(list)
    for c in cases:
        if c.outcome == "xfailed":
            bugs[re.sub(r"^reason:\s*", "", c.message)].append(f"`{c.name}[{c.params}]`" if c.params else f"`{c.name}`")
    return [f"- {reason} — {', '.join(tests)}" for reason, tests in bugs.items()] or ["- none"]


def found_section(cases: list[Case]) -> list[str]:
    lines = []
    for what, commit, test in FOUND:
        runs = [c for c in cases if c.name == test]
        held = "now holds" if runs and all(c.outcome == "passed" for c in runs) else "**does not hold yet**"
        lines.append(f"- {what} Fixed in {commit}; `{test}` {held} ({len(runs)} cases).")
    return lines


def write_report(cases: list[Case]) -> str:
    failed = [c for c in cases if c.outcome == "failed"]
    xss = [c for c in cases if c.file == "test_xss_e2e"]
    vectors = xss_vector_count()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reliability",
        "",
        f"What was tried against ernie-widget, and what held. Generated by `scripts/reliability_report.py` on {now} "
        f"(Python {platform.python_version()}, {os.cpu_count()} cores); rerun it to refresh.",
        "",
        "Everything runs on 127.0.0.1 against the ERNIE protocol simulator (`ernie_widget.testing`), real sockets, "
        "real kernels and a real redis-server; no mocks stand in for the code under test.",
        "",
        "## Summary",
        "",
        *summary_table(cases),
        "",
        *(["**Failures:** " + ", ".join(f"`{c.name}[{c.params}]`" for c in failed), ""] if failed else []),
        "## Faults × consumers",
        "",
        "Every simulator fault against the sync client, the async client, the widget (`ErnieChat`, comm messages "
        "captured) and the magic (`%%ernie` in a real InteractiveShell). Each ✓ means: the right typed error (or one "
        "“中文 / English” line in the widget's answer / the magic's UsageError); the text streamed before the fault "
        "kept exactly, shown and stored; a follow-up question answered, with the partial answer in the history; and "
        "file descriptors, threads and private-loop tasks back to their warm-up count. Time limits: idle 0.3 s, whole "
        "answer 1 s, one retry (429 waits for its Retry-After).",
        "",
        *fault_section(cases, load("fault_matrix")),
        "",
        "A stream that ends early must also close the response's byte iterators itself, not leave them to the "
        "garbage collector:",
        "",
        *[line for line in listing(cases, "test_fault_matrix") if "closes_its_byte_iterators" in line],
        "",
        "## Kernel-level faults (real ipykernel)",
        "",
        *listing(cases, "test_kernel_faults"),
        "",
        "## Load and soak",
        "",
        *soak_section(load("soak")),
        "",
        "## Rate limits",
        "",
        *rate_section(load("rate_limit"), load("shared_quota")),
        "",
        "## Secret hygiene",
        "",
        "Each notebook in `notebooks/` run in a real kernel with a fresh fake `QIANFAN_API_KEY` and every base URL on "
        "the simulator; then the saved notebook (widget state included), a DEBUG log of the kernel, the kernel's "
        "stdout/stderr, the `repr()` of clients and widgets, `%ernie --doctor` / `--list` / `--dry-run`, and the "
        "messages of 8 kinds of errors were searched for the key, its id and its secret.",
        "",
        *listing(cases, "test_secret_hygiene"),
        "",
        "## Fuzzing",
        "",
        *fuzz_section(load("fuzz")),
        "",
        "## XSS in the browser",
        "",
        (f"{vectors} XSS vectors in `tests/e2e/xss_vectors.py`." if vectors is not None else "*(no XSS corpus found)*"),
        "",
        *(listing(cases, "test_xss_e2e") if xss else ["*(tests/e2e/test_xss_e2e.py did not run)*"]),
        "",
        "## Bugs found by these tests",
        "",
        *found_section(cases),
        "",
        "## Known bugs (expected failures)",
        "",
        *known_bugs(cases),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="do not run the tests; use the last results")
    args = parser.parse_args(argv)
    status = 0 if args.no_run else run_tests()
    if not JUNIT.is_file():
        print(f"no test results at {JUNIT}", file=sys.stderr)
        return 2
    OUT.write_text(write_report(read_junit(JUNIT)), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
