"""The wheel ships the widget bundle and the prebuilt JupyterLab / Notebook 7 extension.

Builds a real wheel from the working tree (the front-end bundles must already be built: `scripts/bootstrap`
does both) and reads it back.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABEXT = "share/jupyter/labextensions/ernie-widget"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    for built, how in [(ROOT / "ernie_widget/static/widget.js", "npm run build"),
                       (ROOT / "ernie_widget/labextension/package.json", "cd labextension && npm run build")]:
        if not built.exists():
            pytest.fail(f"{built.relative_to(ROOT)} is missing: run scripts/bootstrap (or `{how}`)")
    out = tmp_path_factory.mktemp("wheel")
    env = {**os.environ, "HATCH_JUPYTER_BUILDER_SKIP_NPM": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    if importlib.util.find_spec("hatchling") and importlib.util.find_spec("hatch_jupyter_builder"):
        cmd.insert(4, "--no-build-isolation")  # the build backend is already here: no download
    subprocess.run(cmd, check=True, env=env, timeout=300)
    [path] = out.glob("ernie_widget-*.whl")
    zf = zipfile.ZipFile(path)
    yield zf
    zf.close()


def data_dir(zf: zipfile.ZipFile) -> str:
    [name] = {n.split("/")[0] for n in zf.namelist() if n.split("/")[0].endswith(".data")}
    return f"{name}/data/{LABEXT}"


def test_wheel_ships_the_widget_bundle(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert {"ernie_widget/static/widget.js", "ernie_widget/static/widget.css"} <= names
    assert b"ernie-chat" in wheel.read("ernie_widget/static/widget.js")


def test_wheel_ships_the_prebuilt_labextension(wheel: zipfile.ZipFile) -> None:
    base = data_dir(wheel)
    names = set(wheel.namelist())
    meta = json.loads(wheel.read(f"{base}/package.json"))
    assert meta["name"] == "ernie-widget"
    # the federated entry point the server announces must be in the wheel
    load = meta["jupyterlab"]["_build"]["load"]
    assert f"{base}/{load}" in names
    assert meta["jupyterlab"]["_build"]["extension"] == "./extension"
    assert any(n.startswith(f"{base}/static/") and n.endswith(".js") and "remoteEntry" not in n for n in names)
    install = json.loads(wheel.read(f"{base}/install.json"))
    assert install == {"packageManager": "python", "packageName": "ernie-widget",
                       "uninstallInstructions": install["uninstallInstructions"]}
    # the presence flag the widget looks for is in the shipped code
    bundle = b"".join(wheel.read(n) for n in names if n.startswith(f"{base}/static/") and n.endswith(".js"))
    assert b"data-ernie-extension" in bundle


def test_wheel_holds_only_the_package_and_its_data(wheel: zipfile.ZipFile) -> None:
    tops = {n.split("/")[0] for n in wheel.namelist()}
    assert {t for t in tops if not t.endswith((".data", ".dist-info"))} == {"ernie_widget"}
    # the build output is shipped once, as shared data, not again inside the package
    assert not [n for n in wheel.namelist() if n.startswith("ernie_widget/labextension/")]
    assert not [n for n in wheel.namelist() if "node_modules" in n or n.startswith("labextension/")]
