/** Tiny DOM helpers. */

type Attrs = Record<string, string | number | boolean | undefined | null>;

/** `h("button", {class: "x", type: "button"}, "label")`: create an element with attributes and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Array<Node | string | null | undefined | false>
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = String(value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

/** Copy `text` to the clipboard; falls back to a hidden textarea where the async API is unavailable. */
export async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // Permission denied or not a secure context: try the legacy path.
  }
  const area = h("textarea", { "aria-hidden": "true", style: "position:fixed;left:-9999px;top:0" });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

/** Briefly show `done` on a button after an action (e.g. "Copied"), then restore its label. */
export function flashLabel(button: HTMLElement, done: string, ms = 1500): void {
  const original = button.dataset.label ?? button.textContent ?? "";
  button.dataset.label = original;
  button.textContent = done;
  button.classList.add("ernie-done");
  window.setTimeout(() => {
    button.textContent = button.dataset.label ?? original;
    button.classList.remove("ernie-done");
  }, ms);
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Outline icons drawn on a 16-unit grid: the glyphs they replace (⧉, ✎, 🗑) are missing from stock fonts. */
const ICONS: Record<"copy" | "edit" | "trash", string[]> = {
  copy: ["M5.5 5.5h8v8h-8z", "M3 10.5V3.2c0-.4.3-.7.7-.7h7.3"],
  edit: ["M10.8 2.7l2.5 2.5-7.6 7.6-3.2.7.7-3.2z", "M9.3 4.2l2.5 2.5"],
  trash: ["M2.5 4.5h11", "M6 4.5V2.8h4v1.7", "M4 4.5l.8 9h6.4l.8-9", "M6.8 7v4.5M9.2 7v4.5"],
};

/** An inline SVG icon in the current text colour (built with the DOM API: no markup is parsed). */
export function icon(name: keyof typeof ICONS): SVGSVGElement {
  const svg = document.createElementNS(SVG_NS, "svg");
  for (const [k, v] of Object.entries({ viewBox: "0 0 16 16", width: "14", height: "14", fill: "none",
    stroke: "currentColor", "stroke-width": "1.3", "stroke-linecap": "round", "stroke-linejoin": "round",
    "aria-hidden": "true", class: "ernie-icon" })) {
    svg.setAttribute(k, v);
  }
  for (const d of ICONS[name]) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}
