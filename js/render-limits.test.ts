// @vitest-environment jsdom
/**
 * Size limits of the widget's renderer (issue 19): past them text is shown as plain text — never dropped, never
 * formatted at a cost of hundreds of ms per update — and a streamed answer ends with the DOM a restored one has.
 */
import { describe, expect, it } from "vitest";
import { IncrementalRenderer, MAX_ANSWER_BLOCKS, MAX_BLOCK_CHARS, PART_LINES, renderFull } from "./markdown";

const sync = { schedule: (f: () => void) => f() };

/** Stream `text` in `size`-character chunks (a flush after each), then finish. */
function streamed(text: string, size: number): HTMLElement {
  const el = document.createElement("div");
  const r = new IncrementalRenderer(el, sync);
  for (let i = 0; i < text.length; i += size) r.push(text.slice(i, i + size));
  r.finish();
  return el;
}

function restored(text: string): HTMLElement {
  const el = document.createElement("div");
  const r = new IncrementalRenderer(el, { schedule: () => {} });
  r.replace(text);
  r.finish();
  return el;
}

describe("a block too big to format", () => {
  it("a code fence past MAX_BLOCK_CHARS is its text, in parts of PART_LINES lines, every line kept", () => {
    const lines = Array.from({ length: 2_500 }, (_, i) => `value_${i} = ${i} * 2  # <b>${i}</b>`);
    const text = `intro\n\n\`\`\`python\n${lines.join("\n")}\n\`\`\`\n\nafter **the** fence\n`;
    expect(text.length).toBeGreaterThan(MAX_BLOCK_CHARS);
    const el = streamed(text, 997);
    expect(el.querySelector("pre")).toBeNull(); // not highlighted: shown as text
    const fallback = el.querySelector(".ernie-render-fallback") as HTMLElement;
    const parts = fallback.querySelectorAll(".ernie-text-part");
    expect(parts.length).toBe(Math.floor((lines.length + 2) / PART_LINES));
    expect(parts[0].textContent?.split("\n").length).toBe(PART_LINES + 1); // 100 lines, each ending in "\n"
    expect(fallback.textContent).toBe(`\`\`\`python\n${lines.join("\n")}\n\`\`\``);
    expect(fallback.querySelector("b")).toBeNull();
    expect(el.querySelector("strong")?.textContent).toBe("the"); // the blocks after it are formatted
    expect(el.innerHTML).toBe(restored(text).innerHTML);
    expect(el.innerHTML).toBe(renderFull(text));
  });

  it("a paragraph past MAX_BLOCK_CHARS is never rendered empty (its inline text is not parsed)", () => {
    const text = `${"[a](https://e.example) ".repeat(1_200)}\n\nend`;
    const el = streamed(text, 4096);
    expect(el.querySelector("a")).toBeNull();
    expect(el.querySelector(".ernie-render-fallback")?.textContent).toBe(text.split("\n\n")[0]);
    expect(el.lastElementChild?.textContent).toBe("end");
  });

  it("a formula past MAX_BLOCK_CHARS is its TeX source, not typeset", () => {
    const tex = "a+b\\\\\n".repeat(5_000);
    const el = restored(`$$\n${tex}$$\n\nafter`);
    expect(el.querySelector(".katex, math")).toBeNull();
    expect(el.querySelector(".ernie-render-fallback")?.textContent).toBe(`$$\n${tex}$$`);
  });
});

describe("an answer with more than MAX_ANSWER_BLOCKS blocks", () => {
  const text = Array.from({ length: MAX_ANSWER_BLOCKS + 500 }, (_, i) => `heading ${i}\n===\n`).join("");

  it("formats the first MAX_ANSWER_BLOCKS and shows the rest as plain text, every character kept", () => {
    const el = streamed(text, 333);
    const headings = el.querySelectorAll("h1");
    expect(headings.length).toBe(MAX_ANSWER_BLOCKS);
    expect(headings[headings.length - 1].textContent).toBe(`heading ${MAX_ANSWER_BLOCKS - 1}`);
    const rest = el.querySelector(".ernie-rest") as HTMLElement;
    expect(rest).toBe(el.lastElementChild);
    const restText = text.slice(text.indexOf(`heading ${MAX_ANSWER_BLOCKS}\n`));
    expect(rest.textContent).toBe(restText);
    expect(rest.querySelectorAll(".ernie-text-part").length).toBe(Math.floor(1_000 / PART_LINES));
  });

  it("streams to the same DOM as a restored transcript and as renderFull, however the cut is reached", () => {
    const whole = restored(text).innerHTML;
    expect(renderFull(text)).toBe(whole);
    const cut = text.indexOf(`heading ${MAX_ANSWER_BLOCKS}\n`);
    for (const size of [1, 7, 4096]) {
      // small chunks around the cut (a flush after each), the rest in bulk
      const el = document.createElement("div");
      const r = new IncrementalRenderer(el, sync);
      r.push(text.slice(0, cut - 300));
      for (let i = cut - 300; i < cut + 300; i += size) r.push(text.slice(i, Math.min(i + size, cut + 300)));
      r.push(text.slice(cut + 300));
      r.finish();
      expect(el.innerHTML, `chunks of ${size}`).toBe(whole);
    }
  });

  it("keeps appending past the limit while streaming, rewriting only the last part", () => {
    const el = document.createElement("div");
    const r = new IncrementalRenderer(el, sync);
    r.push(text);
    const rest = el.querySelector(".ernie-rest") as HTMLElement;
    const firstPart = rest.firstElementChild;
    r.push("more text\nand more");
    expect(rest.firstElementChild).toBe(firstPart); // full parts stay
    expect(rest.lastElementChild?.textContent).toBe("more text\nand more");
    r.finish();
    expect(el.innerHTML).toBe(renderFull(`${text}more text\nand more`));
  });
});
