// @vitest-environment jsdom
/**
 * Per-block render failure (issue 19): if rendering one block throws — any exception, e.g. a stack overflow from a
 * pathological input that slips past the guards — that block shows as plain text, the rest of the answer renders,
 * and so does every later render (a restored transcript, reopened).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { IncrementalRenderer, markdown, renderFull } from "./markdown";

const sync = { schedule: (f: () => void) => f() };

/** Make the renderer throw (a RangeError, as a stack overflow does) for any block whose text contains BOOM. */
function explodeOn(word: string) {
  const renderer = markdown().renderer;
  const original = renderer.render.bind(renderer);
  return vi.spyOn(renderer, "render").mockImplementation((tokens, options, env) => {
    if (tokens.some((t) => t.content.includes(word) || (t.children ?? []).some((c) => c.content.includes(word)))) {
      throw new RangeError("Maximum call stack size exceeded");
    }
    return original(tokens, options, env);
  });
}

afterEach(() => vi.restoreAllMocks());

const ANSWER = "before **bold**\n\nmid <b>BOOM</b> $x$ [l](https://e.example)\nsecond line\n\n- after 1\n- after 2\n";

describe("a block that throws while rendering", () => {
  it("is shown as its source text, escaped, and the blocks around it render", () => {
    explodeOn("BOOM");
    const html = renderFull(ANSWER);
    const el = document.createElement("div");
    el.append(document.createRange().createContextualFragment(html));
    expect(el.querySelector("strong")?.textContent).toBe("bold");
    const fallback = el.querySelector(".ernie-render-fallback");
    expect(fallback?.textContent).toBe("mid <b>BOOM</b> $x$ [l](https://e.example)\nsecond line");
    expect(fallback?.children.length).toBe(0); // text only: the raw <b> is not markup
    expect([...el.querySelectorAll("li")].map((li) => li.textContent)).toEqual(["after 1", "after 2"]);
  });

  it("streams: the tail after the failing block keeps rendering, and the final DOM equals renderFull", () => {
    explodeOn("BOOM");
    const el = document.createElement("div");
    const r = new IncrementalRenderer(el, sync);
    for (const ch of ANSWER.match(/[\s\S]{1,3}/g) ?? []) r.push(ch);
    r.finish();
    expect(el.innerHTML).toBe(renderFull(ANSWER));
    expect(el.textContent).toContain("after 2");
    expect(el.querySelectorAll(".ernie-render-fallback").length).toBe(1);
  });

  it("a parser that throws on the whole text still shows all of it as text, and later renders work", () => {
    const md = markdown();
    const parse = vi.spyOn(md, "parse").mockImplementation(() => {
      throw new RangeError("Maximum call stack size exceeded");
    });
    const el = document.createElement("div");
    const r = new IncrementalRenderer(el, sync);
    r.replace("# title\n\n{{{{ text after");
    r.finish();
    expect(el.querySelector(".ernie-render-fallback")?.textContent).toBe("# title\n\n{{{{ text after");
    parse.mockRestore();
    // every later reopening: the same renderer class renders normally again
    const again = document.createElement("div");
    const r2 = new IncrementalRenderer(again, sync);
    r2.replace("# title\n\ntext after");
    r2.finish();
    expect(again.querySelector("h1")?.textContent).toBe("title");
  });

  it("a throwing onCommit/onRender decoration does not break later flushes", () => {
    const el = document.createElement("div");
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const r = new IncrementalRenderer(el, {
      ...sync,
      onCommit: () => {
        throw new Error("decoration failed");
      },
    });
    r.push("one\n\ntwo\n\n");
    r.push("three\n\n");
    r.finish();
    expect(el.innerHTML).toBe(renderFull("one\n\ntwo\n\nthree\n\n"));
    expect(errors).toHaveBeenCalled();
  });

  it("real pathological inputs render with text after them (no mock)", () => {
    const texts = ["$" + "{".repeat(5000) + "$\n\nafter-braces", "$" + "x^{".repeat(3000) + "$\n\nafter-sup",
      "- ".repeat(60) + "x\n\nafter-bomb"];
    for (const text of texts) {
      const html = renderFull(text);
      const el = document.createElement("div");
      el.append(document.createRange().createContextualFragment(html));
      expect(el.textContent).toContain(text.slice(text.lastIndexOf("after")));
    }
  });
});

describe("a line past the nesting limit", () => {
  it("is shown as text and opens no container: 100 k characters of such lines render as one flat paragraph", () => {
    const text = ("- ".repeat(50) + "x\n").repeat(980) + "\nAFTER";
    const start = performance.now();
    const html = renderFull(text);
    const elapsed = performance.now() - start;
    const el = document.createElement("div");
    el.append(document.createRange().createContextualFragment(html));
    expect(el.querySelectorAll("ul, li").length).toBe(0);
    expect(el.textContent).toContain("- - - x");
    expect(el.textContent).toContain("AFTER");
    expect(elapsed).toBeLessThan(3000); // 24 nested lists per line took seconds per update in Chromium
  });

  it("a line within the limit still nests", () => {
    const el = document.createElement("div");
    el.append(document.createRange().createContextualFragment(renderFull("- - - deep")));
    expect(el.querySelectorAll("ul").length).toBe(3);
  });
});
