import { describe, expect, it } from "vitest";
import { ActiveHistory } from "./history";
import {
  escapeFields, explainSource, fenceFor, fixSource, generateSource, hasLoadExt, isCellMagic, LOAD_EXT, openChatSource,
} from "./sources";

describe("cell sources", () => {
  it("generate: a %%ernie -f code cell with the prompt verbatim", () => {
    expect(generateSource("  plot {n} points\n")).toBe("%%ernie -f code\nplot {n} points");
    expect(isCellMagic(generateSource("x"))).toBe(true);
  });

  it("open chat and fix load the extension on their first line", () => {
    expect(openChatSource()).toBe("%load_ext ernie_widget\nfrom ernie_widget import ErnieChat\nErnieChat()");
    expect(fixSource()).toBe("%load_ext ernie_widget\n%ernie --fix");
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

describe("ActiveHistory", () => {
  it("picks the most recent item other than the excluded one", () => {
    const h = new ActiveHistory<string>();
    h.note("work");
    h.note("chat");
    expect(h.pick("chat", () => true)).toBe("work");
    h.note("other");
    h.note("chat");
    expect(h.pick("chat", () => true)).toBe("other");
    expect(h.pick("chat", (x) => x !== "other")).toBe("work");
  });

  it("re-noting moves an item to the front; null is ignored; nothing left gives null", () => {
    const h = new ActiveHistory<string>(3);
    h.note(null);
    expect(h.pick("chat", () => true)).toBeNull();
    h.note("a");
    h.note("b");
    h.note("a");
    expect(h.pick("chat", () => true)).toBe("a");
    h.note("c");
    h.note("d");
    h.note("e");
    expect(h.pick("e", (x) => x === "a" || x === "b")).toBeNull(); // both fell off the bounded history
    expect(h.pick("chat", () => false)).toBeNull();
  });
});
