/**
 * Buttons on finished code blocks: Copy always; with the companion JupyterLab extension (an ancestor with
 * `data-ernie-extension`) also insert-below / replace-cell / run-in-new-cell. The widget does nothing on those
 * three clicks: the extension listens for trusted clicks on `[data-ernie-action]` and reads the code from
 * `closest(".ernie-codeblock").querySelector("pre code").textContent`.
 *
 * Numbering (`data-ernie-block`, 1-based in document order within one answer) matches the kernel's numbering
 * of the last answer's *fenced* code blocks (`render.extract_code_blocks`), so without the extension the Copy
 * tooltip of the last answer's blocks can name `%ernie --paste N`. Indented code blocks get no number.
 */
import { h } from "./dom";
import type { StringKey, Translate } from "./i18n";

export const EXTENSION_ACTIONS: ReadonlyArray<{ action: string; testid: string; label: StringKey }> = [
  { action: "insert-below", testid: "ernie-insert-below", label: "insertBelow" },
  { action: "replace-cell", testid: "ernie-replace-cell", label: "replaceCell" },
  { action: "run-in-new-cell", testid: "ernie-run-cell", label: "runCell" },
];

/** Wrap every `pre.ernie-code` in (or among) `nodes` in a `div.ernie-codeblock`; returns the new wrappers. */
export function wrapCodeBlocks(nodes: Element[]): HTMLElement[] {
  const wrappers: HTMLElement[] = [];
  for (const node of nodes) {
    const pres = node.matches("pre.ernie-code") ? [node] : Array.from(node.querySelectorAll("pre.ernie-code"));
    for (const pre of pres) {
      if (pre.parentElement?.classList.contains("ernie-codeblock")) continue;
      const wrapper = h("div", { class: "ernie-codeblock" });
      pre.replaceWith(wrapper);
      wrapper.append(pre);
      wrappers.push(wrapper);
    }
  }
  return wrappers;
}

/** The kernel's numbers (1-based) for the wrapped blocks of one answer: fenced blocks only, else null. */
export function blockNumbers(wrappers: Element[]): Array<number | null> {
  let n = 0;
  return wrappers.map((w) => (w.querySelector(":scope > pre.ernie-fence") ? ++n : null));
}

/** The code text of a wrapped block. */
export function codeOf(wrapper: Element): string {
  return wrapper.querySelector("pre code")?.textContent ?? "";
}

/**
 * Make the toolbar of `wrapper` match the current state (idempotent).
 * @param n 1-based number of a fenced block within its answer (null for an indented code block)
 * @param pasteable whether the block belongs to the last answer in the transcript (what `%ernie --paste N` reads)
 * @param withExtension whether the companion extension is present
 */
export function syncCodeTools(wrapper: HTMLElement, n: number | null, pasteable: boolean, withExtension: boolean, t: Translate): void {
  if (n === null) delete wrapper.dataset.ernieBlock;
  else wrapper.dataset.ernieBlock = String(n);
  let tools = wrapper.querySelector<HTMLElement>(":scope > .ernie-code-tools");
  if (!tools) {
    tools = h("div", { class: "ernie-code-tools" });
    wrapper.prepend(tools);
  }
  let copy = tools.querySelector<HTMLButtonElement>(".ernie-code-copy");
  if (!copy) {
    copy = h("button", { type: "button", class: "ernie-code-btn ernie-code-copy", "data-testid": "ernie-copy" });
    tools.append(copy);
  }
  copy.textContent = t("copy");
  copy.dataset.label = t("copy");
  const title = !withExtension && pasteable && n !== null ? t("copyCodePaste", { n }) : t("copyCode");
  copy.title = title;
  copy.setAttribute("aria-label", title);

  for (const { action, testid, label } of EXTENSION_ACTIONS) {
    let button = tools.querySelector<HTMLButtonElement>(`[data-ernie-action="${action}"]`);
    if (!withExtension) {
      button?.remove();
      continue;
    }
    if (!button) {
      button = h("button", { type: "button", class: "ernie-code-btn", "data-ernie-action": action, "data-testid": testid });
      tools.append(button);
    }
    button.textContent = t(label);
    button.title = t(label);
  }
}
