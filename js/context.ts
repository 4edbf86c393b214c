/**
 * A user message's @-mentions in the transcript: their chips under the text, and a collapsible "Context" section
 * with the exact text each one sent.
 *
 * Everything here comes from the user's data (a DataFrame's cells, a traceback) through the kernel or a saved
 * notebook: it is set as text with the DOM API, never parsed as HTML.
 */
import { h } from "./dom";
import type { Translate } from "./i18n";
import type { ContextItem } from "./types";

/** 12000 → "12,000" (the kernel's sizes use the same grouping). */
export const grouped = (n: number): string => n.toLocaleString("en-US");

/** "@sales DataFrame 12,000 × 7 · 850 tok": what a chip says. */
export function chipText(item: ContextItem, t: Translate): string {
  return `${[`@${item.name}`, item.label].filter(Boolean).join(" ")} · ${t("tok", { n: grouped(item.tokens) })}`;
}

/** The context section of one user message; `set` replaces what it shows (hidden without items). */
export class ContextSection {
  readonly el: HTMLElement;
  private items: ContextItem[] = [];
  private readonly chips: HTMLElement;
  private readonly details: HTMLDetailsElement;
  private readonly summary: HTMLElement;
  private readonly body: HTMLElement;

  constructor(private t: Translate) {
    this.chips = h("div", { class: "ernie-chips" });
    this.summary = h("summary", {});
    this.body = h("div", {});
    this.details = h("details", { class: "ernie-context-details" }, this.summary, this.body);
    this.el = h("div", { class: "ernie-context", "data-testid": "ernie-context" }, this.chips, this.details);
    this.el.hidden = true;
  }

  set(items: ContextItem[]): void {
    this.items = items;
    this.el.hidden = !items.length;
    this.summary.textContent = this.t("context");
    this.chips.replaceChildren(...items.map((item) => h("span", { class: "ernie-chip" }, this.label(item))));
    this.body.replaceChildren(
      ...items.map((item) =>
        h("div", { class: "ernie-context-item" },
          h("div", { class: "ernie-context-name" }, this.label(item)),
          // tabindex: a keyboard user can scroll a long snapshot
          h("pre", { class: "ernie-context-text", tabindex: "0" }, item.text)),
      ),
    );
  }

  private label(item: ContextItem): string {
    return item.shortened ? `${chipText(item, this.t)} · ${this.t("shortened")}` : chipText(item, this.t);
  }

  relabel(t: Translate): void {
    this.t = t;
    this.set(this.items);
  }
}
