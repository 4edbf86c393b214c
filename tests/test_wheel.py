"""What `pip install` gets: the sdist and wheel built the standard way ship the whole package.

`python -m build` from a clean clone (no scripts/bootstrap, no node_modules, no prebuilt files) makes the sdist,
then the wheel from that sdist; `hatch_build.py` runs npm for the widget bundle and the JupyterLab extension.
`.ci/run` builds them once in its packaging stage and passes the folder as ERNIE_DIST (its extension end-to-end
test runs against a fresh venv that installed that very wheel); without ERNIE_DIST this module builds them from
a clone of the last commit (about 3 minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABEXT = "share/jupyter/labextensions/ernie-widget"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("ERNIE_DIST"):
        return Path(os.environ["ERNIE_DIST"])
    clone = tmp_path_factory.mktemp("clone") / "src"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(clone)], check=True, env=env,
                   timeout=900, stdout=subprocess.DEVNULL)
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Iterator[zipfile.ZipFile]:
    [path] = dist.glob("ernie_widget-*.whl")
    zf = zipfile.ZipFile(path)
    yield zf
    zf.close()


@pytest.fixture(scope="module")
def sdist(dist: Path) -> list[str]:
    [path] = dist.glob("ernie_widget-*.tar.gz")
    with tarfile.open(path) as tf:
        return [n.split("/", 1)[1] for n in tf.getnames() if "/" in n]


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


def test_sdist_carries_the_front_end_sources_and_no_build_output(sdist: list[str]) -> None:
    names = set(sdist)
    assert {"hatch_build.py", "package.json", "package-lock.json", "js/widget.ts", "js/build.mjs",
            "labextension/package.json", "labextension/package-lock.json", "labextension/src/index.ts",
            "labextension/install.json", "ernie_widget/__init__.py"} <= names
    assert not [n for n in names if "node_modules" in n or n.startswith(("ernie_widget/static/",
                                                                          "ernie_widget/labextension/",
                                                                          "labextension/lib/"))]


def test_wheel_enables_the_server_extensions(wheel: zipfile.ZipFile) -> None:
    # pip puts the shared data under the environment's prefix, where `jupyter server` reads its config
    [data] = {n.split("/")[0] for n in wheel.namelist() if n.split("/")[0].endswith(".data")}
    config = json.loads(wheel.read(f"{data}/data/etc/jupyter/jupyter_server_config.d/ernie_widget.json"))
    assert config == {"ServerApp": {"jpserver_extensions": {"ernie_widget.completion": True,
                                                            "ernie_widget.kernel_socket": True}}}
    names = set(wheel.namelist())
    assert {"ernie_widget/completion/__init__.py", "ernie_widget/completion/handlers.py",
            "ernie_widget/kernel_socket.py"} <= names


def test_sdist_carries_the_server_extension_config(sdist: list[str]) -> None:
    assert "jupyter-config/jupyter_server_config.d/ernie_widget.json" in sdist
