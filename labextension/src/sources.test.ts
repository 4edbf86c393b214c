import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import {
  escapeFields, explainSource, fenceFor, fixSource, generateSource, hasLoadExt, isCellMagic, LOAD_EXT, LOAD_IF_NEEDED,
  openChatSource,
} from "./sources";

describe("cell sources", () => {
  it("generate: a %%ernie -f code cell with the prompt verbatim", () => {
    expect(generateSource("  plot {n} points\n")).toBe("%%ernie -f code\nplot {n} points");
    expect(isCellMagic(generateSource("x"))).toBe(true);
  });

  it("open chat and fix carry no %load_ext (it is loaded silently before they run)", () => {
    expect(openChatSource()).toBe("from ernie_widget import ErnieChat\nErnieChat()");
    expect(fixSource()).toBe("%ernie --fix");
    expect(isCellMagic(openChatSource())).toBe(false);
    expect(isCellMagic(fixSource())).toBe(false);
  });

  it("explain: the code goes in literally (field-shaped braces doubled for %%ernie's {name} fields)", () => {
    const src = explainSource('d = {"k": f"{x}"}\n');
    expect(src).toBe('%%ernie\nExplain this code:\n\n```python\nd = {"k": f"{{x}}"}\n```');
    expect(isCellMagic(src)).toBe(true);
  });

  it("explain: a fence longer than any backtick run in the code", () => {
    expect(fenceFor("no ticks")).toBe("```");
    expect(fenceFor("a ```` b ` c")).toBe("`````");
    const src = explainSource('s = """\n```\n"""');
    expect(src.split("\n")[3]).toBe("````python");
    expect(src.endsWith("\n````")).toBe(true);
  });

  it("escapeFields doubles the braces of fields only", () => {
    expect(escapeFields("{}{{}}a {'k': {1, 2}} \\frac{1}{x^{2}}")).toBe("{}{{}}a {'k': {1, 2}} \\frac{1}{x^{2}}");
    expect(escapeFields("f'{x}' {In[3]} {Out[-1]} {Err[2]} {变量} {_a1}")).toBe(
      "f'{{x}}' {{In[3]}} {{Out[-1]}} {{Err[2]}} {{变量}} {{_a1}}");
    expect(escapeFields("{{x}} {x.y} {x[0]} {1x} {x }")).toBe("{{{x}}} {x.y} {x[0]} {1x} {x }");
  });

  it("hasLoadExt finds a %load_ext ernie_widget line in any source", () => {
    expect(hasLoadExt([])).toBe(false);
    expect(hasLoadExt(["import os", LOAD_EXT])).toBe(true);
    expect(hasLoadExt(["x = 1\n  %load_ext ernie_widget  \ny = 2"])).toBe(true);
    expect(hasLoadExt(["# %load_ext ernie_widget", "%load_ext ernie_widgets", "%load_ext other"])).toBe(false);
  });
});

const VENV = resolve(__dirname, "..", "..", ".venv", "bin", "python");
const PYTHON = process.env.PYTHON || (existsSync(VENV) ? VENV : "python3");
const HAS_IPYTHON = spawnSync(PYTHON, ["-c", "import IPython, ernie_widget"]).status === 0;

describe.skipIf(!HAS_IPYTHON)("LOAD_IF_NEEDED in a real IPython shell", () => {
  it("loads the extension once, prints nothing, leaves no name, and respects a %load_ext done by the user", () => {
    const script = `
import io, json, contextlib
from IPython.testing.globalipapp import start_ipython
ip = start_ipython()
code = ${JSON.stringify(LOAD_IF_NEEDED)}
names = set(ip.user_ns)
out = io.StringIO()
with contextlib.redirect_stdout(out):
    ip.run_cell(code, silent=True, store_history=False)
    first = "ernie" in ip.magics_manager.magics["cell"]
    hooks = len(ip.events.callbacks["post_run_cell"])
    ip.run_cell(code, silent=True, store_history=False)
ip.run_line_magic("unload_ext", "ernie_widget")
ip.run_line_magic("load_ext", "ernie_widget")  # as a user would; the next silent load must not load it again
hooks = len(ip.events.callbacks["post_run_cell"])
with contextlib.redirect_stdout(out):
    ip.run_cell(code, silent=True, store_history=False)
print(json.dumps({"first": first, "hooks_same": hooks == len(ip.events.callbacks["post_run_cell"]),
                  "out": out.getvalue(), "new_names": sorted(set(ip.user_ns) - names - {"Err"})}))
`;
    const run = spawnSync(PYTHON, ["-c", script], { encoding: "utf8", env: { ...process.env, ERNIE_QUIET: "1" } });
    expect(run.status, run.stderr).toBe(0);
    const got = JSON.parse(run.stdout.trim().split("\n").pop()!);
    expect(got).toEqual({ first: true, hooks_same: true, out: "", new_names: [] });
  }, 60_000);
});
