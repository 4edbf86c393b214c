"""`python -m ernie_widget` against the simulator, in a real subprocess: answers, exit codes, doctor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ernie_widget.testing import Answer, Fault

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "ernie_widget", *args], env=full_env, input=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1", "openai"])
def test_ask_prints_the_answer_and_exits_0(ernie_simulator, provider):
    proc = run_cli("你好", env=ernie_simulator.env(provider))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "你好！You said: 你好\n"
    assert proc.stderr == ""
    assert ernie_simulator.chat_requests[-1].surface == provider


def test_ask_reads_the_prompt_from_stdin(ernie_simulator):
    proc = run_cli(env=ernie_simulator.env("qianfan"), stdin="从标准输入\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "你好！You said: 从标准输入\n"


def test_ask_prints_reasoning_to_stderr_only_when_asked(ernie_simulator):
    ernie_simulator.set_answer(text="42", reasoning="想一想")
    plain = run_cli("q", env=ernie_simulator.env("qianfan"))
    shown = run_cli("--reasoning", "q", env=ernie_simulator.env("qianfan"))
    assert plain.stdout == shown.stdout == "42\n"
    assert "想一想" not in plain.stderr and "想一想" in shown.stderr


def test_ask_with_a_rejected_key_exits_1_with_one_line_and_no_traceback(ernie_simulator):
    key = "bce-v3/ALTAK-cli0test/9f8e7d6c5b4a"
    ernie_simulator.push(Fault.status(401))
    proc = run_cli("你好", env=ernie_simulator.env("qianfan", api_key=key))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ernie-widget: ")
    assert "authentication failed" in lines[0]
    assert "Traceback" not in proc.stderr and key not in proc.stderr + proc.stdout


def test_ask_failing_mid_answer_keeps_the_partial_text_on_stdout(ernie_simulator):
    ernie_simulator.push(Fault.cut(after_chunks=2, answer=Answer(text="abcdefgh", chunk_size=2)))
    proc = run_cli("q", env=ernie_simulator.env("qianfan"))
    assert proc.returncode == 1
    assert proc.stdout == "abcd\n"
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_ask_with_a_provider_but_no_key_exits_1_with_instructions():
    proc = run_cli("-p", "qianfan", "你好")
    assert proc.returncode == 1
    assert "QIANFAN_API_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout.strip() == ""


def test_doctor_without_key_check_passes_against_the_simulator(ernie_simulator):
    proc = run_cli("doctor", "--no-key-check", env=ernie_simulator.env("qianfan"))
    assert proc.returncode == 0, proc.stdout
    assert "✓ config" in proc.stdout and "provider=qianfan" in proc.stdout
    assert "✓ network" in proc.stdout
    assert ernie_simulator.chat_requests == []  # no test request was sent


def test_doctor_checks_the_key_with_one_request(ernie_simulator):
    proc = run_cli("doctor", env=ernie_simulator.env("qianfan"))
    assert proc.returncode == 0, proc.stdout
    assert "✓ key" in proc.stdout
    assert len(ernie_simulator.chat_requests) == 1


def test_doctor_reports_a_rejected_key_and_exits_1(ernie_simulator):
    key = "bce-v3/ALTAK-bad0doctor/1a2b3c4d5e6f"  # the simulator rejects keys containing "bad"
    proc = run_cli("doctor", env=ernie_simulator.env("qianfan", api_key=key))
    assert proc.returncode == 1
    assert "✗ key" in proc.stdout
    assert key not in proc.stdout + proc.stderr


def test_doctor_reports_an_unreachable_server(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_cli("doctor", "--no-key-check", env={"ERNIE_BASE_URL": f"http://127.0.0.1:{port}/v1"})
    assert proc.returncode == 1
    assert "✗ network" in proc.stdout
