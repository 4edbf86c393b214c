/** Views of one user message and one assistant answer. */
import { ContextSection } from "./context";
import { h, icon } from "./dom";
import type { StringKey, Translate } from "./i18n";
import { IncrementalRenderer, normalizeText } from "./markdown";
import { linkCitations, renderSourceList } from "./sources";
import type { BrowserMessage, IndexedMessage, Metrics, Source, TurnStatus, Usage } from "./types";

/** What a message view needs from the chat. */
export interface ViewContext {
  t: Translate;
  send(msg: BrowserMessage): void;
  /** Run `fn` in the next animation frame (each function at most once per frame). */
  schedule(fn: () => void): void;
  /** Blocks of an answer were frozen (decorate code blocks, announce). */
  committed(view: AssistantMessageView, nodes: Element[]): void;
  copy(text: string, button: HTMLElement): void;
  startEdit(text: string): void;
}

type Label = [Element, StringKey, "text" | "title"];

function actionButton(cls: string, labels: Label[], key: StringKey, glyph: Node, testid?: string): HTMLButtonElement {
  const button = h("button", { type: "button", class: `ernie-action ${cls}`, "data-testid": testid }, glyph);
  labels.push([button, key, "title"]);
  return button;
}

function applyLabels(labels: Label[], t: Translate): void {
  for (const [el, key, where] of labels) {
    if (where === "text") el.textContent = t(key);
    else {
      el.setAttribute("title", t(key));
      el.setAttribute("aria-label", t(key));
    }
  }
}

/** A key for reusing a view across `messages` updates when the message has no `mid`. */
export function messageKey(msg: IndexedMessage): string {
  return `${msg.role}\u0000${msg.content}\u0000${msg.images?.length ?? 0}`;
}

export class UserMessageView {
  readonly el: HTMLElement;
  index = -1;
  content = "";
  private readonly labels: Label[] = [];
  private readonly text: HTMLElement;
  private readonly images: HTMLElement;
  private readonly context: ContextSection;
  private readonly editButton: HTMLButtonElement;
  private readonly deleteButton: HTMLButtonElement;
  private json = "";

  constructor(ctx: ViewContext, pending = false) {
    this.text = h("div", { class: "ernie-user-text" });
    this.images = h("div", { class: "ernie-user-images" });
    this.context = new ContextSection(ctx.t);
    const copy = actionButton("ernie-copy-message", this.labels, "copyMessage", icon("copy"));
    this.editButton = actionButton("ernie-edit", this.labels, "edit", icon("edit"));
    this.deleteButton = actionButton("ernie-delete", this.labels, "deleteTurn", icon("trash"));
    copy.addEventListener("click", () => ctx.copy(this.content, copy));
    this.editButton.addEventListener("click", () => ctx.startEdit(this.content));
    this.deleteButton.addEventListener("click", () => {
      if (this.index >= 0) ctx.send({ type: "delete", index: this.index });
    });
    const actions = h("div", { class: "ernie-message-actions" }, copy, this.editButton, this.deleteButton);
    this.el = h(
      "div",
      { class: `ernie-message ernie-user${pending ? " ernie-pending" : ""}`, "data-testid": "ernie-message", "data-role": "user" },
      h("div", { class: "ernie-bubble" }, this.images, this.text, this.context.el),
      actions,
    );
    if (pending) {
      this.editButton.hidden = true;
      this.deleteButton.hidden = true;
    }
    applyLabels(this.labels, ctx.t);
  }

  /** Show a message (the content is plain text: users type prompts, not HTML) with its @-mentions' context. */
  apply(msg: Pick<IndexedMessage, "index" | "content" | "images" | "context">): void {
    this.index = msg.index;
    const json = JSON.stringify([msg.content, msg.images ?? [], msg.context ?? []]);
    if (json === this.json) return;
    this.json = json;
    this.content = msg.content;
    this.text.textContent = msg.content;
    this.images.replaceChildren(
      ...(msg.images ?? []).map((src) => h("img", { class: "ernie-thumb", src, alt: "", loading: "lazy" })),
    );
    this.images.hidden = !msg.images?.length;
    this.context.set(msg.context ?? []);
  }

  /** Enable the actions that make sense now. */
  setState(isLastUser: boolean, busy: boolean): void {
    if (this.el.classList.contains("ernie-pending")) return;
    this.editButton.hidden = !isLastUser || busy;
    this.deleteButton.disabled = busy;
  }

  relabel(t: Translate): void {
    applyLabels(this.labels, t);
    this.context.relabel(t);
  }

  destroy(): void {
    this.el.remove();
  }
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);
}

/** "12 in · 340 out · 352 tokens · first token 0.42 s · 35.1 tokens/s" (only the parts we know). */
export function footerText(t: Translate, usage?: Usage, metrics?: Metrics): string {
  const parts: string[] = [];
  if (usage && (usage.prompt_tokens !== undefined || usage.completion_tokens !== undefined)) {
    const total = usage.total_tokens ?? (usage.prompt_tokens ?? 0) + (usage.completion_tokens ?? 0);
    parts.push(t("tokens", { prompt: usage.prompt_tokens ?? "?", completion: usage.completion_tokens ?? "?", total }));
  }
  // the kernel stores null for a figure it could not measure (no token arrived)
  if (metrics?.ttft_ms != null) parts.push(t("ttft", { s: seconds(metrics.ttft_ms) }));
  if (metrics?.tokens_per_s != null) parts.push(t("speed", { n: metrics.tokens_per_s.toFixed(1) }));
  if (metrics?.duration_ms !== undefined && metrics.tokens_per_s == null) {
    parts.push(t("duration", { s: seconds(metrics.duration_ms) }));
  }
  return parts.join(" · ");
}

export class AssistantMessageView {
  readonly el: HTMLElement;
  /** The rendered Markdown (class `ernie-answer`). */
  readonly answer: HTMLElement;
  readonly renderer: IncrementalRenderer;
  mid: number | undefined;
  index = -1;
  /** Receiving deltas (not yet ended or reconciled with the transcript). */
  streaming = false;
  private readonly labels: Label[] = [];
  private readonly reasoning: HTMLDetailsElement;
  private readonly reasoningText: Text;
  private reasoningPending = "";
  private reasoningToggledByUser = false;
  /** The open state we last set (to tell the user's toggles from ours). */
  private reasoningOpen = false;
  private readonly notice: HTMLElement;
  /** The web sources under the answer (`ernie-sources`), hidden while there are none. */
  private readonly sourcesEl: HTMLElement;
  private readonly sourcesList: HTMLOListElement;
  private sources = new Map<number, Source>();
  private sourcesJson = "[]";
  /** Present only while there is an error (so `ernie-error` test ids match visible errors only). */
  private error: HTMLElement | null = null;
  private readonly footer: HTMLElement;
  private readonly footerInfo: HTMLElement;
  private withdrawn = false;
  private json = "";
  private isLast = false;

  constructor(private readonly ctx: ViewContext, mid?: number) {
    this.mid = mid;
    this.answer = h("div", { class: "ernie-answer" });
    this.renderer = new IncrementalRenderer(this.answer, {
      schedule: (flush) => ctx.schedule(flush),
      onCommit: (nodes) => ctx.committed(this, nodes),
      // markers rendered after the sources arrived (the answer streams on) are linked as they appear
      onRender: (nodes) => {
        if (!this.sources.size) return;
        for (const node of nodes) if (node.nodeType === 1) linkCitations(node as Element, this.sources);
      },
    });
    const summary = h("summary", {});
    this.labels.push([summary, "thinking", "text"]);
    this.reasoningText = document.createTextNode("");
    this.reasoning = h("details", { class: "ernie-reasoning" }, summary, h("div", { class: "ernie-reasoning-text" }, this.reasoningText));
    this.reasoning.hidden = true;
    // `toggle` also fires (asynchronously) for our own changes: only a state we did not set is the user's.
    this.reasoning.addEventListener("toggle", () => {
      if (this.reasoning.open !== this.reasoningOpen) this.reasoningToggledByUser = true;
    });
    this.notice = h("div", { class: "ernie-answer-notice" });
    this.notice.hidden = true;
    const sourcesTitle = h("div", { class: "ernie-sources-title" });
    this.labels.push([sourcesTitle, "sources", "text"]);
    this.sourcesList = h("ol", { class: "ernie-sources-list" });
    this.sourcesEl = h("div", { class: "ernie-sources", "data-testid": "ernie-sources" }, sourcesTitle, this.sourcesList);
    this.sourcesEl.hidden = true;
    this.footerInfo = h("span", { class: "ernie-footer-info" });
    const copy = actionButton("ernie-copy-message", this.labels, "copyMessage", icon("copy"));
    copy.addEventListener("click", () => ctx.copy(this.renderer.text, copy));
    this.footer = h("div", { class: "ernie-footer" }, this.footerInfo, h("span", { class: "ernie-message-actions" }, copy));
    this.el = h(
      "div",
      { class: "ernie-message ernie-assistant", "data-testid": "ernie-message", "data-role": "assistant" },
      this.reasoning,
      this.answer,
      this.sourcesEl,
      this.notice,
      this.footer,
    );
    if (mid !== undefined) this.el.dataset.mid = String(mid);
    applyLabels(this.labels, ctx.t);
  }

  // --- streaming -------------------------------------------------------------------------------------------

  beginStream(): void {
    this.streaming = true;
    this.el.classList.add("ernie-streaming");
    this.el.setAttribute("aria-busy", "true");
  }

  appendStream(text: string, reasoning: string): void {
    if (!this.streaming || this.withdrawn) return;
    if (reasoning) this.appendReasoning(reasoning);
    if (text) this.renderer.push(text);
  }

  replaceStream(text: string, reasoning: string): void {
    if (!this.streaming || this.withdrawn) return;
    this.setReasoning(reasoning, true);
    this.renderer.replace(text);
  }

  endStream(status: TurnStatus, error?: string): void {
    if (!this.streaming) return; // already reconciled with the transcript, which is the truth
    this.stopStreaming();
    if (!this.withdrawn) this.renderer.finish();
    if (error) this.showError(error, true);
    if (status === "stopped") this.footerInfo.textContent = this.ctx.t("stopped");
  }

  private stopStreaming(): void {
    this.streaming = false;
    this.el.classList.remove("ernie-streaming");
    this.el.removeAttribute("aria-busy");
    this.flushReasoning();
    if (!this.reasoningToggledByUser) this.setReasoningOpen(false);
  }

  // --- web sources -------------------------------------------------------------------------------------------

  /** Show these sources (they replace any shown: the kernel sends every list whole, so nothing is doubled) and link
   *  the answer's markers to them, those already shown and those still to come. */
  setSources(sources: Source[]): void {
    const json = JSON.stringify(sources);
    if (json !== this.sourcesJson) {
      this.sourcesJson = json;
      this.sources = new Map(sources.map((s) => [s.index, s]));
      renderSourceList(this.sourcesList, sources);
      linkCitations(this.answer, this.sources);
    }
    this.sourcesEl.hidden = !sources.length || this.withdrawn;
  }

  // --- reasoning ---------------------------------------------------------------------------------------------

  private readonly flushReasoning = (): void => {
    if (!this.reasoningPending) return;
    this.reasoningText.appendData(this.reasoningPending);
    this.reasoningPending = "";
  };

  private appendReasoning(text: string): void {
    if (this.reasoning.hidden) {
      this.reasoning.hidden = false;
      this.setReasoningOpen(true); // open while streaming
    }
    this.reasoningPending += text;
    this.ctx.schedule(this.flushReasoning);
  }

  private setReasoning(text: string, open: boolean): void {
    this.reasoningPending = "";
    if (this.reasoningText.data !== text) this.reasoningText.data = text;
    const wasHidden = this.reasoning.hidden;
    this.reasoning.hidden = !text;
    if (text && wasHidden) this.setReasoningOpen(open);
  }

  private setReasoningOpen(open: boolean): void {
    this.reasoningOpen = open;
    this.reasoning.open = open;
  }

  // --- final state from the transcript -------------------------------------------------------------------------

  /** Show the transcript's entry. When its content equals the streamed text the incremental DOM is kept. */
  apply(msg: IndexedMessage, isLast: boolean): void {
    this.index = msg.index;
    if (msg.mid !== undefined && this.mid === undefined) {
      this.mid = msg.mid;
      this.el.dataset.mid = String(msg.mid);
    }
    // provenance for cells the companion extension inserts from this answer's code blocks
    if (msg.model) this.el.dataset.model = msg.model;
    if (msg.request_id) this.el.dataset.requestId = msg.request_id;
    const json = JSON.stringify({ ...msg, index: undefined });
    if (json === this.json && isLast === this.isLast) return;
    this.json = json;
    this.isLast = isLast;
    if (this.streaming) this.stopStreaming();

    if (msg.withdrawn) {
      // The kernel replaces a withdrawn answer's content with the notice; shown as plain text.
      this.withdraw(msg.content || msg.notice || "");
      if (msg.notice && msg.notice !== msg.content) this.showNotice(msg.notice);
    } else {
      if (this.withdrawn) {
        this.withdrawn = false;
        this.renderer.reset();
      }
      this.setSources(msg.search_results ?? []);
      if (!this.renderer.isFinished || this.renderer.text !== normalizeText(msg.content)) {
        this.renderer.replace(msg.content);
        this.renderer.finish();
      }
      this.showNotice(msg.notice ?? (msg.truncated ? this.ctx.t("truncated") : ""));
    }
    this.setReasoning(msg.reasoning ?? "", this.reasoningToggledByUser && this.reasoning.open);
    if (msg.error) this.showError(msg.error, isLast && msg.error_kind !== "auth");
    else this.clearError();
    // which model wrote it comes first: an offline demo model must never pass for ERNIE
    const info = [msg.model ?? "", footerText(this.ctx.t, msg.usage, msg.metrics)].filter(Boolean).join(" · ");
    this.footerInfo.textContent = msg.status === "stopped" ? [info, this.ctx.t("stopped")].filter(Boolean).join(" · ") : info;
    this.el.dataset.status = msg.status ?? "ok";
  }

  /** Replace the answer with `notice` (ERNIE's safety flag withdrew it). */
  withdraw(notice: string): void {
    this.withdrawn = true;
    if (this.streaming) this.stopStreaming();
    this.renderer.reset();
    this.answer.replaceChildren(h("p", { class: "ernie-withdrawn" }, notice));
    this.notice.hidden = true;
    this.sourcesEl.hidden = true;
    this.el.classList.add("ernie-is-withdrawn");
  }

  private showNotice(text: string): void {
    this.notice.textContent = text;
    this.notice.hidden = !text;
  }

  private showError(text: string, withRetry: boolean): void {
    const children: Node[] = [h("span", { class: "ernie-error-text" }, text)];
    if (withRetry) {
      const retry = h("button", { type: "button", class: "ernie-btn ernie-error-retry", "data-testid": "ernie-error-retry" }, this.ctx.t("retry"));
      retry.addEventListener("click", () => this.ctx.send({ type: "retry" }));
      children.push(retry);
    }
    if (!this.error) {
      this.error = h("div", { class: "ernie-error", "data-testid": "ernie-error", role: "alert" });
      this.footer.before(this.error);
    }
    this.error.replaceChildren(...children);
  }

  private clearError(): void {
    this.error?.remove();
    this.error = null;
  }

  relabel(t: Translate): void {
    applyLabels(this.labels, t);
    const retry = this.error?.querySelector(".ernie-error-retry");
    if (retry) retry.textContent = t("retry");
  }

  destroy(): void {
    this.renderer.reset();
    this.el.remove();
  }
}

export type MessageView = UserMessageView | AssistantMessageView;
