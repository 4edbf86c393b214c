/**
 * The @-mention chips above the chat input.
 *
 * Choosing a variable sends `{type: "mention", rid, name}`; the kernel answers with the chip's `cid` and a
 * snapshot (ContextItem: label, token estimate, the exact text that will be sent). A chip shows
 * "@sales DataFrame 12,000 × 7 · 850 tok"; clicking it shows that text (as text: it is the user's data) in a
 * panel below, × removes it (`{type: "unmention", cid}`). The chips' cids go with the next ask and the chips clear.
 * Their total is shown against the `context_budget` trait, with a warning (not a block) when over: the kernel
 * shortens the largest items first.
 *
 * The kernel's `last_error` message offers a "Fix last error" chip: a real click adds an `error` mention.
 */
import { chipText, grouped } from "./context";
import { h } from "./dom";
import type { Translate } from "./i18n";
import { type BrowserMessage, type ContextItem, parseContextItem } from "./types";

/** A mention not answered by then is dropped (the kernel is running a cell); a late answer is unmentioned. */
export const MENTION_TIMEOUT_MS = 5000;
export const DEFAULT_CONTEXT_BUDGET = 4000;

export interface ChipsHost {
  t: Translate;
  send(msg: BrowserMessage): void;
  /** Show a short message (a mention that failed). */
  notice(text: string): void;
  /** The `context_budget` trait as the model has it (anything: it is checked here). */
  budget(): unknown;
  /** Whether a mention is pending changed (sending waits for it). */
  changed(): void;
  /** The "Fix last error" chip was clicked: put the fix request in the input. */
  fixError(): void;
}

interface Chip {
  cid: number;
  item: ContextItem;
}

interface Pending {
  name: string;
  timer: number;
}

let bars = 0;

export class MentionChips {
  readonly el: HTMLElement;
  private readonly row: HTMLElement;
  private readonly fix: HTMLButtonElement;
  private readonly budgetEl: HTMLElement;
  private readonly preview: HTMLElement;
  private readonly previewId = `ernie-chip-preview-${++bars}`;
  private chips: Chip[] = [];
  private readonly pending = new Map<number, Pending>();
  /** Mentions that timed out: their late answers are unmentioned. */
  private readonly dropped = new Set<number>();
  private rid = 0;
  private previewed: number | null = null;

  constructor(private readonly host: ChipsHost) {
    this.fix = h("button", { type: "button", class: "ernie-chip ernie-fix-error", "data-testid": "ernie-fix-error" });
    this.fix.hidden = true;
    // a script in the page (e.g. an output's) must not attach the user's traceback to a message
    this.fix.addEventListener("click", (e) => {
      if (!e.isTrusted) return;
      this.fix.hidden = true;
      this.request("error");
      host.fixError();
    });
    this.row = h("div", { class: "ernie-chips" });
    this.budgetEl = h("div", { class: "ernie-chips-budget", "data-testid": "ernie-chips-budget", "aria-live": "polite" });
    this.preview = h("pre", { class: "ernie-context-text ernie-chip-preview", id: this.previewId, tabindex: "0", "data-testid": "ernie-chip-preview" });
    this.el = h("div", { class: "ernie-mentions" }, this.row, this.budgetEl, this.preview);
    this.render();
  }

  /** A mention is on its way to the kernel. */
  get waiting(): boolean {
    return this.pending.size > 0;
  }

  /** Ask the kernel for a chip of `name` (once per name). */
  request(name: string): void {
    if (this.chips.some((c) => c.item.name === name) || [...this.pending.values()].some((p) => p.name === name)) return;
    const rid = ++this.rid;
    const timer = window.setTimeout(() => {
      this.pending.delete(rid);
      this.dropped.add(rid);
      this.host.notice(this.host.t("kernelBusy"));
      this.render();
      this.host.changed();
    }, MENTION_TIMEOUT_MS);
    this.pending.set(rid, { name, timer });
    this.host.send({ type: "mention", rid, name });
    this.render();
    this.host.changed();
  }

  /** A `mention` answer. */
  onAnswer(msg: Record<string, unknown>): void {
    const rid = msg.rid as number;
    const item = msg.status === "ok" ? parseContextItem(msg.item) : undefined;
    const cid = typeof msg.cid === "number" ? msg.cid : undefined;
    if (this.dropped.delete(rid)) {
      if (cid !== undefined) this.host.send({ type: "unmention", cid });
      return;
    }
    const pending = this.pending.get(rid);
    if (!pending) return;
    window.clearTimeout(pending.timer);
    this.pending.delete(rid);
    if (item && cid !== undefined) this.chips.push({ cid, item });
    else {
      const error = typeof msg.error === "string" && msg.error ? msg.error : "";
      this.host.notice(msg.status === "busy" ? this.host.t("kernelBusy") : `@${pending.name}: ${error || this.host.t("error")}`);
    }
    this.render();
    this.host.changed();
  }

  /** The kernel's `last_error`: offer the fix chip for a summary, hide it for null. */
  setLastError(summary: unknown): void {
    this.fix.hidden = typeof summary !== "string" || !summary;
    this.fix.title = typeof summary === "string" ? summary : "";
    this.render();
  }

  /** The chips for the ask being sent (their cids and snapshots); the bar empties. */
  take(): Chip[] {
    const taken = this.chips;
    this.chips = [];
    this.previewed = null;
    this.render();
    return taken;
  }

  private remove(cid: number): void {
    this.chips = this.chips.filter((c) => c.cid !== cid);
    if (this.previewed === cid) this.previewed = null;
    this.host.send({ type: "unmention", cid });
    this.render();
  }

  private toggle(cid: number): void {
    this.previewed = this.previewed === cid ? null : cid;
    this.render();
  }

  budget(): number {
    const b = this.host.budget();
    return typeof b === "number" && Number.isFinite(b) && b > 0 ? b : DEFAULT_CONTEXT_BUDGET;
  }

  render(): void {
    const t = this.host.t;
    this.fix.textContent = t("fixLastError");
    const chips = this.chips.map(({ cid, item }) => {
      const label = h("button", { type: "button", class: "ernie-chip-label", "aria-expanded": String(this.previewed === cid), "aria-controls": this.previewId }, chipText(item, t));
      label.addEventListener("click", () => this.toggle(cid));
      const name = t("removeMention", { name: `@${item.name}` });
      const remove = h("button", { type: "button", class: "ernie-chip-remove", title: name, "aria-label": name }, "×");
      remove.addEventListener("click", () => this.remove(cid));
      return h("span", { class: "ernie-chip", "data-testid": "ernie-chip", "data-cid": cid }, label, remove);
    });
    const waiting = [...this.pending.values()].map((p) => h("span", { class: "ernie-chip ernie-chip-pending", "aria-busy": "true" }, `@${p.name} …`));
    this.row.replaceChildren(this.fix, ...chips, ...waiting);
    const used = this.chips.reduce((sum, c) => sum + c.item.tokens, 0);
    const budget = this.budget();
    const over = used > budget;
    this.budgetEl.hidden = !this.chips.length;
    this.budgetEl.classList.toggle("ernie-over", over);
    this.budgetEl.textContent = t("contextBudget", { used: grouped(used), budget: grouped(budget) }) + (over ? ` · ${t("overBudget")}` : "");
    const shown = this.chips.find((c) => c.cid === this.previewed);
    this.preview.hidden = !shown;
    this.preview.textContent = shown?.item.text ?? "";
    this.el.hidden = this.fix.hidden && !this.chips.length && !this.pending.size;
  }

  destroy(): void {
    for (const p of this.pending.values()) window.clearTimeout(p.timer);
    this.pending.clear();
  }
}
