/**
 * The @ suggestion list of the chat input: typing `@` asks the kernel for the user's variables
 * (`{type: "variables", rid, prefix}`, debounced while the name is typed), lists them as `name  kind  size`,
 * filters them as the name grows; ↑/↓ move, Enter/Tab or a click choose, Esc closes.
 *
 * IME-safe (input.ts): only an `@` typed as plain text opens the list — not one an input method composed or
 * committed (a full-width ＠ never counts), and a key the IME owns (composing, keyCode 229, the commit's own
 * Enter) never moves, picks or closes it. Answers are untrusted and may arrive late: only the newest `rid`
 * counts, and names, kinds and sizes are shown as text.
 */
import { h } from "./dom";
import type { Translate } from "./i18n";
import type { ImeTracker } from "./input";
import { type BrowserMessage, parseVariables, type VariableEntry } from "./types";

export const DEBOUNCE_MS = 120;
/** Without an answer by then, the kernel is running a cell: say so rather than wait. */
export const BUSY_AFTER_MS = 2500;
const MAX_SHOWN = 100;

/** The `@name` being typed at `caret`: where its `@` is and the name so far, or null. As the kernel reads mentions
 *  (context/mentions.py): an `@` after a letter, digit, `_`, `.`, `)`, `]`, `}`, `$`, `\` or `/` starts nothing (an
 *  e-mail address, a matrix product); one after CJK text, a space or other punctuation does. */
export function mentionQuery(text: string, caret: number): { start: number; query: string } | null {
  const m = /(?:^|[^A-Za-z0-9_.@)\]}$\\/])@([\p{L}\p{N}_\[\]]*)$/u.exec(text.slice(0, caret));
  return m ? { start: caret - m[1].length - 1, query: m[1] } : null;
}

export interface MentionListHost {
  t: Translate;
  send(msg: BrowserMessage): void;
  /** A variable was chosen (its `@name` is already in the text). */
  pick(name: string): void;
}

let lists = 0;

export class MentionList {
  readonly el: HTMLElement;
  private readonly listbox: HTMLElement;
  private readonly status: HTMLElement;
  private readonly id = `ernie-mentions-${++lists}`;
  private readonly cleanups: Array<() => void> = [];
  /** Where the `@` is while the list is open, else -1. */
  private start = -1;
  private query = "";
  private rid = 0;
  private answered = false;
  private busy = false;
  private items: VariableEntry[] = [];
  private shown: VariableEntry[] = [];
  private active = 0;
  private debounce: number | undefined;
  private busyTimer: number | undefined;

  constructor(
    private readonly input: HTMLTextAreaElement,
    private readonly ime: ImeTracker,
    private readonly host: MentionListHost,
  ) {
    this.listbox = h("ul", { class: "ernie-suggest-list", role: "listbox", id: this.id });
    this.status = h("div", { class: "ernie-suggest-status", role: "status" });
    this.el = h("div", { class: "ernie-suggest", "data-testid": "ernie-suggest" }, this.listbox, this.status);
    this.el.hidden = true;
    input.setAttribute("aria-autocomplete", "list");
    const on = (target: EventTarget, type: string, f: (e: any) => void): void => {
      target.addEventListener(type, f);
      this.cleanups.push(() => target.removeEventListener(type, f));
    };
    on(input, "input", (e: InputEvent) => this.onInput(e));
    on(input, "compositionend", () => this.isOpen && this.update());
    on(input, "click", () => this.isOpen && this.update());
    on(input, "keyup", (e: KeyboardEvent) => /^(Arrow(Left|Right)|Home|End)$/.test(e.key) && this.isOpen && this.update());
    on(input, "blur", () => this.close());
    // keep the focus (and the caret) in the input while an option or the scroll bar is clicked
    on(this.el, "mousedown", (e: MouseEvent) => e.preventDefault());
    on(this.listbox, "click", (e: MouseEvent) => {
      const option = e.target instanceof Element ? e.target.closest<HTMLElement>("[role=option]") : null;
      if (option) this.choose(Number(option.dataset.i));
    });
  }

  get isOpen(): boolean {
    return this.start >= 0;
  }

  private onInput(e: InputEvent): void {
    if (this.isOpen) {
      if (!this.ime.owns(e)) this.update();
      return;
    }
    // only an @ typed as text: not pasted, not composed or committed by an IME
    if (e.inputType !== "insertText" || !e.data?.endsWith("@") || this.ime.owns(e)) return;
    const caret = this.input.selectionEnd ?? this.input.value.length;
    const q = mentionQuery(this.input.value, caret);
    if (!q || q.query || this.input.selectionStart !== caret) return;
    this.start = q.start;
    this.query = "";
    this.items = [];
    this.answered = this.busy = false;
    this.active = 0;
    this.input.setAttribute("aria-controls", this.id);
    this.el.hidden = false;
    this.request();
    this.render();
  }

  /** Follow the text and caret: close when they left the `@name`, filter and ask again when the name changed. */
  private update(): void {
    const q = mentionQuery(this.input.value, this.input.selectionEnd ?? 0);
    if (!q || q.start !== this.start) return this.close();
    if (q.query === this.query) return;
    this.query = q.query;
    window.clearTimeout(this.debounce);
    this.debounce = window.setTimeout(() => this.request(), DEBOUNCE_MS);
    this.render();
  }

  private request(): void {
    this.host.send({ type: "variables", rid: ++this.rid, prefix: this.query });
    window.clearTimeout(this.busyTimer);
    this.busyTimer = window.setTimeout(() => {
      this.busy = true;
      this.render();
    }, BUSY_AFTER_MS);
  }

  /** A `variables` answer: only the newest request's counts. */
  onAnswer(msg: Record<string, unknown>): void {
    if (!this.isOpen || msg.rid !== this.rid) return;
    window.clearTimeout(this.busyTimer);
    this.busy = msg.status === "busy";
    if (!this.busy) {
      this.answered = true;
      this.items = parseVariables(msg.items);
    }
    this.render();
  }

  /** Take ↑/↓/Enter/Tab/Esc while open; returns true when the key was used. */
  keydown(e: KeyboardEvent): boolean {
    if (!this.isOpen || this.ime.owns(e)) return false;
    const plain = !(e.shiftKey || e.ctrlKey || e.metaKey || e.altKey);
    const n = this.shown.length;
    if (e.key === "Escape") this.close();
    else if ((e.key === "ArrowDown" || e.key === "ArrowUp") && n && plain) {
      this.active = (this.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      this.render();
    } else if ((e.key === "Enter" || e.key === "Tab") && plain && n) this.choose(this.active);
    else return false;
    e.preventDefault();
    return true;
  }

  private choose(i: number): void {
    const item = this.shown[i];
    if (!item || !this.isOpen) return;
    const { value } = this.input;
    const end = this.start + 1 + this.query.length;
    const name = `@${item.name} `;
    this.input.value = value.slice(0, this.start) + name + value.slice(end).replace(/^ /, "");
    const caret = this.start + name.length;
    this.input.setSelectionRange(caret, caret);
    this.close();
    this.host.pick(item.name);
  }

  close(): void {
    if (!this.isOpen) return;
    this.start = -1;
    window.clearTimeout(this.debounce);
    window.clearTimeout(this.busyTimer);
    this.el.hidden = true;
    this.listbox.replaceChildren();
    this.input.removeAttribute("aria-controls");
    this.input.removeAttribute("aria-activedescendant");
  }

  private render(): void {
    if (!this.isOpen) return;
    const t = this.host.t;
    const prefix = this.query.toLowerCase();
    const previous = this.shown[this.active]?.name;
    this.shown = this.busy ? [] : this.items.filter((v) => v.name.toLowerCase().startsWith(prefix)).slice(0, MAX_SHOWN);
    const kept = this.shown.findIndex((v) => v.name === previous);
    this.active = kept >= 0 ? kept : Math.min(this.active, Math.max(0, this.shown.length - 1));
    this.listbox.setAttribute("aria-label", t("mentionList"));
    this.listbox.replaceChildren(
      ...this.shown.map((v, i) =>
        h("li", { role: "option", id: `${this.id}-${i}`, "data-i": i, "aria-selected": String(i === this.active), class: "ernie-suggest-item" },
          h("span", { class: "ernie-suggest-name" }, v.name),
          h("span", { class: "ernie-suggest-kind" }, v.kind),
          h("span", { class: "ernie-suggest-size" }, v.size)),
      ),
    );
    this.listbox.hidden = !this.shown.length;
    this.status.textContent = this.busy ? t("kernelBusy") : this.shown.length ? "" : t(this.answered ? "mentionNone" : "mentionLoading");
    this.status.hidden = !this.status.textContent;
    const active = this.listbox.children[this.active] as HTMLElement | undefined;
    if (active) {
      this.input.setAttribute("aria-activedescendant", active.id);
      active.scrollIntoView?.({ block: "nearest" });
    } else this.input.removeAttribute("aria-activedescendant");
  }

  destroy(): void {
    this.close();
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }
}
