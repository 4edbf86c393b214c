/**
 * Agent mode: an answer's tool steps (live `tool_step` messages, or the stored calls after a reload) and the
 * approval card. Everything from the kernel is untrusted text: code, arguments and results are set as text, images
 * must be PNG/JPEG data URLs.
 *
 * insert_cell: its code is a `.ernie-codeblock` with an Insert button carrying `data-ernie-action="insert-below"`,
 * the contract of the companion extension (labextension/src/actions.ts), which inserts the cell on a trusted click;
 * the same click tells the kernel (approve "run"). Without the extension there is no button, and the view skips
 * the call itself with `reason: "no_extension"` (no click needed: skipping runs nothing).
 */
import { h } from "./dom";
import { highlightCode } from "./highlight";
import type { StringKey, Translate } from "./i18n";
import type { BrowserMessage, ToolStepMsg, ToolStepStatus } from "./protocol.gen";

/** A step as shown: the `tool_step` message's fields, its code or arguments as `code`. */
export type Step = Omit<ToolStepMsg, "type" | "mid" | "code_or_arguments"> & { code: string };

interface Ctx {
  t: Translate;
  send(msg: BrowserMessage): void;
}

const STATUSES = ["waiting", "running", "done", "failed", "skipped"];
const IMAGE = /^data:image\/(?:png|jpeg);base64,[A-Za-z0-9+/=\s]+$/;
const str = (v: unknown): string => (typeof v === "string" ? v : "");

/** A `tool_step` message (or a stored `role: "tool"` message, `stored` = its mid and index) as a Step, or null. */
export function parseStep(m: Record<string, unknown>, stored?: string): Step | null {
  const status = stored ? m.step_status : m.status;
  const callId = stored ?? str(m.call_id);
  if (!STATUSES.includes(status as string) || !callId) return null;
  const images = Array.isArray(m.images) ? m.images.filter((s): s is string => typeof s === "string" && IMAGE.test(s)) : [];
  const result = stored ? m.content : m.result;
  return {
    call_id: callId,
    name: str(m.name).slice(0, 200),
    code: str(m.code_or_arguments),
    sha256: str(m.sha256),
    status: status as ToolStepStatus,
    read_only: stored !== undefined || m.read_only !== false,
    result: typeof result === "string" ? result : undefined,
    images,
    edited: m.edited === true,
  };
}

/** Highlighted code built as DOM (text nodes and `hljs-*` spans only: no markup from the code is ever parsed). */
function highlight(into: HTMLElement, code: string, lang: string): void {
  const html = highlightCode(code, lang);
  const copy = (from: Node, to: Node): void => {
    for (const n of Array.from(from.childNodes)) {
      if (n.nodeType === 3) to.appendChild(document.createTextNode(n.textContent ?? ""));
      else if (n.nodeType === 1) copy(n, to.appendChild(h("span", { class: (n as Element).className.replace(/[^\w -]/g, "") })));
    }
  };
  if (html !== null) copy(new DOMParser().parseFromString(html, "text/html").body, into);
  if (into.textContent !== code) into.textContent = code;
}

/** The steps of one answer (`mid`), in order, each a collapsible `<details>`. */
export class ToolSteps {
  readonly el = h("div", { class: "ernie-tool-steps" });
  private readonly steps = new Map<string, [Step | string, HTMLElement]>();
  /** insert_cell steps this view already skipped for want of the extension (a re-render must not send again) */
  private readonly reported = new Set<string>();

  constructor(private readonly ctx: Ctx) {}

  /** Show `step` (or a round's text), replacing the step with the same call_id. */
  set(step: Step | string, open: boolean, key = typeof step === "string" ? `#${this.steps.size}` : step.call_id): void {
    const old = this.steps.get(key)?.[1];
    const el = typeof step === "string" ? h("p", { class: "ernie-tool-note" }, step) : this.render(step, open || !!(old as HTMLDetailsElement)?.open);
    if (old) old.replaceWith(el);
    else this.el.append(el);
    this.steps.set(key, [step, el]);
  }

  relabel(): void {
    for (const [key, [step, el]] of this.steps) if (typeof step !== "string") this.set(step, (el as HTMLDetailsElement).open, key);
  }

  private render(step: Step, open: boolean): HTMLElement {
    const t = this.ctx.t;
    const code = h("code", { class: "ernie-tool-code" });
    const insert = step.name === "insert_cell";
    highlight(code, step.code, step.name === "run_python" || insert ? "python" : "json");
    const pre = h("pre", { class: "ernie-code" }, code);
    const waiting = step.status === "waiting" && !step.read_only;
    if (insert) {
      const block = h("div", { class: "ernie-codeblock" }, pre);
      return h(
        "details",
        { class: "ernie-tool-step", "data-testid": "ernie-tool-step", "data-status": step.status, "data-call-id": step.call_id, open: open || waiting },
        h("summary", {}, h("span", { class: "ernie-tool-status" }, t(`tool_${step.status}` as StringKey)), " ", h("code", {}, step.name)),
        block,
        waiting && this.insertCard(step, block),
        step.result !== undefined && h("pre", { class: "ernie-tool-result", "data-testid": "ernie-tool-result", tabindex: "0" }, step.result),
      );
    }
    return h(
      "details",
      { class: "ernie-tool-step", "data-testid": "ernie-tool-step", "data-status": step.status, "data-call-id": step.call_id, open: open || waiting },
      h("summary", {}, h("span", { class: "ernie-tool-status" }, t(`tool_${step.status}` as StringKey)), " ", h("code", {}, step.name), step.edited && ` · ${t("toolEdited")}`),
      pre,
      waiting && this.card(step, pre),
      step.result !== undefined && h("pre", { class: "ernie-tool-result", "data-testid": "ernie-tool-result", tabindex: "0" }, step.result),
      ...(step.images ?? []).map((src) => h("img", { class: "ernie-tool-image", src, alt: "" })),
    );
  }

  /**
   * insert_cell's card: Insert (inside the code block, for the extension) and Skip, decided by real clicks only.
   * Whether the extension is present is known once the step is in the page (the extension marks an ancestor).
   */
  private insertCard(step: Step, block: HTMLElement): HTMLElement {
    const t = this.ctx.t;
    const send = (decision: "run" | "skip", reason?: "no_extension"): void => {
      const msg: BrowserMessage = { type: "approve", call_id: step.call_id, sha256: step.sha256, decision };
      if (reason) msg.reason = reason;
      this.ctx.send(msg);
      for (const b of card.querySelectorAll("button")) b.disabled = true;
      insertButton.disabled = true;
    };
    const trusted = (b: HTMLButtonElement, act: () => void): HTMLButtonElement => {
      b.addEventListener("click", (e) => {
        if (e.isTrusted && !b.disabled) act();
      });
      return b;
    };
    const insertButton = trusted(h("button", { type: "button", class: "ernie-btn ernie-btn-primary", "data-ernie-action": "insert-below", "data-testid": "ernie-tool-insert" }, t("insertBelow")), () => send("run"));
    const skip = trusted(h("button", { type: "button", class: "ernie-btn", "data-testid": "ernie-tool-deny" }, t("toolSkip")), () => send("skip"));
    const card = h("div", { class: "ernie-tool-card", role: "group", "aria-label": t("toolAskInsert") }, h("span", {}, t("toolAskInsert")), skip);
    setTimeout(() => {
      if (!card.isConnected || skip.disabled) return;
      if (card.closest("[data-ernie-extension]")) {
        block.append(insertButton);
      } else if (!this.reported.has(step.call_id)) {
        this.reported.add(step.call_id);
        card.replaceChildren(h("span", {}, t("toolNoExtension")));
        send("skip", "no_extension");
      }
    }, 0);
    return card;
  }

  /** Run / Edit / Skip: only a real click (`isTrusted`) decides, with the sha256 of the code as it was shown. */
  private card(step: Step, pre: HTMLElement): HTMLElement {
    const t = this.ctx.t;
    let area: HTMLTextAreaElement | undefined;
    const buttons: HTMLButtonElement[] = [];
    const button = (testid: string, key: StringKey, act: () => void): HTMLButtonElement => {
      const b = h("button", { type: "button", class: "ernie-btn", "data-testid": testid }, t(key));
      b.addEventListener("click", (e) => {
        if (e.isTrusted && !b.disabled) act();
      });
      buttons.push(b);
      return b;
    };
    const decide = (decision: "run" | "edit" | "skip", code?: string): void => {
      const msg: BrowserMessage = { type: "approve", call_id: step.call_id, sha256: step.sha256, decision };
      if (code !== undefined) msg.code = code;
      this.ctx.send(msg);
      for (const b of buttons) b.disabled = true;
    };
    const run = button("ernie-tool-approve", "toolRun", () => (area ? decide("edit", area.value) : decide("run")));
    run.classList.add("ernie-btn-primary");
    const edit = button("ernie-tool-edit", "toolEdit", () => {
      area = h("textarea", { class: "ernie-tool-editor", "data-testid": "ernie-tool-editor", "aria-label": t("toolEdit"), rows: Math.min(20, step.code.split("\n").length + 1) });
      area.value = step.code;
      pre.replaceWith(area);
      area.focus();
      edit.disabled = true;
    });
    return h("div", { class: "ernie-tool-card", role: "group", "aria-label": t("toolAsk") }, h("span", {}, t("toolAsk")), run, edit, button("ernie-tool-deny", "toolSkip", () => decide("skip")));
  }
}

/** The tool steps of every answer, by `mid`: live from `tool_step` messages, from the transcript once stored. */
export class AnswerSteps {
  private readonly byMid = new Map<number, ToolSteps>();
  private readonly json = new Map<number, string>();

  constructor(private readonly ctx: Ctx) {}

  private of(mid: number): ToolSteps {
    let steps = this.byMid.get(mid);
    if (!steps) this.byMid.set(mid, (steps = new ToolSteps(this.ctx)));
    return steps;
  }

  /** A `tool_step` message, shown; null when it is not one (or is malformed). */
  live(m: Record<string, unknown>): Step | null {
    const step = m.type === "tool_step" && typeof m.mid === "number" ? parseStep(m) : null;
    if (step) this.of(m.mid as number).set(step, step.status === "waiting" || step.status === "running");
    return step;
  }

  /**
   * The stored steps of the answers in the `messages` trait (collapsed; they replace the live ones of a stored
   * answer). Returns the indices of assistant messages not to show as bubbles: a round that only called tools
   * and is followed by the answer's next message (its text, if any, is shown above its steps).
   */
  stored(raw: unknown, finalMids: Set<number>): Set<number> {
    const hide = new Set<number>();
    const found = new Map<number, Array<Step | string>>();
    const list = Array.isArray(raw) ? (raw as Array<Record<string, unknown> | null>) : [];
    list.forEach((m, i) => {
      const mid = m?.mid;
      if (!m || typeof mid !== "number") return;
      const items = found.get(mid) ?? [];
      found.set(mid, items);
      if (m.role === "tool") {
        const step = parseStep(m, `${mid}.${i}`);
        if (step) items.push(step);
      } else if (m.role === "assistant" && Array.isArray(m.tool_calls) && m.tool_calls.length) {
        if (list.slice(i + 1).some((n) => n?.role === "assistant" && n.mid === mid)) hide.add(i);
        if (str(m.content).trim()) items.push(str(m.content));
      }
    });
    for (const mid of finalMids) {
      const items = found.get(mid) ?? [];
      const json = JSON.stringify(items);
      if (this.json.get(mid) === json) continue;
      this.json.set(mid, json);
      this.byMid.get(mid)?.el.remove();
      this.byMid.delete(mid);
      for (const item of items) this.of(mid).set(item, false);
    }
    return hide;
  }

  /** Put each answer's steps above its text. */
  mount(views: Map<number, { el: HTMLElement; answer: HTMLElement }>): void {
    for (const [mid, steps] of this.byMid) {
      const view = views.get(mid);
      if (view && steps.el.parentNode !== view.el) view.answer.before(steps.el);
    }
  }

  relabel(): void {
    for (const steps of this.byMid.values()) steps.relabel();
  }
}
