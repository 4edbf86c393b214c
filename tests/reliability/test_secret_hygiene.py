"""Secret hygiene: run every notebook with a fake key, then look for the key in everything left behind.

Each notebook runs in a real kernel (nbclient) whose environment holds a fresh key and points every base
URL at a simulator in this process (never a public address). Around the notebook's own cells we add:

* a first cell that logs everything at DEBUG to a file in the working directory;
* a probe cell that restores our environment (notebooks 03/04 start their own simulator and repoint
  it), then prints the `repr()` of a client, its config and a widget, `%ernie --doctor`, `%ernie --list`,
  `--dry-run`, and the message, repr and body of an error for each fault the simulator scripts;
* a last cell that lets a `%ernie` error end in the saved notebook as IPython shows it.

Then the executed notebook (with its widget state), the DEBUG log, the kernel's stdout/stderr and every
file in the working directory are searched for the key, its id part and its secret part. Precondition:
the simulator really received the key.
"""

from __future__ import annotations

import json
import os
import secrets
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.utils.capture import capture_output
from nbclient import NotebookClient

import ernie_widget
from ernie_widget.client import AuthenticationError, Ernie
from ernie_widget.testing import Answer, ErnieSimulator, Fault

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(240)]

ROOT = Path(ernie_widget.__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_DROP = ("QIANFAN_", "AISTUDIO_", "ERNIE_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
         "https_proxy", "all_proxy")

KEY_ID = "hygiene" + secrets.token_hex(6)
KEY_SECRET = secrets.token_hex(16)
KEY = f"bce-v3/ALTAK-{KEY_ID}/{KEY_SECRET}"
NEEDLES = (KEY, KEY_ID, KEY_SECRET)

LOG_CELL = """\
import logging, os
logging.basicConfig(level=logging.DEBUG, filename="kernel-debug.log", force=True,
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
_hygiene_env = {k: v for k, v in os.environ.items() if k.startswith(("QIANFAN_", "AISTUDIO_", "ERNIE_"))}
"""

PROBE_FAULTS = [Fault.status(401), Fault.status(403), Fault.status(429, retry_after=0.1), Fault.status(500),
                Fault.error_in_200(code="invalid_iam_token"),
                Fault.error_midstream(after_chunks=1, answer=Answer(text="部分回答", chunk_size=2)),
                Fault.cut(after_chunks=1), Fault.malformed(after_chunks=1)]

PROBE_CELL = f"""\
import json, os
os.environ.update(_hygiene_env)
from ernie_widget import AsyncErnie, Ernie, ErnieChat
_client = Ernie(max_retries=0)
_chat = ErnieChat(_client)
_probe = {{"repr": [repr(_client), repr(_client.config), repr(_client.aio), repr(AsyncErnie()), repr(_chat),
                   str(_chat.transcript())], "errors": []}}
for _ in range({len(PROBE_FAULTS)}):
    try:
        _client.chat("hygiene probe")
    except Exception as _err:
        _probe["errors"].append([type(_err).__name__, str(_err), repr(_err), repr(getattr(_err, "body", None)),
                                 repr(_err.__dict__)])
print(json.dumps(_probe, ensure_ascii=False))
if "ernie" not in get_ipython().magics_manager.magics["line"]:
    get_ipython().run_line_magic("load_ext", "ernie_widget")
get_ipython().run_line_magic("ernie", "--doctor")
get_ipython().run_line_magic("ernie", "--list")
get_ipython().run_line_magic("ernie", "--dry-run what is my key?")
"""

# What a user sees when a request fails: the magic's one-line error, and the client's traceback.
FAILING_CELLS = ["%ernie -p qianfan this cell fails with HTTP 401", "_client.chat('this cell fails with HTTP 401')"]
PROBE_ERRORS = ["AuthenticationError", "PermissionDeniedError", "RateLimitError", "ServerError", "AuthenticationError",
                "ServerError", "IncompleteStreamError", "IncompleteStreamError"]


@pytest.fixture(scope="module")
def sim() -> Iterator[ErnieSimulator]:
    with ErnieSimulator() as s:
        yield s


def _env(sim: ErnieSimulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env.update(
        QIANFAN_API_KEY=KEY,
        QIANFAN_BASE_URL=sim.base_url("qianfan"),
        QIANFAN_V1_BASE_URL=sim.base_url("qianfan-v1"),
        AISTUDIO_BASE_URL=sim.base_url("aistudio"),
        ERNIE_BASE_URL=sim.base_url("openai"),
        ERNIE_PROVIDER="qianfan",  # ERNIE_BASE_URL alone would select the openai surface, without the key
        ERNIE_STREAM="0",
        ERNIE_QUIET="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def _run(path: Path, sim: ErnieSimulator, workdir: Path) -> tuple[nbformat.NotebookNode, dict[str, int]]:
    """Execute the notebook with our cells around it; save it; return it and where our cells are."""
    nb = nbformat.read(path, as_version=4)
    probe = nbformat.v4.new_code_cell(PROBE_CELL)
    failing = [nbformat.v4.new_code_cell(src, metadata={"tags": ["raises-exception"]}) for src in FAILING_CELLS]
    nb.cells = [nbformat.v4.new_code_cell(LOG_CELL), *nb.cells, probe, *failing]
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    with open(workdir / "kernel-stdout.txt", "wb") as out, open(workdir / "kernel-stderr.txt", "wb") as err, \
            client.setup_kernel(env=_env(sim), stdout=out, stderr=err):
        for index, cell in enumerate(nb.cells):
            if cell is probe:
                sim.push(*PROBE_FAULTS)
            elif any(cell is f for f in failing):
                sim.push(Fault.status(401))
            client.execute_cell(cell, index)
        client.set_widgets_metadata()
    nbformat.write(nb, workdir / f"executed-{path.name}")
    return nb, {"probe": len(nb.cells) - 1 - len(failing), "magic_error": len(nb.cells) - 2, "traceback": len(nb.cells) - 1}


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_leaves_no_trace_of_the_key(path: Path, sim: ErnieSimulator, tmp_path: Path) -> None:
    first = len(sim.all_requests)
    nb, at = _run(path, sim, tmp_path)
    seen = sim.all_requests[first:]

    # preconditions: the key went out (to the simulator only), and every leak path was exercised
    assert sim.pending == 0, "a scripted fault was not consumed by the probe"
    with_key = [r for r in seen if r.headers.get("authorization") == f"Bearer {KEY}"]
    if path.stem.startswith(("01", "02")):  # their own cells use the default client, i.e. our key
        assert [r for r in with_key if "hygiene probe" not in r.body.decode()], "the notebook never sent the key"
    assert len(with_key) >= len(PROBE_FAULTS) + len(FAILING_CELLS)
    log = (tmp_path / "kernel-debug.log").read_text(encoding="utf-8", errors="replace")
    assert " DEBUG " in log and "httpcore2" in log and "ernie_widget" in log
    probe_out = _stdout(nb.cells[at["probe"]])
    assert [e[0] for e in json.loads(probe_out.splitlines()[0])["errors"]] == PROBE_ERRORS
    assert "✓ key:" in probe_out and "providers" in probe_out and "nothing was sent" in probe_out
    magic_error = nb.cells[at["magic_error"]].outputs
    # the magic's failure: one line named for what it is, no traceback
    assert magic_error[-1].output_type == "error" and magic_error[-1].ename == "AuthenticationError"
    assert len(magic_error[-1].traceback) == 1 and magic_error[-1].traceback[0].startswith("AuthenticationError: ")
    assert nb.cells[at["traceback"]].outputs[-1].ename == "AuthenticationError"
    if any("ErnieChat(" in c.source for c in nb.cells[1:at["probe"]]):
        assert "application/vnd.jupyter.widget-state+json" in nb.metadata.get("widgets", {})

    # the search: every file the run left behind
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert {"kernel-debug.log", f"executed-{path.name}", "kernel-stderr.txt"} <= {p.name for p in files}
    found = []
    for file in files:
        data = file.read_bytes()
        for needle in NEEDLES:
            if needle.encode() in data:
                at_ = data.index(needle.encode())
                found.append(f"{file.name}: …{data[max(0, at_ - 80):at_ + 20]!r}…")
    assert not found, "\n".join(found)


# -- tracebacks that show local variables ------------------------------------------------------------


@pytest.mark.parametrize("how", ["ipython-xmode-verbose", "traceback-capture-locals"])
def test_a_traceback_that_shows_locals_does_not_show_the_key(how: str, ernie_simulator: ErnieSimulator,
                                                             ip: Any) -> None:
    # the key lives only in this module's globals: the test's own frames hold no copy of it
    client = Ernie("qianfan", base_url=ernie_simulator.base_url("qianfan"), api_key=KEY, max_retries=0)
    ernie_simulator.push(Fault.status(401))
    if how == "traceback-capture-locals":  # what logging setups and error trackers capture
        with pytest.raises(AuthenticationError) as info:
            client.chat("hi")
        shown = "".join(traceback.TracebackException.from_exception(info.value, capture_locals=True).format())
    else:
        ip.user_ns["client"] = client
        ip.run_line_magic("xmode", "Verbose")
        try:
            with capture_output() as io:
                result = ip.run_cell("client.chat('hi')")
        finally:
            ip.run_line_magic("xmode", "Context")
        assert isinstance(result.error_in_exec, AuthenticationError)
        shown = io.stdout + io.stderr
    client.close()
    assert "Traceback" in shown and "client.chat" in shown  # precondition: a traceback was shown
    assert not [n for n in NEEDLES if n in shown], "the key is in the traceback"
