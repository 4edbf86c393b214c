// @vitest-environment jsdom
/**
 * The bundle swaps parts of three dependencies for smaller ones (js/tools/slim.mjs, js/shims/). These tests
 * pin that the swaps change nothing the widget can observe.
 */
import katexDist from "katex/dist/katex.mjs";
import katexSlim from "katex";
import { decodeHTMLStrict as referenceDecode } from "entities/decode";
import encodeMap from "../node_modules/entities/src/generated/encode-html.ts?raw";
import { describe, expect, it } from "vitest";
import { decodeHTMLStrict } from "./shims/entities";
import { LinkifyIt } from "./shims/linkify-it";
import { markdown } from "./markdown";

const TEX = [
  "x^2", "\\frac{a}{b}", "\\sqrt[3]{x}", "\\left(\\frac{a}{b}\\right)", "\\mathbb{R}^n", "\\mathcal{L}",
  "\\mathfrak{g}", "\\mathscr{F}", "\\mathsf{A}", "\\mathtt{x}", "\\boldsymbol{\\alpha}", "\\mathrm{d}x", "\\LaTeX", "\\TeX",
  "\\int_0^\\infty e^{-x}\\,dx", "\\sum_{k=1}^{n} k^2", "\\prod_i x_i", "\\lim_{x\\to 0}", "\\overrightarrow{AB}",
  "\\xrightarrow[below]{above}", "\\widehat{abc}", "\\overbrace{a+b}^{n}", "\\underbrace{x}_{y}", "\\cancel{x}",
  "\\boxed{E=mc^2}", "\\phase{x}", "\\bigg( \\Big[ \\big\\{", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
  "\\begin{aligned}a&=b\\\\c&=d\\end{aligned}", "\\begin{cases}1&x>0\\\\0&\\text{else}\\end{cases}",
  "\\text{中文 and text}", "\\color{red}{x}", "\\operatorname{argmax}_x", "\\binom{n}{k}", "\\not\\in", "\\hbar\\nabla",
  "\\frac{1}{", "\\undefinedmacro", "\\href{javascript:alert(1)}{x}", "\\includegraphics{x.png}", "\\rule{1em}{2em}",
  "\\raisebox{2pt}{x}", "\\kern1em x", "\\mathbf{v}\\cdot\\mathbf{w}", "\\vec{v}", "\\dot{x}\\ddot{y}", "\\tilde{a}",
];

describe("MathML-only KaTeX", () => {
  it.each(TEX.flatMap((tex) => [[tex, false], [tex, true]] as const))("%s (display %s) renders as the published build", (tex, displayMode) => {
    const options = { output: "mathml" as const, displayMode, throwOnError: false, strict: "ignore" as const };
    expect(katexSlim.renderToString(tex, options)).toBe(katexDist.renderToString(tex, options));
  });

  it("is really the slim build (its HTML layout, unused by the widget, lost the glyph metrics)", () => {
    const html = { output: "html" as const };
    expect(katexSlim.renderToString("\\frac{a}{b}", html)).not.toBe(katexDist.renderToString("\\frac{a}{b}", html));
  });

  it("reports the same version", () => {
    expect(katexSlim.version).toBe(katexDist.version);
  });
});

describe("entities shim", () => {
  const names = Array.from(new Set(encodeMap.match(/[A-Za-z][A-Za-z0-9]*;/g) ?? []));

  it("knows enough entity names to be a real test", () => {
    expect(names.length).toBeGreaterThan(1000);
  });

  it("decodes every named entity like entities' decodeHTMLStrict", () => {
    for (const name of names) expect(decodeHTMLStrict(`&${name}`), name).toBe(referenceDecode(`&${name}`));
  });

  it.each(["&notit;", "&ampx;", "&copyright;", "&lt;", "&LT;", "&semi;", "&foo;", "&#65;", "&#x1F600;", "&#0;", "&#xD800;", "&#99999999;", "&#abc;", "&;", "&amp", "plain"])(
    "%s",
    (text) => {
      expect(decodeHTMLStrict(text)).toBe(referenceDecode(text));
    },
  );

  it("markdown-it renders entities through it", () => {
    expect(markdown().renderInline("&copy; &notit; &amp;amp;")).toBe("© &amp;notit; &amp;amp;");
  });
});

describe("linkify-it shim", () => {
  it("never finds a link", () => {
    const l = new LinkifyIt();
    expect(l.test("https://example.com")).toBe(false);
    expect(l.match("https://example.com")).toBeNull();
    expect(l.matchAtStart("https://example.com")).toBeNull();
  });
});
