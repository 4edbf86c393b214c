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
