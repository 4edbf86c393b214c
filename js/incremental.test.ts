// @vitest-environment jsdom
/**
 * Property: streaming a text in any chunking gives, after every flush, exactly the DOM of a one-shot render
 * of the text so far, and `renderFull` equals markdown-it rendering the whole document at once.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IncrementalRenderer, markdown, normalizeText, renderFull } from "./markdown";
import { sanitizeHtml } from "./sanitize";

const inline = fc.constantFrom(
  "plain text",
  "中文句子，带标点。",
  "**粗体。**后文",
  "*em*",
  "_under_",
  "`code`",
  "``a ` b``",
  "$x^2$",
  "\\(a+b\\)",
  "$$e=mc^2$$",
  "$5 and $10",
  "[link](https://example.com)",
  "[bad](javascript:alert(1))",
  "![img](https://e.example/p.png)",
  "<b>raw</b>",
  "&amp; &copy; &notit;",
  "\\*escaped\\*",
  "a | b",
  "~~strike~~",
  "#notheading",
  "1)",
  "[ref]",
  "[ref]: https://example.com",
  "    ",
  "\t",
);

const line = fc.array(inline, { minLength: 1, maxLength: 3 }).map((parts) => parts.join(" "));

const block = fc.oneof(
  line,
  line.map((l) => `# ${l}`),
  line.map((l) => `### ${l} ###`),
  line.map((l) => `${l}\n===`),
  line.map((l) => `${l}\n---`),
  fc.constant("---"),
  fc.constant("***"),
  line.map((l) => `- ${l}`),
  line.map((l) => `* ${l}\n  continued`),
  line.map((l) => `1. ${l}\n2. two`),
  line.map((l) => `- a\n\n- ${l}`),
  line.map((l) => `- outer\n  - inner ${l}`),
  line.map((l) => `> ${l}\n> more`),
  line.map((l) => `> ${l}\nlazy`),
  fc.constant("```python\ndef f():\n    return 1\n```"),
  fc.constant("```js\nlet a = `x`;\n\n\nconsole.log(a)\n```"),
  fc.constant("~~~\ntilde\n~~~"),
  fc.constant("````\n```\nnested\n```\n````"),
  fc.constant("```\nunclosed fence"),
  fc.constant("    indented code\n\n    more"),
  fc.constant("| a | b |\n|---|:-:|\n| 1 | 2 |"),
  fc.constant("a | b\n- | -\nc | d"),
  fc.constant("$$\n\\int_0^1 x\\,dx\n$$"),
  fc.constant("\\[\n\\sum_k k\n\\]"),
  fc.constant("$$\nunclosed math"),
  fc.constant("1. step\n\n   ```bash\n   ls\n   ```"),
  fc.constant("<div>html block</div>"),
  fc.constant(""),
);

const separator = fc.constantFrom("\n", "\n\n", "\n\n\n", "\n \n");
const documentText = fc
  .array(fc.tuple(block, separator), { minLength: 1, maxLength: 10 })
  .map((parts) => parts.map(([b, s]) => b + s).join(""))
  .chain((text) => fc.constantFrom(text, text.trimEnd()));

/** Split `text` at random points (including inside lines and tokens). */
const chunked = documentText.chain((text) =>
  fc
    .uniqueArray(fc.integer({ min: 1, max: Math.max(1, text.length - 1) }), { maxLength: Math.min(12, text.length) })
    .map((cuts) => {
      const points = [0, ...cuts.filter((c) => c < text.length).sort((a, b) => a - b), text.length];
      const chunks: string[] = [];
      for (let i = 1; i < points.length; i++) chunks.push(text.slice(points[i - 1], points[i]));
      return { text, chunks };
    }),
);

const sync = { schedule: (flush: () => void) => flush() };

// Fixed seeds keep CI deterministic and the run short (jsdom's DOM is slow); FC_SEED / FC_RUNS explore more,
// e.g. `FC_SEED=$RANDOM FC_RUNS=500 npx vitest run js/incremental.test.ts`.
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const SEED = env.FC_SEED ? Number(env.FC_SEED) : undefined;
const RUNS = env.FC_RUNS ? Number(env.FC_RUNS) : undefined;
const opts = (numRuns: number, seed: number) => ({ numRuns: RUNS ?? numRuns, seed: SEED ?? seed });

describe("IncrementalRenderer == renderFull", () => {
  it("matches a one-shot render after every chunk and at the end", () => {
    fc.assert(
      fc.property(chunked, ({ text, chunks }) => {
        const el = document.createElement("div");
        const r = new IncrementalRenderer(el, sync);
        let sofar = "";
        for (const chunk of chunks) {
          r.push(chunk);
          sofar += chunk;
          expect(el.innerHTML).toBe(renderFull(sofar));
        }
        r.finish();
        expect(el.innerHTML).toBe(renderFull(text));
      }),
      opts(60, 20240607),
    );
  });

  it("matches with CRLF line endings split anywhere", () => {
    fc.assert(
      fc.property(chunked, ({ text }) => {
        const crlf = text.replace(/\n/g, "\r\n");
        const el = document.createElement("div");
        const r = new IncrementalRenderer(el, sync);
        for (let i = 0; i < crlf.length; i += 7) r.push(crlf.slice(i, i + 7));
        r.finish();
        expect(el.innerHTML).toBe(renderFull(crlf));
      }),
      opts(20, 7),
    );
  });

  it("renderFull equals markdown-it rendering the whole document at once", () => {
    fc.assert(
      fc.property(documentText, (text) => {
        const whole = sanitizeHtml(markdown().render(normalizeText(text)));
        expect(renderFull(text)).toBe(whole);
      }),
      opts(100, 42),
    );
  });

  it("streams a long answer one character at a time", () => {
    const text = fc.sample(documentText, { numRuns: 3, seed: 3 }).join("\n\n");
    const el = document.createElement("div");
    const r = new IncrementalRenderer(el, sync);
    for (const ch of text) r.push(ch);
    r.finish();
    expect(el.innerHTML).toBe(renderFull(text));
  });
});
