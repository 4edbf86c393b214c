/**
 * The click contract with the ErnieChat widget (js/code-tools.ts), DOM only so it can be unit-tested.
 *
 * The widget draws, inside `.ernie-chat`, code blocks `div.ernie-codeblock > pre.ernie-code > code` with buttons
 * `[data-ernie-action="insert-below|replace-cell|run-in-new-cell"]` when an ancestor has `data-ernie-extension`.
 * The widget itself ignores those clicks; this module turns a *trusted* click on one of them into a request.
 * Synthetic events (page script calling `dispatchEvent` or `el.click()`) have `isTrusted === false` and are
 * ignored, so script in an output cannot make the extension insert or run code.
 */

export type ErnieAction = "insert-below" | "replace-cell" | "run-in-new-cell";

export const ACTIONS: readonly ErnieAction[] = ["insert-below", "replace-cell", "run-in-new-cell"];

/** Provenance recorded in `metadata.ernie_widget` of every cell the extension writes. */
export interface Provenance {
  model: string | null;
  request_id: string | null;
  time: string;
  /** what wrote the cell: `chat:<action>` or `command:<name>` */
  source: string;
}

/** A code-block button click that the extension acts on. */
export interface ActionRequest {
  action: ErnieAction;
  code: string;
  /** the `.ernie-chat` element holding the block (used to find the cell whose output holds it) */
  chat: Element;
  provenance: Provenance;
}

/** The action named by a `data-ernie-action` value, or null for anything else. */
export function parseAction(value: string | null | undefined): ErnieAction | null {
  return ACTIONS.find((a) => a === value) ?? null;
}

/**
 * The code of a block, read exactly where the widget's Copy button reads it
 * (`closest(".ernie-codeblock").querySelector("pre code").textContent`). Trailing newlines are dropped, as the
 * kernel's `%%ernie -f code` does (`code.rstrip("\n")`): a fence's content always ends with one.
 */
export function codeOfBlock(block: Element): string | null {
  const code = block.querySelector("pre code");
  if (!code) return null;
  return (code.textContent ?? "").replace(/\n+$/, "");
}

function attr(el: Element, name: string): string | null {
  const value = el.closest(`[${name}]`)?.getAttribute(name)?.trim();
  return value ? value : null;
}

/**
 * What is known about where a block came from: `data-model` / `data-request-id` on the block or an ancestor
 * when the widget provides them, else the model label the chat shows (`.ernie-model`).
 */
export function provenanceOf(block: Element, chat: Element, source: string, now: Date = new Date()): Provenance {
  const label = chat.querySelector(".ernie-model")?.textContent?.trim();
  return {
    model: attr(block, "data-model") ?? (label ? label : null),
    request_id: attr(block, "data-request-id"),
    time: now.toISOString(),
    source,
  };
}

/**
 * Read a click event: a request when it is a trusted click on an action button inside a code block of an
 * ErnieChat that lies within `root`; null otherwise (including every synthetic event).
 */
export function actionFromEvent(event: Event, root: Element, now: Date = new Date()): ActionRequest | null {
  if (event.type !== "click" || !event.isTrusted) return null;
  const target = event.target;
  // Element check without `instanceof` so it also holds for nodes of another realm (iframes, test DOMs).
  if (!target || typeof (target as Element).closest !== "function") return null;
  const button = (target as Element).closest("[data-ernie-action]");
  if (!button || !root.contains(button)) return null;
  const action = parseAction(button.getAttribute("data-ernie-action"));
  if (!action) return null;
  const block = button.closest(".ernie-codeblock");
  const chat = block?.closest(".ernie-chat");
  if (!block || !chat || !root.contains(chat)) return null;
  const code = codeOfBlock(block);
  if (code === null) return null;
  return { action, code, chat, provenance: provenanceOf(block, chat, `chat:${action}`, now) };
}

/**
 * Whether ``event`` is a trusted click on a chat's Stop button while tool code runs in the kernel (the widget marks
 * it `data-ernie-interrupt` only then): the extension interrupts the notebook's kernel, as JupyterLab's own
 * interrupt button would. Synthetic clicks never qualify.
 */
export function interruptFromEvent(event: Event, root: Element): boolean {
  if (event.type !== "click" || !event.isTrusted) return false;
  const target = event.target;
  if (!target || typeof (target as Element).closest !== "function") return false;
  const button = (target as Element).closest("[data-ernie-interrupt]");
  return !!button && root.contains(button) && !!button.closest(".ernie-chat");
}
