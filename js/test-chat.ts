/**
 * Test-only (not bundled): the chat rendered on a fake anywidget model, with helpers to type into it and to play the
 * kernel's side of the comm.
 */
import { afterEach, expect, vi } from "vitest";
import type { BrowserMessage } from "./types";
import widget from "./widget";

type Handler = (...args: unknown[]) => void;
const cleanups: Array<() => void> = [];

afterEach(() => {
  for (const c of cleanups.splice(0)) c();
  vi.useRealTimers();
});

/** The chat on a fake anywidget model; `kernel` plays the other side of the comm. */
export function mount(initial: Record<string, unknown> = {}) {
  const state: Record<string, unknown> = { messages: [], status: "idle", lang: "en", send_mode: "enter", model_label: "", placeholder: "", ...initial };
  const handlers = new Map<string, Handler[]>();
  const fire = (name: string, ...args: unknown[]) => (handlers.get(name) ?? []).slice().forEach((f) => f(...args));
  const sent: BrowserMessage[] = [];
  const model = {
    get: (key: string) => state[key],
    on: (name: string, f: Handler) => handlers.set(name, [...(handlers.get(name) ?? []), f]),
    off: (name: string, f: Handler) => handlers.set(name, (handlers.get(name) ?? []).filter((g) => g !== f)),
    send: (msg: BrowserMessage) => sent.push(msg),
  };
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = widget.render({ model: model as never, el });
  cleanups.push(() => {
    cleanup();
    el.remove();
  });
  const input = el.querySelector<HTMLTextAreaElement>('[data-testid="ernie-input"]')!;
  const set = (key: string, value: unknown) => {
    state[key] = value;
    fire(`change:${key}`);
  };
  const kernel = (msg: Record<string, unknown>) => fire("msg:custom", msg, []);
  const of = <T extends BrowserMessage["type"]>(type: T) =>
    sent.filter((m): m is Extract<BrowserMessage, { type: T }> => m.type === type);
  /** Type `text` at the caret, one `insertText` input event per character (as a keyboard does). */
  const type = (text: string, init: InputEventInit = {}) => {
    for (const ch of text) {
      const at = input.selectionEnd ?? input.value.length;
      input.value = input.value.slice(0, at) + ch + input.value.slice(at);
      input.setSelectionRange(at + 1, at + 1);
      input.dispatchEvent(new InputEvent("input", { inputType: "insertText", data: ch, bubbles: true, ...init }));
    }
  };
  const key = (k: string, init: KeyboardEventInit & { keyCode?: number } = {}) => {
    const event = new KeyboardEvent("keydown", { key: k, bubbles: true, cancelable: true, ...init });
    if (init.keyCode !== undefined) Object.defineProperty(event, "keyCode", { value: init.keyCode });
    input.dispatchEvent(event);
    return event;
  };
  const list = () => el.querySelector<HTMLElement>('[data-testid="ernie-suggest"]')!;
  const options = () => Array.from(el.querySelectorAll<HTMLElement>('[role="option"]'));
  const chips = () => Array.from(el.querySelectorAll<HTMLElement>('[data-testid="ernie-chip"]'));
  return { el, input, sent, of, set, kernel, type, key, list, options, chips };
}

export type Chat = ReturnType<typeof mount>;

export const VARS = [
  { name: "sales", kind: "DataFrame", size: "12,000 × 7" },
  { name: "sales_2023", kind: "DataFrame", size: "9,100 × 7" },
  { name: "scores", kind: "ndarray", size: "100" },
  { name: "model", kind: "LinearRegression", size: "" },
];
export const SALES = { name: "sales", label: "DataFrame 12,000 × 7", tokens: 850, text: "DataFrame sales: 12,000 rows × 7 columns\nregion  units  price" };

/** Open the list with `@` and answer it with `items`. */
export function openList(chat: Chat, items = VARS) {
  chat.type("@");
  const rid = chat.of("variables").at(-1)!.rid;
  chat.kernel({ type: "variables", rid, status: "ok", items });
  return rid;
}

/** Pick `name` and answer the mention request with `item` as chip `cid`. */
export function addChip(chat: Chat, item: Record<string, unknown>, cid: number) {
  chat.input.focus();
  chat.type(`${chat.input.value && !chat.input.value.endsWith(" ") ? " " : ""}@`);
  const rid = chat.of("variables").at(-1)!.rid;
  chat.kernel({ type: "variables", rid, status: "ok", items: [{ name: item.name, kind: "", size: "" }] });
  chat.key("Enter");
  const request = chat.of("mention").at(-1)!;
  expect(request.name).toBe(item.name);
  chat.kernel({ type: "mention", rid: request.rid, status: "ok", cid, item });
}

export const texts = (els: Element[]) => els.map((e) => Array.from(e.children, (c) => c.textContent));
