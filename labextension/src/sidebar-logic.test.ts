/// <reference types="node" />
/**
 * The sidebar chat's pure logic. The generated kernel code is also run by a real Python (with stub modules in
 * place of ernie_widget and IPython, so nothing else is needed): hostile notebook paths must arrive as the same
 * string, add no statement, and leave the user's namespace as it was.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import {
  decide, endsChat, isCurrent, magicHint, MISSING_MESSAGE, OUTDATED_MESSAGE, PIP_INSTALL, pyString, sidebarCode,
  threadName,
} from "./sidebar-logic";

const HOSTILE = [
  "plain.ipynb",
  'quo"te.ipynb',
  "it's.ipynb",
  'both "a" and \'b\'.ipynb',
  'x"); import os; os.system("echo pwned"); ("',
  "x'''\nimport os\n'''.ipynb",
  "line\nbreak\r\nand\ttab.ipynb",
  "back\\slash\\\".ipynb",
  "\\u0022 escaped-looking \\n.ipynb",
  "中文/笔记 本.ipynb",
  "emoji 🙂👩‍💻.ipynb",
  "seps \u2028 \u2029 \u0085 nul\u0000 bell\u0007 del\u007f.ipynb",
  "trailing backslash\\",
  "{braces} and %magic and !shell.ipynb",
];

/** A Python with at least 3.8, or null. */
function findPython(): string | null {
  const venv = resolve(__dirname, "..", "..", ".venv", "bin", "python");
  for (const candidate of [process.env.PYTHON, existsSync(venv) ? venv : undefined, "python3"]) {
    if (!candidate) continue;
    const probe = spawnSync(candidate, ["-c", "import sys; assert sys.version_info >= (3, 8)"]);
    if (probe.status === 0) return candidate;
  }
  return null;
}

const PYTHON = findPython();

/**
 * Run `sidebarCode(thread)` in Python with `mode`: "ok" (ernie_widget.sidebar.sidebar_chat records its argument),
 * "missing" (no ernie_widget), "outdated" (an ernie_widget without .sidebar). Prints one JSON line.
 */
function runInPython(thread: string, mode: "ok" | "missing" | "outdated"): {
  calls: string[]; displayed: unknown[]; leaked: string[]; out: string; err: string; status: number | null;
} {
  const harness = `
import json, sys, types
calls, displayed = [], []
ipython = types.ModuleType("IPython"); ipython.__path__ = []
ipd = types.ModuleType("IPython.display")
def display(obj, raw=False): displayed.append(obj)
ipd.display = display
sys.modules["IPython"] = ipython; sys.modules["IPython.display"] = ipd
mode = sys.argv[1]
if mode != "missing":  # run with -I -S: no site-packages, so the real ernie_widget is not importable
    pkg = types.ModuleType("ernie_widget"); pkg.__path__ = []
    sys.modules["ernie_widget"] = pkg
if mode == "ok":
    side = types.ModuleType("ernie_widget.sidebar")
    side.sidebar_chat = lambda thread: calls.append(thread)
    sys.modules["ernie_widget.sidebar"] = side
user_ns = {"__name__": "__main__", "x": 1}
before = set(user_ns)
exec(compile(sys.stdin.buffer.read().decode("utf-8"), "<silent>", "exec"), user_ns)
leaked = sorted(set(user_ns) - before - {"__builtins__"})
print(json.dumps({"calls": calls, "displayed": displayed, "leaked": leaked}))
`;
  const run = spawnSync(PYTHON!, ["-I", "-S", "-c", harness, mode], { input: sidebarCode(thread), encoding: "utf8" });
  const parsed = run.status === 0 ? JSON.parse(run.stdout) : { calls: [], displayed: [], leaked: [] };
  return { ...parsed, out: run.stdout, err: run.stderr, status: run.status };
}

describe("thread names", () => {
  it("sidebar:<path>, stable per notebook path", () => {
    expect(threadName("notes/analysis.ipynb")).toBe("sidebar:notes/analysis.ipynb");
    expect(threadName("/notes/a.ipynb")).toBe("sidebar:notes/a.ipynb");
    expect(threadName("a.ipynb")).toBe(threadName("a.ipynb"));
    expect(threadName("a.ipynb")).not.toBe(threadName("b/a.ipynb"));
  });

  it("the %%ernie line quotes the name with a quote it does not contain", () => {
    expect(magicHint("sidebar:a b.ipynb")).toBe('%%ernie --thread "sidebar:a b.ipynb"');
    expect(magicHint('sidebar:say "hi".ipynb')).toBe("%%ernie --thread 'sidebar:say \"hi\".ipynb'");
    expect(magicHint(`sidebar:"a" 'b'.ipynb`)).toBe(`%config ErnieMagics.thread = "sidebar:\\"a\\" 'b'.ipynb"`);
    expect(magicHint("sidebar:a\nb")).toBe('%config ErnieMagics.thread = "sidebar:a\\nb"');
  });
});

describe("silent code", () => {
  it("is a JSON literal per value, on one line each", () => {
    for (const path of HOSTILE) {
      const thread = threadName(path);
      const literal = pyString(thread);
      expect(JSON.parse(literal)).toBe(thread);
      expect(literal).not.toMatch(/[\n\r]/);
      expect(sidebarCode(thread)).toContain(`    _ernie_sidebar_open(${literal})\n`);
      // the code differs only in that literal: nothing of the path reaches anywhere else
      expect(sidebarCode(thread).replace(literal, "THREAD")).toBe(sidebarCode("x").replace(pyString("x"), "THREAD"));
    }
  });

  it("the messages are bilingual and carry the pip command", () => {
    for (const message of [MISSING_MESSAGE, OUTDATED_MESSAGE]) {
      expect(message).toMatch(/[\u4e00-\u9fff]/);
      expect(message).toMatch(/restart the kernel/);
      expect(message).toContain("pip install");
    }
    expect(MISSING_MESSAGE).toContain(PIP_INSTALL);
    expect(OUTDATED_MESSAGE).toContain("%pip install -U ernie-widget");
  });

  describe.skipIf(!PYTHON)("run by Python", () => {
    it("passes every hostile path through unchanged, runs nothing else, leaks no name", () => {
      for (const path of HOSTILE) {
        const thread = threadName(path);
        const result = runInPython(thread, "ok");
        expect(result.err).toBe("");
        expect(result.calls).toEqual([thread]);
        expect(result.displayed).toEqual([]);
        expect(result.leaked).toEqual([]);
        expect(result.out.trimEnd().split("\n")).toHaveLength(1); // only the harness printed: no "echo pwned"
      }
    });

    it("without ernie_widget: the install message, no traceback", () => {
      const result = runInPython(threadName("a.ipynb"), "missing");
      expect(result.err).toBe("");
      expect(result.calls).toEqual([]);
      expect(result.leaked).toEqual([]);
      expect(result.displayed).toHaveLength(1);
      const text = (result.displayed[0] as Record<string, string>)["text/plain"];
      expect(text.startsWith(MISSING_MESSAGE)).toBe(true);
      expect(text).toContain("ModuleNotFoundError: No module named 'ernie_widget'");
    });

    it("with an ernie_widget that has no sidebar module: the upgrade message", () => {
      const result = runInPython(threadName("a.ipynb"), "outdated");
      expect(result.err).toBe("");
      const text = (result.displayed[0] as Record<string, string>)["text/plain"];
      expect(text.startsWith(OUTDATED_MESSAGE)).toBe(true);
      expect(text).toContain("No module named 'ernie_widget.sidebar'");
      expect(result.leaked).toEqual([]);
    });
  });
});

describe("which kernel, and when to run", () => {
  const idle = { id: "k1", status: "idle" as const };

  it("runs for the notebook's kernel once it is idle or busy", () => {
    expect(decide(idle, "sidebar:a", 0, null)).toBe("run");
    expect(decide({ id: "k1", status: "busy" }, "sidebar:a", 0, null)).toBe("run"); // queued behind the cell
    for (const status of ["unknown", "starting", "restarting", "autorestarting", "terminating", "dead"] as const) {
      expect(decide({ id: "k1", status }, "sidebar:a", 0, null)).toBe("wait");
    }
    expect(decide(null, "sidebar:a", 0, null)).toBe("no-kernel");
  });

  it("keeps what it shows; runs again for another kernel, thread or restart", () => {
    const shown = { kernelId: "k1", thread: "sidebar:a", epoch: 0 };
    expect(decide(idle, "sidebar:a", 0, shown)).toBe("keep");
    expect(decide({ id: "k2", status: "idle" }, "sidebar:a", 0, shown)).toBe("run"); // kernel changed
    expect(decide(idle, "sidebar:b", 0, shown)).toBe("run"); // renamed notebook
    expect(decide(idle, "sidebar:a", 1, shown)).toBe("run"); // restarted: same id, chat gone
  });

  it("a finished run counts only if nothing moved on meanwhile", () => {
    const target = { kernelId: "k1", thread: "sidebar:a", epoch: 2 };
    expect(isCurrent(target, "k1", "sidebar:a", 2)).toBe(true);
    expect(isCurrent(target, "k1", "sidebar:a", 3)).toBe(false);
    expect(isCurrent(target, null, "sidebar:a", 2)).toBe(false);
    expect(isCurrent(target, "k1", "sidebar:c", 2)).toBe(false);
  });

  it("restarts and deaths end the chat; busy and idle do not", () => {
    expect(["restarting", "autorestarting", "dead"].every((s) => endsChat(s as never))).toBe(true);
    expect(["idle", "busy", "starting", "unknown"].some((s) => endsChat(s as never))).toBe(false);
  });
});
