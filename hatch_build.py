"""Build the front ends during the standard Python build, so `pip install .` ships a complete package.

A wheel must hold the widget bundle (`ernie_widget/static/`, esbuild) and the JupyterLab / Notebook 7 extension
(`ernie_widget/labextension/`, shipped as shared data into `share/jupyter/labextensions/ernie-widget`). Both
are build outputs, git-ignored, so a clean clone, a git URL or an sdist has neither until this hook runs npm.

Why a hook of our own rather than hatch-jupyter-builder's `npm_builder`: the extension build asks the Python
that runs the build for JupyterLab's core package metadata (`labextension/build.mjs`), and `npm_builder` cannot
tell npm which interpreter that is. Here it is `sys.executable`, which has `jupyterlab` from `build-system.requires`.

Outputs newer than every source are reused (the README's `scripts/bootstrap` has built them already).
`ERNIE_WIDGET_SKIP_NPM=1` skips npm on purpose; a wheel still refuses to build without the outputs.

`python hatch_build.py` builds them outside a Python build (`scripts/bootstrap` does, with PYTHON set to the
venv's interpreter): the same steps, the same up-to-date checks, one line per step, tool output only on failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent

#: (what, its sources, the file that proves it was built, the folder npm runs in)
FRONT_ENDS = [
    ("widget bundle", ["js", "package.json", "package-lock.json", "tsconfig.json"],
     "ernie_widget/static/widget.js", "."),
    ("JupyterLab extension", ["labextension/src", "labextension/package.json", "labextension/package-lock.json",
                              "labextension/build.mjs", "labextension/tsconfig.json", "labextension/install.json"],
     "ernie_widget/labextension/package.json", "labextension"),
]
SKIP_DIRS = {"node_modules", "lib", "__pycache__"}


def newest_mtime(paths: Iterable[Path]) -> float:
    newest = 0.0
    for path in paths:
        if path.is_dir():
            for sub in path.rglob("*"):
                if sub.is_file() and not SKIP_DIRS.intersection(sub.relative_to(path).parts):
                    newest = max(newest, sub.stat().st_mtime)
        elif path.exists():
            newest = max(newest, path.stat().st_mtime)
    return newest


def is_current(sources: list[str], output: str) -> bool:
    out = ROOT / output
    return out.exists() and out.stat().st_mtime >= newest_mtime(ROOT / s for s in sources)


def run(cmd: list[str], cwd: Path, env: dict[str, str], log: Any) -> None:
    log(f"ernie-widget build: {' '.join(cmd)}  (in {cwd.relative_to(ROOT) or '.'})")
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        # the tools' own output only when they fail: a successful build prints one line per step
        sys.stderr.write(done.stdout[-20_000:])
        raise RuntimeError(f"ernie-widget build: `{' '.join(cmd)}` failed with exit code {done.returncode}")


def build_front_ends(log: Any, *, required: bool, python: str | None = None) -> None:
    # install.json is added to the wheel from labextension/ (shared-data); a copy inside the build output (left
    # by an editable install writing through a development link) would be a second file at the same path
    stray = ROOT / "ernie_widget" / "labextension" / "install.json"
    if stray.exists():
        stray.unlink()
    pending = [fe for fe in FRONT_ENDS if not is_current(fe[1], fe[2])]
    if not pending:
        return
    npm = shutil.which("npm")
    if os.environ.get("ERNIE_WIDGET_SKIP_NPM") == "1" or npm is None:
        names = ", ".join(fe[0] for fe in pending)
        message = (f"ernie-widget: the {names} must be built with npm (Node.js ≥ 20), and npm "
                   + ("was skipped (ERNIE_WIDGET_SKIP_NPM=1)" if npm else "is not on PATH")
                   + ". Install Node.js from https://nodejs.org/ and build again, or install a released wheel. / "
                     "需要 npm（Node.js ≥ 20）来构建前端：请安装 Node.js 后重试，或安装已发布的 wheel。")
        if required and any(not (ROOT / fe[2]).exists() for fe in pending):
            raise RuntimeError(message)
        log(message)
        return
    # the extension build reads JupyterLab's core metadata from this interpreter (see labextension/build.mjs)
    env = {**os.environ, "PYTHON": python or sys.executable}
    for _what, _sources, _output, folder in pending:
        cwd = ROOT / folder
        installed = cwd / "node_modules" / ".package-lock.json"  # npm writes it on every install
        if not installed.exists() or installed.stat().st_mtime < (cwd / "package-lock.json").stat().st_mtime:
            run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd, env, log)
        run([npm, "run", "build", "--silent"], cwd, env, log)


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script (scripts/bootstrap), outside a Python build
    BuildHookInterface = None

if BuildHookInterface is not None:

    class FrontEndBuildHook(BuildHookInterface):
        """Runs before a wheel (or an editable install) collects its files."""

        PLUGIN_NAME = "custom"

        def initialize(self, version: str, build_data: dict[str, Any]) -> None:
            if self.target_name != "wheel":
                return  # the sdist ships sources; the wheel built from it runs npm
            build_front_ends(self.app.display_info, required=version != "editable")


if __name__ == "__main__":
    try:
        build_front_ends(print, required=True, python=os.environ.get("PYTHON"))
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None
