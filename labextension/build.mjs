// Build the prebuilt extension into ../ernie_widget/labextension (`jupyter labextension build`, @jupyterlab/builder).
//
// Why a script: JupyterLab 4.6 hands the build to `jupyter_builder`, which otherwise looks for the core package
// metadata in node_modules or downloads it (only 4.6+ is on npm; our pinned @jupyterlab/builder 4.5 would
// fall back to GitHub). Passing the metadata of the JupyterLab installed in the Python environment keeps the
// build offline and matched to the JupyterLab it will run in.
//
// Python: $PYTHON, else the repository's .venv, else python3. It must have jupyterlab>=4.5,<5.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const venv = resolve(here, "..", ".venv", "bin", "python");
const python = process.env.PYTHON || (existsSync(venv) ? venv : "python3");

const corePackage = execFileSync(python, ["-c",
  "import jupyterlab, pathlib; print(pathlib.Path(jupyterlab.__file__).parent / 'staging' / 'package.json')",
], { encoding: "utf8" }).trim();
if (!existsSync(corePackage)) {
  console.error(`build.mjs: ${corePackage} not found; install jupyterlab>=4.5,<5 for ${python}`);
  process.exit(1);
}

// JupyterLab 4.6's `jupyter labextension build` is an alias that shells out to `jupyter-builder build` (found on
// PATH) after logging a spurious yarn error; call jupyter_builder directly when it is there, else (JupyterLab 4.5)
// the original command.
const hasBuilder = spawnSync(python, ["-c", "import jupyter_builder"]).status === 0;
const args = hasBuilder ? ["-m", "jupyter_builder.main", "build"] : ["-m", "jupyter", "labextension", "build"];
args.push(`--core-package-file=${corePackage}`);
if (process.argv.includes("--development")) args.push("--development");
args.push(here);
const run = spawnSync(python, args, { cwd: here, stdio: "inherit" });
if (run.status !== 0) process.exit(run.status ?? 1);
if (!existsSync(join(here, "..", "ernie_widget", "labextension", "package.json"))) {
  console.error("build.mjs: the build left no ernie_widget/labextension/package.json");
  process.exit(1);
}
