/**
 * The chat view: transcript, streaming answer, composer.
 *
 * State lives in the kernel. The `messages` trait is the transcript (written once per turn); the answer in
 * flight arrives as custom-message deltas (stream.ts). The view renders the transcript, appends a streaming
 * bubble for the answer in flight, and reconciles the two when the final entry for that `mid` arrives.
 */
import { MentionChips } from "./chips";
import { blockNumbers, codeOf, syncCodeTools, wrapCodeBlocks } from "./code-tools";
import { copyText, flashLabel, h } from "./dom";
import { FrameTiming } from "./frame-timing";
import { type Lang, resolveLang, type StringKey, type Translate, translator } from "./i18n";
import { bindSendKeys, imageFiles, isolateKeys, MAX_IMAGE_BYTES, MAX_IMAGES, readAsDataUrl, type SendMode, trackIme } from "./input";
import { MentionList } from "./mention-list";
import { AssistantMessageView, type MessageView, messageKey, UserMessageView, type ViewContext } from "./messages";
import { LOADABLE_IMAGE } from "./sanitize";
import { DeltaAssembler, type StreamSink } from "./stream";
import { AnswerSteps } from "./tool-steps";
import { type BrowserMessage, type ChatModel, type ContextItem, type IndexedMessage, isSafeImageDataUrl, parseMessages, parseSources, type TurnStatus } from "./types";

/** How long Send stays disabled waiting for the kernel's `start` after an ask. */
const AWAIT_START_MS = 15_000;
const NOTICE_MS = 8_000;
/** Autoscroll follows the answer while the user is within this many pixels of the bottom. */
const STICK_PX = 40;

type Label = [Element, StringKey, "text" | "title"];

export class ChatView implements StreamSink {
  readonly root: HTMLElement;
  private readonly cleanups: Array<() => void> = [];
  private readonly labels: Label[] = [];
  private lang: Lang = "en";
  private t: Translate = translator("en");

  private readonly log: HTMLElement;
  private readonly list: HTMLElement;
  private readonly live: HTMLElement;
  private readonly noticeEl: HTMLElement;
  private readonly modelLabel: HTMLElement;
  private readonly bannerEl: HTMLElement;
  private connecting: { host: string; since: number } | null = null;
  private connectingTimer: number | undefined;
  private readonly statusText: HTMLElement;
  private readonly textarea: HTMLTextAreaElement;
  private readonly attachmentsEl: HTMLElement;
  private readonly editingBar: HTMLElement;
  private readonly hint: HTMLElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly stopButton: HTMLButtonElement;
  private readonly retryButton: HTMLButtonElement;
  private readonly continueButton: HTMLButtonElement;
  private readonly clearButton: HTMLButtonElement;
  private readonly chips: MentionChips;
  private readonly mentionList: MentionList;

  private messages: IndexedMessage[] = [];
  private finalMids = new Set<number>();
  private views: MessageView[] = [];
  private readonly byMid = new Map<number, AssistantMessageView>();
  private inflight: AssistantMessageView | null = null;
  private pendingUser: UserMessageView | null = null;
  private readonly assembler: DeltaAssembler;
  private attachments: string[] = [];
  private editing = false;
  private awaitingStart = false;
  private awaitTimer: number | undefined;
  private noticeTimer: number | undefined;
  private stick = true;
  private withExtension = false;
  private frame: number | undefined;
  private readonly frameQueue = new Set<() => void>();
  private readonly frameTiming = new FrameTiming((msg) => this.send(msg));
  private readonly ctx: ViewContext;
  private readonly steps: AnswerSteps;
  private readonly runningTools = new Set<string>();
  private readonly autoBadge: HTMLElement;

  constructor(
    private readonly model: ChatModel,
    private readonly host: HTMLElement,
  ) {
    this.assembler = new DeltaAssembler(this, (mid) => this.finalMids.has(mid));
    this.ctx = {
      t: (key, vars) => this.t(key, vars),
      send: (msg) => this.send(msg),
      schedule: (fn) => this.schedule(fn),
      committed: (view, nodes) => this.committed(view, nodes),
      copy: (text, button) => this.copy(text, button),
      startEdit: (text) => this.startEdit(text),
    };

    this.steps = new AnswerSteps(this.ctx);

    // Header: the status line.
    this.modelLabel = h("span", { class: "ernie-model" });
    this.statusText = h("span", { class: "ernie-status-text" });
    this.autoBadge = h("span", { class: "ernie-auto-badge", "data-testid": "ernie-auto-approve", role: "status" });
    this.labels.push([this.autoBadge, "autoApprove", "text"]);
    const header = h("div", { class: "ernie-header" }, this.modelLabel, this.autoBadge, this.statusText);
    this.bannerEl = h("div", { class: "ernie-banner", role: "note", "data-testid": "ernie-banner" });
    this.bannerEl.hidden = true;

    // Transcript.
    this.list = h("div", { class: "ernie-messages" });
    this.log = h("div", { class: "ernie-log", role: "log", "aria-live": "off", tabindex: "0" }, this.list);
    this.live = h("div", { class: "ernie-sr-only ernie-live", "aria-live": "polite", "aria-atomic": "false" });
    this.noticeEl = h("div", { class: "ernie-notice", role: "status" });
    this.noticeEl.hidden = true;

    // Composer.
    this.editingBar = h("div", { class: "ernie-editing" });
    this.editingBar.hidden = true;
    this.attachmentsEl = h("div", { class: "ernie-attachments" });
    this.attachmentsEl.hidden = true;
    this.textarea = h("textarea", { class: "ernie-input", "data-testid": "ernie-input", rows: 2 });
    const ime = trackIme(this.textarea);
    this.cleanups.push(() => ime.unbind());
    this.chips = new MentionChips({
      t: (key, vars) => this.t(key, vars),
      send: (msg) => this.send(msg),
      notice: (text) => this.showNotice(text),
      budget: () => this.model.get("context_budget"),
      changed: () => this.updateControls(),
      fixError: () => {
        if (!this.textarea.value.trim()) this.textarea.value = this.t("fixRequest");
        this.textarea.focus();
      },
    });
    this.mentionList = new MentionList(this.textarea, ime, {
      t: (key, vars) => this.t(key, vars),
      send: (msg) => this.send(msg),
      pick: (name) => this.chips.request(name),
    });
    this.hint = h("span", { class: "ernie-hint" });
    this.sendButton = this.button("ernie-send", "send", "ernie-btn ernie-btn-primary");
    this.stopButton = this.button("ernie-stop", "stop", "ernie-btn ernie-btn-stop");
    this.retryButton = this.button("ernie-retry", "retry");
    this.continueButton = this.button("ernie-continue", "continue");
    this.clearButton = this.button("ernie-clear", "clear");
    const toolbar = h(
      "div",
      { class: "ernie-toolbar" },
      this.hint,
      h("span", { class: "ernie-spacer" }),
      this.clearButton,
      this.retryButton,
      this.continueButton,
      this.stopButton,
      this.sendButton,
    );
    const composer = h("div", { class: "ernie-composer" }, this.editingBar, this.chips.el, this.attachmentsEl, this.mentionList.el, this.textarea, toolbar);

    this.root = h("div", { class: "ernie-chat" }, header, this.bannerEl, this.log, this.noticeEl, this.live, composer);
    host.append(this.root);

    this.wire(ime);
    this.applyLang();
    this.applyTraits();
    this.renderMessages();
    // A re-created view (or a page reload) asks for the answer in flight, if any.
    this.send({ type: "hello" });
  }

  // --- setup -----------------------------------------------------------------------------------------------

  private button(testid: string, key: StringKey, cls = "ernie-btn"): HTMLButtonElement {
    const button = h("button", { type: "button", class: cls, "data-testid": testid });
    this.labels.push([button, key, "text"]);
    return button;
  }

  private listen(target: EventTarget, type: string, handler: (e: any) => void): void {
    target.addEventListener(type, handler);
    this.cleanups.push(() => target.removeEventListener(type, handler));
  }

  private on(name: string, handler: (...args: any[]) => void): void {
    this.model.on(name, handler);
    this.cleanups.push(() => this.model.off(name, handler));
  }

  private wire(ime: ReturnType<typeof trackIme>): void {
    this.on("change:messages", () => this.renderMessages());
    this.on("change:status", () => this.updateControls());
    this.on("change:lang", () => this.applyLang());
    this.on("change:send_mode", () => this.applyTraits());
    this.on("change:model_label", () => this.applyTraits());
    this.on("change:placeholder", () => this.applyTraits());
    this.on("change:banner", () => this.applyTraits());
    this.on("change:auto_approve", () => this.applyTraits());
    this.on("change:context_budget", () => this.chips.render());
    this.on("msg:custom", (msg: unknown) => this.onCustom(msg));

    this.listen(this.sendButton, "click", () => this.submit());
    this.listen(this.stopButton, "click", () => this.send({ type: "stop" }));
    this.listen(this.retryButton, "click", () => this.send({ type: "retry" }));
    this.listen(this.continueButton, "click", () => this.send({ type: "continue" }));
    this.listen(this.clearButton, "click", () => this.send({ type: "clear" }));
    this.cleanups.push(isolateKeys(this.root));
    this.cleanups.push(
      bindSendKeys(this.textarea, {
        mode: () => this.sendMode(),
        onSend: () => this.submit(),
        onEscape: () => this.cancelEdit(),
        intercept: (e) => this.mentionList.keydown(e),
        ime,
      }),
    );
    this.listen(this.textarea, "paste", (e: ClipboardEvent) => {
      const files = imageFiles(e.clipboardData?.files);
      if (!files.length) return;
      e.preventDefault();
      void this.attach(files);
    });
    this.listen(this.root, "dragover", (e: DragEvent) => {
      if (!Array.from(e.dataTransfer?.types ?? []).includes("Files")) return;
      e.preventDefault();
      this.root.classList.add("ernie-dragging");
    });
    this.listen(this.root, "dragleave", () => this.root.classList.remove("ernie-dragging"));
    this.listen(this.root, "drop", (e: DragEvent) => {
      this.root.classList.remove("ernie-dragging");
      const files = imageFiles(e.dataTransfer?.files);
      if (!files.length) return;
      e.preventDefault();
      void this.attach(files);
    });
    this.listen(this.log, "scroll", () => {
      this.stick = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight <= STICK_PX;
    });
    this.listen(this.root, "click", (e: MouseEvent) => this.onClick(e));
    // A link opens only on the user's own click. A script in the page (another extension, an output of a
    // prompt-injected answer) could dispatch a click on a link to a model- or web-chosen URL; anchors follow such
    // clicks too. Capture phase: a dispatched click need not bubble, and the default action is cancelled first.
    const untrusted = (e: Event): void => {
      if (!e.isTrusted && e.target instanceof Element && e.target.closest("a[href]")) e.preventDefault();
    };
    this.root.addEventListener("click", untrusted, true);
    this.cleanups.push(() => this.root.removeEventListener("click", untrusted, true));
  }

  private applyLang(): void {
    this.lang = resolveLang(this.model.get("lang"));
    this.t = translator(this.lang);
    this.root.lang = this.lang === "zh" ? "zh-CN" : "en";
    for (const [el, key, where] of this.labels) {
      if (where === "text") el.textContent = this.t(key);
      else if (where === "title") el.setAttribute("title", this.t(key));
    }
    for (const view of this.allViews()) view.relabel(this.t);
    this.steps.relabel();
    this.pendingUser?.relabel(this.t);
    this.renderAttachments();
    this.renderEditing();
    this.chips.render();
    this.applyTraits();
    this.refreshCodeTools();
  }

  private applyTraits(): void {
    const label = this.model.get("model_label");
    this.modelLabel.textContent = typeof label === "string" ? label : "";
    const banner = this.model.get("banner");
    this.bannerEl.textContent = typeof banner === "string" ? banner : "";
    this.bannerEl.hidden = !this.bannerEl.textContent;
    this.autoBadge.hidden = this.model.get("auto_approve") !== true;
    const placeholder = this.model.get("placeholder");
    this.textarea.placeholder = typeof placeholder === "string" && placeholder ? placeholder : this.t("placeholder");
    this.hint.textContent = this.sendMode() === "ctrl-enter" ? this.t("hintCtrlEnter") : this.t("hintEnter");
    this.updateControls();
  }

  private sendMode(): SendMode {
    return this.model.get("send_mode") === "ctrl-enter" ? "ctrl-enter" : "enter";
  }

  // --- kernel → browser ------------------------------------------------------------------------------------

  private onCustom(msg: unknown): void {
    const start = (msg ?? {}) as Record<string, unknown>;
    if (start.type === "start" && typeof start.host === "string") this.startConnecting(start.host);
    if (start.type === "delta" && typeof start.mid === "number" && typeof start.seq === "number") {
      this.frameTiming.arrived(start.mid, start.seq, performance.now());
    }
    if (this.assembler.handle(msg)) {
      this.updateControls();
      return;
    }
    const m = (msg ?? {}) as Record<string, unknown>;
    let step;
    if (m.type === "notice" && typeof m.text === "string") {
      this.showNotice(m.text);
      // The kernel refused the ask (e.g. a turn is already streaming): drop the optimistic bubble.
      if (this.awaitingStart) {
        this.removePendingUser();
        this.setAwaitingStart(false);
      }
    } else if ((step = this.steps.live(m))) {
      this.markInterrupt(step.call_id, step.status === "running");
      this.placeViews();
      this.afterRender();
      // screen readers hear that a tool call waits for the user's decision
      if (step.status === "waiting" && !step.read_only) this.live.textContent = `${this.t("tool_waiting")}: ${step.name}`;
    } else if (m.type === "sources" && typeof m.mid === "number") {
      // web sources of the answer in flight; once the transcript holds the answer, its entry is the truth
      if (!this.finalMids.has(m.mid)) this.byMid.get(m.mid)?.setSources(parseSources(m.results));
    } else if (m.type === "variables") this.mentionList.onAnswer(m);
    else if (m.type === "mention") this.chips.onAnswer(m);
    else if (m.type === "last_error") this.chips.setLastError(m.summary);
    else if (m.type === "deleted") this.showNotice(this.t("turnDeleted"), this.t("undo"), { type: "undo_delete" });
    else if (m.type === "withdraw" && typeof m.mid === "number") {
      this.byMid.get(m.mid)?.withdraw(typeof m.notice === "string" ? m.notice : "");
      if (this.inflight?.mid === m.mid) this.inflight = null;
      this.updateControls();
    }
  }

  begin(mid: number): void {
    this.setAwaitingStart(false);
    this.checkExtension();
    const previous = this.byMid.get(mid);
    if (previous && previous !== this.inflight) {
      previous.destroy();
      this.byMid.delete(mid);
    }
    if (this.inflight && this.inflight.mid !== mid) this.inflight.endStream("ok");
    const view = new AssistantMessageView(this.ctx, mid);
    view.beginStream();
    this.byMid.set(mid, view);
    this.inflight = view;
    this.placeViews();
    this.afterRender();
  }

  append(mid: number, text: string, reasoning: string): void {
    this.stopConnecting();
    this.byMid.get(mid)?.appendStream(text, reasoning);
  }

  /** Until the first piece arrives, the status says where we are connecting and for how long (a dead endpoint
   *  is then visible as such, not as "Answering…"). */
  private startConnecting(host: string): void {
    this.stopConnecting();
    this.connecting = { host: host.slice(0, 120), since: Date.now() };
    this.connectingTimer = window.setInterval(() => this.updateControls(), 1000);
  }

  private stopConnecting(): void {
    if (this.connectingTimer !== undefined) window.clearInterval(this.connectingTimer);
    this.connectingTimer = undefined;
    if (this.connecting) {
      this.connecting = null;
      this.updateControls();
    }
  }

  replace(mid: number, text: string, reasoning: string): void {
    this.byMid.get(mid)?.replaceStream(text, reasoning);
  }

  end(mid: number, status: TurnStatus, error?: string): void {
    this.stopConnecting();
    this.byMid.get(mid)?.endStream(status, error);
    if (this.inflight?.mid === mid) this.inflight = null;
    this.refreshCodeTools();
    this.updateControls();
    this.afterRender();
  }

  requestResync(mid: number): void {
    this.send({ type: "resync", mid });
  }

  // --- transcript --------------------------------------------------------------------------------------------

  private renderMessages(): void {
    const messages = parseMessages(this.model.get("messages"));
    this.messages = messages;
    this.finalMids = new Set(messages.flatMap((m) => (m.role === "assistant" && m.mid !== undefined ? [m.mid] : [])));
    this.removePendingUser();
    this.checkExtension();
    // agent mode: a round that only called tools shows as steps of its answer, not as a bubble
    const hide = this.steps.stored(this.model.get("messages"), this.finalMids);

    // Views without a mid are reused by content, so a transcript update does not re-render old answers.
    const pool = new Map<string, MessageView[]>();
    for (const view of this.views) {
      if (view instanceof AssistantMessageView && view.mid !== undefined) continue;
      const key = view instanceof UserMessageView ? `user\u0000${view.content}` : `assistant\u0000${view.renderer.text}`;
      pool.set(key, [...(pool.get(key) ?? []), view]);
    }
    const take = (key: string): MessageView | undefined => pool.get(key)?.shift();

    const lastPos = messages.length - 1;
    const next: MessageView[] = [];
    for (const [pos, msg] of messages.entries()) {
      if (hide.has(msg.index)) continue;
      if (msg.role === "user") {
        const reused = take(`user\u0000${msg.content}`);
        const view = reused instanceof UserMessageView ? reused : new UserMessageView(this.ctx);
        view.apply(msg);
        next.push(view);
        continue;
      }
      let view: AssistantMessageView | undefined = msg.mid !== undefined ? this.byMid.get(msg.mid) : undefined;
      if (!view) {
        const reused = take(`assistant\u0000${msg.content}`) ?? take(messageKey(msg));
        view = reused instanceof AssistantMessageView ? reused : new AssistantMessageView(this.ctx, msg.mid);
      }
      if (msg.mid !== undefined) this.byMid.set(msg.mid, view);
      view.apply(msg, pos === lastPos);
      next.push(view);
    }

    for (const view of this.views) {
      if (next.includes(view) || view === this.inflight) continue;
      view.destroy();
      if (view instanceof AssistantMessageView && view.mid !== undefined && this.byMid.get(view.mid) === view) {
        this.byMid.delete(view.mid);
      }
    }
    // The answer in flight is now in the transcript: it was reconciled by apply() above.
    if (this.inflight && next.includes(this.inflight)) this.inflight = null;
    this.views = next;
    this.placeViews();
    this.refreshCodeTools();
    this.updateControls();
    this.afterRender();
  }

  /** Put the views in DOM order: transcript, optimistic user bubble, answer in flight. */
  private placeViews(): void {
    const order: MessageView[] = [...this.views];
    if (this.pendingUser) order.push(this.pendingUser);
    if (this.inflight && !order.includes(this.inflight)) order.push(this.inflight);
    let ref: ChildNode | null = this.list.firstChild;
    for (const view of order) {
      if (view.el === ref) ref = ref.nextSibling;
      else this.list.insertBefore(view.el, ref);
    }
    while (ref) {
      const stale: ChildNode = ref;
      ref = ref.nextSibling;
      stale.remove();
    }
    this.steps.mount(this.byMid);
  }

  private allViews(): MessageView[] {
    const views: MessageView[] = [...this.views];
    if (this.inflight && !views.includes(this.inflight)) views.push(this.inflight);
    return views;
  }

  private isStreaming(): boolean {
    return this.model.get("status") === "streaming" || this.inflight !== null;
  }

  /**
   * While tool code runs on the kernel's main thread, the kernel may not read the Stop message until the code
   * returns; `data-ernie-interrupt` on Stop asks the companion extension (on a trusted click only) to interrupt the
   * notebook's kernel, which ends the tool and the turn. Only then: at other times an interrupt could hit a cell.
   */
  private markInterrupt(callId: string | null, running: boolean): void {
    if (callId === null) this.runningTools.clear();
    else if (running) this.runningTools.add(callId);
    else this.runningTools.delete(callId);
    this.stopButton.toggleAttribute("data-ernie-interrupt", this.runningTools.size > 0);
  }

  private updateControls(): void {
    const streaming = this.isStreaming();
    const busy = streaming || this.awaitingStart;
    // a chosen @-mention is on its way: the ask waits for its chip
    this.sendButton.disabled = busy || this.chips.waiting;
    this.stopButton.hidden = !streaming;
    this.stopButton.disabled = !streaming;
    if (!streaming) this.markInterrupt(null, false);
    const hasUser = this.messages.some((m) => m.role === "user");
    const last = this.messages.at(-1);
    // a rejected key: the error says how to set one; sending the same request again cannot help
    this.retryButton.hidden = busy || !hasUser || (last?.role === "assistant" && last.error_kind === "auth");
    this.continueButton.hidden = busy || !(last?.role === "assistant" && last.truncated === true);
    this.clearButton.disabled = busy || (!this.messages.length && !this.pendingUser);
    const connecting = streaming ? this.connecting : null;
    this.statusText.textContent = connecting
      ? this.t("connecting", { host: connecting.host, s: Math.floor((Date.now() - connecting.since) / 1000) })
      : streaming ? this.t("streaming") : this.t("ready");
    this.root.dataset.status = streaming ? "streaming" : "idle";
    const lastUser = [...this.views].reverse().find((v): v is UserMessageView => v instanceof UserMessageView);
    for (const view of this.views) {
      if (view instanceof UserMessageView) view.setState(view === lastUser, busy);
    }
  }

  // --- code blocks, images, copy ---------------------------------------------------------------------------

  private checkExtension(): void {
    // Re-checked on each answer: the companion extension may mark the output area after the widget rendered.
    const present = this.host.closest("[data-ernie-extension]") !== null;
    if (present === this.withExtension) return;
    this.withExtension = present;
    this.refreshCodeTools();
  }

  /** The answer whose code blocks `%ernie --paste N` reads: the last one in the transcript (not one in flight). */
  private pasteableAnswer(): AssistantMessageView | undefined {
    return [...this.views].reverse().find((v): v is AssistantMessageView => v instanceof AssistantMessageView);
  }

  private syncAnswerCodeTools(view: AssistantMessageView, only?: HTMLElement[]): void {
    const wrappers = Array.from(view.answer.querySelectorAll<HTMLElement>(".ernie-codeblock"));
    const numbers = blockNumbers(wrappers);
    const pasteable = view === this.pasteableAnswer();
    wrappers.forEach((wrapper, i) => {
      if (!only || only.includes(wrapper)) syncCodeTools(wrapper, numbers[i], pasteable, this.withExtension, this.t);
    });
  }

  private refreshCodeTools(): void {
    for (const view of this.allViews()) {
      if (view instanceof AssistantMessageView) this.syncAnswerCodeTools(view);
    }
  }

  private committed(view: AssistantMessageView, nodes: Element[]): void {
    const wrappers = wrapCodeBlocks(nodes);
    if (wrappers.length) this.syncAnswerCodeTools(view, wrappers);
    if (view.streaming) {
      // Announce each finished block once (not every token) to screen readers.
      const text = nodes.map((n) => n.textContent ?? "").join(" ").trim();
      if (text) this.live.textContent = text.length > 600 ? `${text.slice(0, 600)}…` : text;
    }
  }

  private onClick(e: MouseEvent): void {
    const target = e.target instanceof Element ? e.target : null;
    if (!target) return;
    const copy = target.closest<HTMLElement>(".ernie-code-copy");
    if (copy) {
      const wrapper = copy.closest(".ernie-codeblock");
      if (wrapper) this.copy(codeOf(wrapper), copy);
      return;
    }
    const image = target.closest<HTMLElement>("button.ernie-image-blocked[data-src]");
    if (image) this.loadImage(image);
  }

  /** Load a blocked remote image, on the user's click only (no zero-click exfiltration through image URLs). */
  private loadImage(button: HTMLElement): void {
    const src = button.getAttribute("data-src") ?? "";
    if (!LOADABLE_IMAGE.test(src)) return;
    const img = h("img", { class: "ernie-image-loaded", alt: button.textContent ?? "", referrerpolicy: "no-referrer" });
    img.src = src;
    button.replaceWith(img);
  }

  private copy(text: string, button: HTMLElement): void {
    void copyText(text).then((ok) => {
      if (ok) flashLabel(button, button.classList.contains("ernie-action") ? "✓" : this.t("copied"));
    });
  }

  // --- composer ----------------------------------------------------------------------------------------------

  private submit(): void {
    if (this.isStreaming() || this.awaitingStart || this.chips.waiting) return;
    const text = this.textarea.value;
    const images = this.attachments.slice();
    if (!text.trim() && !images.length) return;
    this.mentionList.close();
    if (this.editing) {
      this.send({ type: "edit", text });
      this.cancelEdit();
    } else {
      const chips = this.chips.take();
      const msg: BrowserMessage = { type: "ask", text };
      if (images.length) msg.images = images;
      if (chips.length) msg.mentions = chips.map((c) => c.cid);
      this.send(msg);
      this.showPendingUser(text, images, chips.map((c) => c.item));
    }
    this.textarea.value = "";
    this.attachments = [];
    this.renderAttachments();
    this.setAwaitingStart(true);
    this.stick = true;
    this.afterRender();
  }

  private showPendingUser(text: string, images: string[], context: ContextItem[]): void {
    this.removePendingUser();
    const view = new UserMessageView(this.ctx, true);
    view.apply({ index: -1, content: text, images, context });
    this.pendingUser = view;
    this.placeViews();
  }

  private removePendingUser(): void {
    if (!this.pendingUser) return;
    this.pendingUser.destroy();
    this.pendingUser = null;
  }

  private setAwaitingStart(value: boolean): void {
    this.awaitingStart = value;
    window.clearTimeout(this.awaitTimer);
    this.awaitTimer = value
      ? window.setTimeout(() => {
          this.awaitingStart = false;
          this.updateControls();
        }, AWAIT_START_MS)
      : undefined;
    this.updateControls();
  }

  private startEdit(text: string): void {
    if (this.isStreaming()) return;
    this.editing = true;
    this.textarea.value = text;
    this.renderEditing();
    this.textarea.focus();
  }

  private cancelEdit(): void {
    if (!this.editing) return;
    this.editing = false;
    this.renderEditing();
  }

  private renderEditing(): void {
    this.editingBar.hidden = !this.editing;
    if (!this.editing) return;
    const cancel = h("button", { type: "button", class: "ernie-btn ernie-btn-small" }, this.t("cancel"));
    cancel.addEventListener("click", () => {
      this.cancelEdit();
      this.textarea.value = "";
    });
    this.editingBar.replaceChildren(h("span", {}, this.t("editing")), cancel);
  }

  private async attach(files: File[]): Promise<void> {
    for (const file of files) {
      if (this.attachments.length >= MAX_IMAGES) break;
      if (file.size > MAX_IMAGE_BYTES) {
        this.showNotice(this.t("imageTooLarge", { mb: MAX_IMAGE_BYTES / 1024 / 1024 }));
        continue;
      }
      const url = await readAsDataUrl(file);
      if (isSafeImageDataUrl(url)) this.attachments.push(url);
    }
    this.renderAttachments();
  }

  private renderAttachments(): void {
    this.attachmentsEl.hidden = !this.attachments.length;
    this.attachmentsEl.replaceChildren(
      ...this.attachments.map((src, i) => {
        const remove = h("button", { type: "button", class: "ernie-attachment-remove", title: this.t("removeImage"), "aria-label": this.t("removeImage") }, "×");
        remove.addEventListener("click", () => {
          this.attachments.splice(i, 1);
          this.renderAttachments();
        });
        return h("div", { class: "ernie-attachment" }, h("img", { class: "ernie-thumb", src, alt: "" }), remove);
      }),
    );
  }

  // --- misc --------------------------------------------------------------------------------------------------

  private send(msg: BrowserMessage): void {
    this.model.send(msg);
  }

  /** A short notice; with `action`, a button that sends `undo` on a real click (an Undo after a delete). */
  private showNotice(text: string, action?: string, undo?: BrowserMessage): void {
    this.noticeEl.textContent = text;
    if (action && undo) {
      const button = h("button", { type: "button", class: "ernie-notice-action" }, action);
      button.addEventListener("click", (event) => {
        if (!event.isTrusted) return; // page script cannot act for the user
        this.noticeEl.hidden = true;
        this.send(undo);
      });
      this.noticeEl.append(" ", button);
    }
    this.noticeEl.hidden = false;
    window.clearTimeout(this.noticeTimer);
    this.noticeTimer = window.setTimeout(() => {
      this.noticeEl.hidden = true;
    }, NOTICE_MS);
  }

  /** Run `fn` in the next animation frame, together with everything else queued for it. */
  private schedule(fn: () => void): void {
    this.frameQueue.add(fn);
    if (this.frame !== undefined) return;
    const run = (): void => {
      this.frame = undefined;
      this.frameTiming.frame(performance.now());
      const queue = Array.from(this.frameQueue);
      this.frameQueue.clear();
      for (const f of queue) f();
      this.afterRender();
    };
    this.frame = typeof requestAnimationFrame === "function" ? requestAnimationFrame(run) : window.setTimeout(run, 16);
  }

  /** Keep the newest content in view unless the user scrolled up to read. */
  private afterRender(): void {
    if (this.stick) this.log.scrollTop = this.log.scrollHeight;
  }

  destroy(): void {
    this.mentionList.destroy();
    this.chips.destroy();
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    if (this.frame !== undefined) {
      if (typeof cancelAnimationFrame === "function") cancelAnimationFrame(this.frame);
      window.clearTimeout(this.frame);
    }
    this.frameQueue.clear();
    window.clearTimeout(this.awaitTimer);
    window.clearTimeout(this.noticeTimer);
    if (this.connectingTimer !== undefined) window.clearInterval(this.connectingTimer);
    for (const view of this.allViews()) view.destroy();
    this.pendingUser?.destroy();
    this.root.remove();
  }
}
