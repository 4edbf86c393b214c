/**
 * DOMPurify as the second line of defence for rendered model output.
 *
 * The first line is the renderer itself (markdown-it with `html: false`, a link allowlist, images as
 * placeholders). This pass re-parses each block's HTML and keeps only the elements and attributes that renderer
 * can produce: no style, no event handlers, no forms, frames, embeds or SVG, and of MathML only what KaTeX emits.
 */
import DOMPurify, { type Config, type DOMPurify as Purifier } from "dompurify";

// Absolute http(s) with a host: "http:hit", "http:/logout" or "http:\\x" resolve against the page's own origin,
// and one click would reach the Jupyter server's endpoints.
const WEB = String.raw`https?:\/\/[^\s\/\\?#@]+(?:[\/?#]|$)`;
/** The only URLs a web source may link to (render.py's `is_web_url`). */
export const WEB_URL = new RegExp(`^${WEB}`, "i");
/** Link targets the widget lets through: web, mail, in-page anchors. */
export const SAFE_HREF = new RegExp(String.raw`^(?:${WEB}|mailto:\S|#)`, "i");
/** Images are only ever loaded on click, and only from http(s). */
export const LOADABLE_IMAGE = /^https?:\/\//i;
export const LINK_REL = "noopener noreferrer nofollow";

const HTML_TAGS = [
  "a", "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li", "pre", "code",
  "em", "strong", "s", "span", "div", "table", "thead", "tbody", "tr", "th", "td", "button",
];

/** The MathML elements KaTeX's `output: "mathml"` produces (KaTeX src/mathMLTree.ts, buildMathML.ts). */
export const KATEX_MATHML_TAGS = [
  "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub",
  "msubsup", "mfrac", "msqrt", "mroot", "mstyle", "mtable", "mtr", "mtd", "mlabeledtr", "mover", "munder",
  "munderover", "menclose", "mpadded", "mphantom", "merror", "mmultiscripts", "mprescripts", "none",
];

const HTML_ATTRS = ["href", "title", "class", "rel", "target", "start", "type", "data-src", "aria-label", "aria-hidden"];

const MATHML_ATTRS = [
  "xmlns", "display", "encoding", "mathvariant", "mathsize", "mathcolor", "mathbackground", "stretchy", "fence",
  "separator", "lspace", "rspace", "minsize", "maxsize", "accent", "accentunder", "largeop", "movablelimits",
  "symmetric", "displaystyle", "scriptlevel", "columnalign", "rowalign", "columnspacing", "rowspacing",
  "columnlines", "rowlines", "frame", "framespacing", "equalrows", "equalcolumns", "side", "width", "height",
  "depth", "voffset", "linethickness", "notation", "scriptminsize", "scriptsizemultiplier", "linebreak",
];

const CONFIG: Config = {
  ALLOWED_TAGS: [...HTML_TAGS, ...KATEX_MATHML_TAGS],
  ALLOWED_ATTR: [...HTML_ATTRS, ...MATHML_ATTRS],
  // Belt and braces: even if an allowlist above grows, these never pass.
  FORBID_TAGS: [
    "script", "style", "iframe", "frame", "object", "embed", "svg", "form", "input", "textarea", "select",
    "option", "img", "video", "audio", "source", "link", "meta", "base", "maction", "annotation-xml",
  ],
  FORBID_ATTR: ["style", "src", "srcset", "action", "formaction", "xlink:href", "background"],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOW_UNKNOWN_PROTOCOLS: false,
  SAFE_FOR_TEMPLATES: false,
  WHOLE_DOCUMENT: false,
};

let purifier: Purifier | null = null;

function instance(): Purifier {
  if (purifier) return purifier;
  // A private instance, so our hooks never leak into another library's DOMPurify.
  const p = DOMPurify(window);
  if (!p.isSupported) {
    // DOMPurify returns its input unchanged when it cannot work: fail closed instead.
    throw new Error("DOMPurify is not supported in this environment");
  }
  p.addHook("afterSanitizeAttributes", (node) => {
    if (!(node instanceof Element)) return;
    // Event handlers are never in ALLOWED_ATTR; drop any on* that some parser quirk might still carry.
    for (const attr of Array.from(node.attributes)) {
      if (/^on/i.test(attr.name)) node.removeAttribute(attr.name);
    }
    const href = node.getAttribute("href");
    if (href !== null) {
      if (node.localName !== "a" || !SAFE_HREF.test(href.trim())) node.removeAttribute("href");
      else {
        node.setAttribute("rel", LINK_REL);
        node.setAttribute("target", "_blank");
      }
    }
    const dataSrc = node.getAttribute("data-src");
    if (dataSrc !== null && (node.localName !== "button" || !LOADABLE_IMAGE.test(dataSrc.trim()))) {
      node.removeAttribute("data-src");
    }
  });
  purifier = p;
  return p;
}

// Sanitizing is a pure function of its input (fixed config), and the open tail re-renders its earlier blocks
// every frame: remember recent results.
const cache = new Map<string, string>();
const CACHE_LIMIT = 256;

/** Sanitize one rendered block (an HTML string) and return the cleaned HTML string. */
export function sanitizeHtml(html: string): string {
  const hit = cache.get(html);
  if (hit !== undefined) return hit;
  const clean = instance().sanitize(html, { ...CONFIG, RETURN_TRUSTED_TYPE: false }) as string;
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(html, clean);
  return clean;
}
