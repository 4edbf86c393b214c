import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { SHORTCUTS } from "./shortcuts";

/** Every `jupyter.lab.shortcuts` entry in the schemas of the JupyterLab / Notebook 7 installed in the venv. */
function defaultShortcuts(): Array<{ command: string; keys: string[] }> {
  const roots = [resolve(__dirname, "..", "..", ".venv", "share", "jupyter", "lab", "schemas"),
                 resolve(__dirname, "..", "..", ".venv", "share", "jupyter", "labextensions")];
  const found: Array<{ command: string; keys: string[] }> = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (name === "ernie-widget" || name === "node_modules") continue;
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".json")) {
        try {
          found.push(...(JSON.parse(readFileSync(path, "utf8"))["jupyter.lab.shortcuts"] ?? []));
        } catch { /* not a schema */ }
      }
    }
  };
  for (const root of roots) if (existsSync(root)) walk(root);
  return found;
}

const DEFAULTS = defaultShortcuts();

describe("shortcuts", () => {
  it("bind every ERNIE command (ids read from the sources: importing them needs a browser)", () => {
    const commands = readFileSync(join(__dirname, "commands.ts"), "utf8");
    const ids = [...commands.matchAll(/^ {2}\w+: "(ernie-widget:[a-z-]+)",$/gm)].map((m) => m[1]);
    ids.push(/SIDEBAR_COMMAND = "(ernie-widget:[a-z-]+)"/.exec(readFileSync(join(__dirname, "sidebar.ts"), "utf8"))![1]);
    expect(SHORTCUTS.map((s) => s.command).sort()).toEqual([...new Set(ids)].sort());
  });

  it.skipIf(DEFAULTS.length < 50)("collide with no JupyterLab / Notebook 7 default (no prefix either way)", () => {
    const ours = SHORTCUTS.map((s) => s.keys.join(" "));
    expect(new Set(ours).size).toBe(ours.length);
    for (const d of DEFAULTS) {
      const theirs = d.keys.join(" ");
      if (!theirs) continue;
      for (const mine of ours) {
        expect(mine === theirs || mine.startsWith(`${theirs} `) || theirs.startsWith(`${mine} `),
          `${mine} vs ${theirs} (${d.command})`).toBe(false);
      }
      expect(theirs.split(" ")[0]).not.toBe("E");
    }
  });
});
