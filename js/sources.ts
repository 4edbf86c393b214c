/**
 * An answer's web sources: the numbered list under it, and its citation markers (`span.ernie-cite`, markdown.ts)
 * turned into superscript links to them.
 *
 * Titles and URLs come from the web, through the kernel or a saved notebook: they are set as text and attributes
 * with the DOM API, never parsed as HTML. Only an absolute http(s) URL with a host becomes a link (the renderers'
 * rule, sanitize.ts); it opens in a new tab without opener or referrer, and only on a real click (chat.ts refuses
 * untrusted clicks on links). Nothing of a source is loaded: no favicon, no preview.
 */
import { h } from "./dom";
import { LINK_REL, WEB_URL } from "./sanitize";
import type { Source } from "./types";

/** The host a source link goes to, or "" when its URL may not be a link. */
export function sourceHost(url: string): string {
  if (!WEB_URL.test(url)) return "";
  try {
    return new URL(url).hostname;
  } catch {
    return ""; // a URL the browser cannot parse is not a link either
  }
}

function sourceLink(source: Source, cls: string, ...children: Array<Node | string>): HTMLAnchorElement {
  return h("a", { href: source.url, class: cls, target: "_blank", rel: LINK_REL }, ...children);
}

/** Fill `list` (an `<ol>`) with one item per source: its number, title and host. */
export function renderSourceList(list: HTMLOListElement, sources: Source[]): void {
  list.replaceChildren(
    ...sources.map((source) => {
      const host = sourceHost(source.url);
      const title = h("span", { class: "ernie-source-title" }, source.title || host || source.url);
      const item = h("li", { value: source.index }, host ? sourceLink(source, "ernie-source-link", title) : title);
      if (host) item.append(" ", h("span", { class: "ernie-source-host" }, host));
      return item;
    }),
  );
}

/**
 * Link the citation markers under `root` to the sources they name. Idempotent: run it on newly rendered nodes, and
 * on the whole answer when the sources change. In `^[1][9]^` only `[1]` links when there is no source 9; a marker
 * with nothing to link stays its plain text.
 */
export function linkCitations(root: Element, sources: Map<number, Source>): void {
  for (const span of Array.from(root.querySelectorAll<HTMLElement>("span.ernie-cite"))) {
    const marker = (span.dataset.marker ??= span.textContent ?? "");
    let linked = false;
    const parts = Array.from(marker.matchAll(/\d+/g), ([digits]) => {
      const source = sources.get(Number(digits));
      const host = source ? sourceHost(source.url) : "";
      if (!source || !host) return `[${digits}]`;
      linked = true;
      const a = sourceLink(source, "ernie-cite-link", `[${digits}]`);
      a.title = source.title ? `${source.title} · ${host}` : host;
      return a;
    });
    if (linked) span.replaceChildren(h("sup", {}, ...parts));
    else if (span.firstElementChild) span.replaceChildren(marker);
  }
}
