// @vitest-environment happy-dom
import { afterEach, describe, expect, it, vi } from "vitest";
import type { BrowserMessage } from "./types";
import widget from "./widget";

type Handler = (...args: unknown[]) => void;

/** Just enough of anywidget's model for render(): get/on/off/send plus helpers to play the kernel. */
function fakeModel(initial: Record<string, unknown> = {}) {
  const state: Record<string, unknown> = {
    messages: [],
    status: "idle",
    lang: "en",
    send_mode: "enter",
    model_label: "ernie-4.5-turbo-128k",
    placeholder: "",
    ...initial,
  };
  const handlers = new Map<string, Handler[]>();
  const fire = (name: string, ...args: unknown[]) => (handlers.get(name) ?? []).slice().forEach((f) => f(...args));
  const sent: BrowserMessage[] = [];
  return {
    state,
    sent,
    get: (key: string) => state[key],
    set: (key: string, value: unknown) => {
      state[key] = value;
      fire(`change:${key}`);
    },
    on: (name: string, f: Handler) => handlers.set(name, [...(handlers.get(name) ?? []), f]),
    off: (name: string, f: Handler) => handlers.set(name, (handlers.get(name) ?? []).filter((g) => g !== f)),
    send: vi.fn((msg: BrowserMessage) => sent.push(msg)),
    save_changes: vi.fn(),
    /** A kernel → browser custom message. */
    custom: (msg: Record<string, unknown>) => fire("msg:custom", msg, []),
    listeners: (name: string) => (handlers.get(name) ?? []).length,
  };
}

type Fake = ReturnType<typeof fakeModel>;
const cleanups: Array<() => void> = [];

function mount(initial: Record<string, unknown> = {}, host?: HTMLElement) {
  const model = fakeModel(initial);
  const el = document.createElement("div");
  (host ?? document.body).append(el);
  const cleanup = widget.render({ model: model as never, el });
  cleanups.push(() => {
    cleanup();
    el.remove();
  });
  const q = <T extends Element = HTMLElement>(selector: string) => el.querySelector<T & Element>(selector) as T | null;
  const byId = <T extends HTMLElement = HTMLElement>(id: string) => el.querySelector(`[data-testid="${id}"]`) as T;
  return { model, el, q, byId, cleanup };
}

const frame = () => new Promise<void>((resolve) => requestAnimationFrame(() => resolve()));

async function stream(model: Fake, mid: number, parts: string[]) {
  model.custom({ type: "start", mid });
  parts.forEach((text, seq) => model.custom({ type: "delta", mid, seq, text }));
  await frame();
}

afterEach(() => {
  for (const c of cleanups.splice(0)) c();
  vi.useRealTimers();
});

describe("render", () => {
  it("builds the chat with the documented test ids and sends hello once", () => {
    const { el, model, byId } = mount();
    expect(el.querySelector(".ernie-chat")).not.toBeNull();
    for (const id of ["ernie-input", "ernie-send", "ernie-stop", "ernie-retry", "ernie-clear", "ernie-continue"]) {
      expect(byId(id), id).not.toBeNull();
    }
    expect(model.sent).toEqual([{ type: "hello" }]);
    expect(el.querySelector(".ernie-model")?.textContent).toBe("ernie-4.5-turbo-128k");
  });

  it("initialize is cheap and returns nothing", () => {
    const started = performance.now();
    expect(widget.initialize()).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(50);
  });

  it("cleanup removes the DOM and every model listener", () => {
    const { el, model, cleanup } = mount();
    expect(model.listeners("msg:custom")).toBe(1);
    cleanup();
    expect(el.querySelector(".ernie-chat")).toBeNull();
    expect(model.listeners("msg:custom")).toBe(0);
    expect(model.listeners("change:messages")).toBe(0);
  });

  it("renders the transcript with data-testid=ernie-message and data-role", () => {
    const { el } = mount({
      messages: [
        { role: "user", content: "你好" },
        { role: "assistant", content: "**你好！**有什么可以帮你？", mid: 1 },
      ],
    });
    const messages = Array.from(el.querySelectorAll('[data-testid="ernie-message"]'));
    expect(messages.map((m) => m.getAttribute("data-role"))).toEqual(["user", "assistant"]);
    expect(messages[1].querySelector(".ernie-answer strong")?.textContent).toBe("你好！");
  });

  it("shows user text as text, never as HTML", () => {
    const { el } = mount({ messages: [{ role: "user", content: "<img src=x onerror=alert(1)> **not md**" }] });
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector(".ernie-user-text")?.textContent).toBe("<img src=x onerror=alert(1)> **not md**");
  });

  it("treats the transcript as untrusted: skips malformed entries and unsafe images", () => {
    const { el } = mount({
      messages: [
        null,
        "text",
        { role: "system", content: "hidden" },
        { role: "user", content: 42, images: ["https://evil.example/x.png", "data:image/svg+xml;base64,AAAA", "data:image/png;base64,iVBORw0KGgo="] },
        { role: "assistant", content: "[x](javascript:alert(1)) ![y](https://evil.example/p.png)", usage: "bad" },
      ],
    });
    const messages = el.querySelectorAll('[data-testid="ernie-message"]');
    expect(messages).toHaveLength(2);
    const imgs = Array.from(el.querySelectorAll("img"));
    expect(imgs.map((i) => i.getAttribute("src"))).toEqual(["data:image/png;base64,iVBORw0KGgo="]);
    expect(el.querySelector("a[href]")).toBeNull();
    expect(el.querySelector("button.ernie-image-blocked")?.getAttribute("data-src")).toBe("https://evil.example/p.png");
  });
});

describe("connecting", () => {
  it("says where it connects and for how long until the first piece, then that it is answering", () => {
    vi.useFakeTimers();
    try {
      const { el, model } = mount({ status: "streaming", lang: "en", messages: [{ role: "user", content: "q" }] });
      const status = () => el.querySelector(".ernie-status-text")?.textContent ?? "";
      model.custom({ type: "start", mid: 1, host: "qianfan.baidubce.com" });
      expect(status()).toBe("Connecting to qianfan.baidubce.com… 0 s");
      vi.advanceTimersByTime(3100);
      expect(status()).toBe("Connecting to qianfan.baidubce.com… 3 s");
      model.custom({ type: "delta", mid: 1, seq: 0, text: "hi" });
      expect(status()).toBe("Answering…");
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("icons", () => {
  it("message actions are inline SVG icons with a label, not glyphs stock fonts lack", () => {
    const { el } = mount({ messages: [{ role: "user", content: "q" }, { role: "assistant", content: "a", status: "ok" }] });
    const actions = [...el.querySelectorAll(".ernie-action")];
    expect(actions.length).toBeGreaterThanOrEqual(3);
    for (const a of actions) {
      expect(a.querySelector("svg.ernie-icon")).not.toBeNull();
      expect(a.textContent).not.toMatch(/[⧉✎🗑]/u);
      expect(a.getAttribute("aria-label")).toBeTruthy();
    }
  });
});

describe("a rejected key", () => {
  it("shows how to set a key and offers no Retry (sending the same key again cannot help)", () => {
    const { el } = mount({
      messages: [
        { role: "user", content: "q" },
        { role: "assistant", content: "", status: "error", error_kind: "auth",
          error: "the key was rejected — set a key: QIANFAN_API_KEY=…" },
      ],
    });
    expect(el.querySelector('[data-testid="ernie-error"]')?.textContent).toContain("QIANFAN_API_KEY");
    expect(el.querySelector('[data-testid="ernie-error-retry"]')).toBeNull();
    expect((el.querySelector('[data-testid="ernie-retry"]') as HTMLElement).hidden).toBe(true);
  });
});

describe("which model answered", () => {
  it("each answer's footer starts with the model that wrote it", () => {
    const { el } = mount({
      messages: [
        { role: "user", content: "q" },
        { role: "assistant", content: "a", status: "ok", model: "SmolLM2-135M-Instruct-Q4_1" },
        { role: "user", content: "q2" },
        { role: "assistant", content: "b", status: "ok", model: "ernie-4.5-turbo-32k" },
      ],
    });
    const footers = [...el.querySelectorAll(".ernie-footer-info")].map((f) => f.textContent ?? "");
    expect(footers[0].startsWith("SmolLM2-135M-Instruct-Q4_1")).toBe(true);
    expect(footers[1].startsWith("ernie-4.5-turbo-32k")).toBe(true);
  });

  it("shows the banner trait above the transcript as text, and hides it when empty", () => {
    const { el, model } = mount({ banner: "This is a tiny offline demo model, not ERNIE <b>x</b>" });
    const banner = el.querySelector('[data-testid="ernie-banner"]') as HTMLElement;
    expect(banner.hidden).toBe(false);
    expect(banner.textContent).toContain("not ERNIE <b>x</b>");
    expect(banner.querySelector("b")).toBeNull();
    model.set("banner", "");
    expect(banner.hidden).toBe(true);
  });
});

describe("delta protocol", () => {
  it("appends a streaming bubble on start and joins deltas in order", async () => {
    const { el, model } = mount({ messages: [{ role: "user", content: "hi" }] });
    await stream(model, 1, ["你好，", "世界"]);
    const answer = el.querySelector('[data-role="assistant"] .ernie-answer');
    expect(answer?.textContent?.trim()).toBe("你好，世界");
    expect(el.querySelector(".ernie-streaming")).not.toBeNull();
    // the bubble comes after the last message
    const roles = Array.from(el.querySelectorAll('[data-testid="ernie-message"]')).map((m) => m.getAttribute("data-role"));
    expect(roles).toEqual(["user", "assistant"]);
  });

  it("tells the kernel how long the deltas waited for the frame that rendered them", async () => {
    const { model } = mount();
    model.custom({ type: "start", mid: 4 });
    for (let seq = 0; seq < 24; seq++) {
      model.custom({ type: "delta", mid: 4, seq, text: `w${seq} ` });
      if (seq % 3 === 2) await frame();
    }
    const reports = model.sent.filter((m) => m.type === "frame_timing");
    expect(reports).toHaveLength(1);
    const [report] = reports as Array<{ mid: number; waits: number[][] }>;
    expect(report.mid).toBe(4);
    expect(report.waits.map(([seq]) => seq)).toEqual([...Array(24).keys()]);
    expect(report.waits.every(([, ms]) => ms >= 0 && ms < 1000)).toBe(true);
  });

  it("marks Stop for the extension's kernel interrupt only while a tool step runs", async () => {
    const { byId, model } = mount();
    const step = (status: string) => model.custom({ type: "tool_step", mid: 1, call_id: "1.1.c1", name: "run_python",
                                                    code_or_arguments: "import time; time.sleep(30)",
                                                    sha256: "a".repeat(64), status, read_only: false });
    await stream(model, 1, ["thinking"]);
    const stop = byId("ernie-stop");
    step("waiting");
    expect(stop.hasAttribute("data-ernie-interrupt")).toBe(false); // nothing runs yet: an interrupt could hit a cell
    step("running");
    expect(stop.hasAttribute("data-ernie-interrupt")).toBe(true);
    step("done");
    expect(stop.hasAttribute("data-ernie-interrupt")).toBe(false);
  });

  it("renders at most once per animation frame", async () => {
    const { el, model } = mount();
    model.custom({ type: "start", mid: 1 });
    model.custom({ type: "delta", mid: 1, seq: 0, text: "a" });
    model.custom({ type: "delta", mid: 1, seq: 1, text: "b" });
    expect(el.querySelector(".ernie-answer")?.textContent).toBe("");
    await frame();
    expect(el.querySelector(".ernie-answer")?.textContent?.trim()).toBe("ab");
  });

  it("ignores duplicates", async () => {
    const { el, model } = mount();
    model.custom({ type: "start", mid: 1 });
    model.custom({ type: "delta", mid: 1, seq: 0, text: "a" });
    model.custom({ type: "delta", mid: 1, seq: 0, text: "a" });
    model.custom({ type: "delta", mid: 1, seq: 1, text: "b" });
    await frame();
    expect(el.querySelector(".ernie-answer")?.textContent?.trim()).toBe("ab");
  });

  it("on a gap asks for a resync once, ignores deltas until the reply, then continues from its seq", async () => {
    const { el, model } = mount();
    model.custom({ type: "start", mid: 7 });
    model.custom({ type: "delta", mid: 7, seq: 0, text: "one " });
    model.custom({ type: "delta", mid: 7, seq: 2, text: "three " });
    model.custom({ type: "delta", mid: 7, seq: 3, text: "four " });
    expect(model.sent.filter((m) => m.type === "resync")).toEqual([{ type: "resync", mid: 7 }]);
    await frame();
    expect(el.querySelector(".ernie-answer")?.textContent?.trim()).toBe("one");
    model.custom({ type: "resync", mid: 7, seq: 4, text: "one two three four ", reasoning: "" });
    model.custom({ type: "delta", mid: 7, seq: 3, text: "dup " });
    model.custom({ type: "delta", mid: 7, seq: 4, text: "five" });
    await frame();
    expect(el.querySelector(".ernie-answer")?.textContent?.trim()).toBe("one two three four five");
  });

  it("shows the partial answer from a resync after hello (re-created view / page reload)", async () => {
    const { el, model } = mount({ status: "streaming", messages: [{ role: "user", content: "q" }] });
    expect(model.sent).toContainEqual({ type: "hello" });
    model.custom({ type: "resync", mid: 3, seq: 5, text: "partial *answer*", reasoning: "thinking so far" });
    model.custom({ type: "delta", mid: 3, seq: 5, text: " more" });
    await frame();
    expect(el.querySelector(".ernie-answer")?.textContent?.trim()).toBe("partial answer more");
    expect(el.querySelector(".ernie-reasoning-text")?.textContent).toBe("thinking so far");
  });

  it("done then the messages trait: keeps the incremental DOM when the content matches", async () => {
    const { el, model } = mount({ messages: [{ role: "user", content: "q" }] });
    await stream(model, 1, ["# Title\n\n", "first para\n\n", "last para"]);
    const h1 = el.querySelector(".ernie-answer h1");
    const last = el.querySelector(".ernie-answer p:last-child");
    model.custom({ type: "done", mid: 1, status: "ok" });
    expect(el.querySelector(".ernie-streaming")).toBeNull();
    model.set("messages", [
      { role: "user", content: "q" },
      { role: "assistant", content: "# Title\n\nfirst para\n\nlast para", mid: 1, status: "ok", usage: { prompt_tokens: 3, completion_tokens: 9, total_tokens: 12 }, metrics: { ttft_ms: 420, tokens_per_s: 35.14 } },
    ]);
    expect(el.querySelector(".ernie-answer h1")).toBe(h1);
    expect(el.querySelector(".ernie-answer p:last-child")).toBe(last);
    expect(el.querySelectorAll('[data-role="assistant"]')).toHaveLength(1);
    const footer = el.querySelector(".ernie-footer-info")?.textContent ?? "";
    expect(footer).toContain("12 tokens");
    expect(footer).toContain("first token 0.42 s");
    expect(footer).toContain("35.1 tokens/s");
  });

  it("the messages trait before done: reconciles, keeps the DOM, ignores late deltas", async () => {
    const { el, model } = mount({ messages: [{ role: "user", content: "q" }] });
    await stream(model, 2, ["hello ", "world"]);
    const p = el.querySelector(".ernie-answer p");
    model.set("messages", [
      { role: "user", content: "q" },
      { role: "assistant", content: "hello world", mid: 2 },
    ]);
    expect(el.querySelector(".ernie-answer p")).toBe(p);
    model.custom({ type: "delta", mid: 2, seq: 2, text: " late" });
    model.custom({ type: "done", mid: 2, status: "ok" });
    await frame();
    expect(el.querySelector(".ernie-answer")?.textContent?.trim()).toBe("hello world");
    expect(el.querySelectorAll('[data-role="assistant"]')).toHaveLength(1);
    expect(el.querySelector(".ernie-streaming")).toBeNull();
  });

  it("the transcript wins when it differs from what was streamed", async () => {
    const { el, model } = mount();
    await stream(model, 4, ["hello wor"]);
    model.custom({ type: "done", mid: 4, status: "ok" });
    model.set("messages", [{ role: "assistant", content: "hello world, corrected", mid: 4 }]);
    expect(el.querySelector(".ernie-answer")?.textContent?.trim()).toBe("hello world, corrected");
  });

  it("shows an inline error with a Retry button", async () => {
    const { el, model } = mount({ messages: [{ role: "user", content: "q" }] });
    await stream(model, 5, ["partial"]);
    model.custom({ type: "done", mid: 5, status: "error", error: "ERNIE error 336003: bad request" });
    const errors = el.querySelectorAll<HTMLElement>('[data-testid="ernie-error"]');
    expect(errors).toHaveLength(1);
    const error = errors[0];
    expect(error?.textContent).toContain("336003");
    error?.querySelector<HTMLButtonElement>("button")?.click();
    expect(model.sent.at(-1)).toEqual({ type: "retry" });
  });

  it("shows an error from the transcript, and only where there is one", () => {
    const { el, model } = mount({
      messages: [
        { role: "user", content: "q" },
        { role: "assistant", content: "fine", mid: 1 },
        { role: "user", content: "q2" },
        { role: "assistant", content: "", mid: 2, status: "error", error: "timeout" },
      ],
    });
    const errors = el.querySelectorAll('[data-testid="ernie-error"]');
    expect(errors).toHaveLength(1);
    expect(errors[0].textContent).toContain("timeout");
    expect(errors[0].closest('[data-role="assistant"]')?.getAttribute("data-mid")).toBe("2");
    model.set("messages", [
      { role: "user", content: "q" },
      { role: "assistant", content: "fine", mid: 1 },
      { role: "user", content: "q2" },
      { role: "assistant", content: "ok now", mid: 3 },
    ]);
    expect(el.querySelectorAll('[data-testid="ernie-error"]')).toHaveLength(0);
  });

  it("withdraw replaces the answer with the notice", async () => {
    const { el, model } = mount();
    await stream(model, 6, ["something flagged"]);
    model.custom({ type: "withdraw", mid: 6, notice: "该回答已被撤回" });
    model.custom({ type: "delta", mid: 6, seq: 1, text: " more" });
    await frame();
    expect(el.querySelector(".ernie-answer")?.textContent).toBe("该回答已被撤回");
  });

  it("a withdrawn answer in the transcript shows its notice as text, never the Markdown", () => {
    const { el } = mount({ messages: [{ role: "assistant", content: "该回答已被撤回 **x**", mid: 1, withdrawn: true }] });
    expect(el.querySelector(".ernie-answer")?.textContent).toBe("该回答已被撤回 **x**");
    expect(el.querySelector(".ernie-answer strong")).toBeNull();
  });

  it("shows a transient notice", () => {
    vi.useFakeTimers();
    const { el, model } = mount();
    model.custom({ type: "notice", text: "A turn is already streaming." });
    const notice = el.querySelector<HTMLElement>(".ernie-notice");
    expect(notice?.hidden).toBe(false);
    expect(notice?.textContent).toBe("A turn is already streaming.");
    vi.advanceTimersByTime(10_000);
    expect(notice?.hidden).toBe(true);
  });

  it("reasoning is open while streaming and collapses when the answer ends", async () => {
    const { el, model } = mount();
    model.custom({ type: "start", mid: 1 });
    model.custom({ type: "delta", mid: 1, seq: 0, reasoning: "先想一想" });
    model.custom({ type: "delta", mid: 1, seq: 1, text: "答案" });
    await frame();
    const details = el.querySelector<HTMLDetailsElement>("details.ernie-reasoning");
    expect(details?.hidden).toBe(false);
    expect(details?.open).toBe(true);
    expect(details?.querySelector("summary")?.textContent).toBe("Thinking");
    expect(details?.querySelector(".ernie-reasoning-text")?.textContent).toBe("先想一想");
    model.custom({ type: "done", mid: 1, status: "ok" });
    expect(details?.open).toBe(false);
  });

  it("announces finished blocks in an aria-live region", async () => {
    const { el, model } = mount();
    await stream(model, 1, ["First paragraph.\n\n", "Second\n"]);
    const live = el.querySelector('[aria-live="polite"]');
    expect(live?.textContent).toBe("First paragraph.");
  });

  it("never sends a field named id", async () => {
    const { model, byId } = mount({ messages: [{ role: "user", content: "q" }, { role: "assistant", content: "a", mid: 1 }] });
    model.custom({ type: "delta", mid: 9, seq: 3, text: "x" });
    byId("ernie-retry").click();
    for (const msg of model.sent) expect(Object.keys(msg)).not.toContain("id");
  });
});

describe("controls", () => {
  it("Stop is visible and enabled only while streaming; Send is disabled then", async () => {
    const { model, byId } = mount();
    const stop = byId<HTMLButtonElement>("ernie-stop");
    const send = byId<HTMLButtonElement>("ernie-send");
    expect(stop.hidden).toBe(true);
    expect(stop.disabled).toBe(true);
    expect(send.disabled).toBe(false);
    model.set("status", "streaming");
    expect(stop.hidden).toBe(false);
    expect(stop.disabled).toBe(false);
    expect(send.disabled).toBe(true);
    stop.click();
    expect(model.sent.at(-1)).toEqual({ type: "stop" });
    model.set("status", "idle");
    expect(stop.hidden).toBe(true);
    expect(send.disabled).toBe(false);
  });

  it("a start message alone is enough to show Stop", () => {
    const { model, byId } = mount();
    model.custom({ type: "start", mid: 1 });
    expect(byId("ernie-stop").hidden).toBe(false);
    model.custom({ type: "done", mid: 1, status: "stopped" });
    expect(byId("ernie-stop").hidden).toBe(true);
  });

  it("Enter sends an ask with the text, shows it at once, clears the input and blocks a double send", () => {
    const { el, model, byId } = mount();
    const input = byId<HTMLTextAreaElement>("ernie-input");
    input.value = "解释一下 asyncio";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", cancelable: true }));
    expect(model.sent.at(-1)).toEqual({ type: "ask", text: "解释一下 asyncio" });
    expect(input.value).toBe("");
    expect(el.querySelector('.ernie-pending[data-role="user"]')?.textContent).toContain("解释一下 asyncio");
    expect(byId<HTMLButtonElement>("ernie-send").disabled).toBe(true);
    input.value = "again";
    byId("ernie-send").click();
    expect(model.sent.filter((m) => m.type === "ask")).toHaveLength(1);
    // the kernel's transcript replaces the optimistic bubble
    model.set("messages", [{ role: "user", content: "解释一下 asyncio" }]);
    model.custom({ type: "start", mid: 1 });
    expect(el.querySelector(".ernie-pending")).toBeNull();
    expect(el.querySelectorAll('[data-role="user"]')).toHaveLength(1);
  });

  it("does not send an empty message", () => {
    const { model, byId } = mount();
    byId<HTMLTextAreaElement>("ernie-input").value = "   \n";
    byId("ernie-send").click();
    expect(model.sent.filter((m) => m.type === "ask")).toHaveLength(0);
  });

  it("drops the optimistic bubble when the kernel refuses with a notice", () => {
    const { el, model, byId } = mount();
    byId<HTMLTextAreaElement>("ernie-input").value = "q";
    byId("ernie-send").click();
    model.custom({ type: "notice", text: "A turn is already streaming." });
    expect(el.querySelector(".ernie-pending")).toBeNull();
    expect(byId<HTMLButtonElement>("ernie-send").disabled).toBe(false);
  });

  it("Retry, Clear and Continue send their messages; Continue only after a truncated answer", () => {
    const { model, byId } = mount({
      messages: [
        { role: "user", content: "write a long essay" },
        { role: "assistant", content: "It was the best of", mid: 1, truncated: true },
      ],
    });
    expect(byId("ernie-continue").hidden).toBe(false);
    byId("ernie-continue").click();
    byId("ernie-retry").click();
    byId("ernie-clear").click();
    expect(model.sent.slice(-3)).toEqual([{ type: "continue" }, { type: "retry" }, { type: "clear" }]);
    model.set("messages", [
      { role: "user", content: "write a long essay" },
      { role: "assistant", content: "It was the best of times.", mid: 1 },
    ]);
    expect(byId("ernie-continue").hidden).toBe(true);
  });

  it("Retry is hidden with an empty transcript", () => {
    const { byId } = mount();
    expect(byId("ernie-retry").hidden).toBe(true);
  });

  it("deletes a turn by its index in messages", () => {
    const { el, model } = mount({
      messages: [
        { role: "user", content: "one" },
        { role: "assistant", content: "1", mid: 1 },
        { role: "user", content: "two" },
        { role: "assistant", content: "2", mid: 2 },
      ],
    });
    const users = el.querySelectorAll('[data-role="user"]');
    users[1].querySelector<HTMLButtonElement>(".ernie-delete")?.click();
    expect(model.sent.at(-1)).toEqual({ type: "delete", index: 2 });
  });

  it("edit-and-resend: only the last user message, sent as {type: edit}", () => {
    const { el, model, byId } = mount({
      messages: [
        { role: "user", content: "one" },
        { role: "assistant", content: "1", mid: 1 },
        { role: "user", content: "two" },
        { role: "assistant", content: "2", mid: 2 },
      ],
    });
    const users = el.querySelectorAll('[data-role="user"]');
    expect(users[0].querySelector<HTMLButtonElement>(".ernie-edit")?.hidden).toBe(true);
    users[1].querySelector<HTMLButtonElement>(".ernie-edit")?.click();
    const input = byId<HTMLTextAreaElement>("ernie-input");
    expect(input.value).toBe("two");
    input.value = "two, better";
    byId("ernie-send").click();
    expect(model.sent.at(-1)).toEqual({ type: "edit", text: "two, better" });
  });

  it("ctrl-enter mode: Enter inserts a newline, Ctrl+Enter sends", () => {
    const { model, byId } = mount({ send_mode: "ctrl-enter" });
    const input = byId<HTMLTextAreaElement>("ernie-input");
    input.value = "q";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", cancelable: true }));
    expect(model.sent.filter((m) => m.type === "ask")).toHaveLength(0);
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", ctrlKey: true, cancelable: true }));
    expect(model.sent.at(-1)).toEqual({ type: "ask", text: "q" });
  });

  it("does not send while an IME composes", () => {
    const { model, byId } = mount();
    const input = byId<HTMLTextAreaElement>("ernie-input");
    input.value = "ni";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", isComposing: true, cancelable: true }));
    expect(model.sent.filter((m) => m.type === "ask")).toHaveLength(0);
  });

  it("attaches pasted images", async () => {
    const { el, byId } = mount();
    const input = byId<HTMLTextAreaElement>("ernie-input");
    const file = new File([new Uint8Array([255, 216, 255])], "p.jpg", { type: "image/jpeg" });
    const paste = new Event("paste", { bubbles: true, cancelable: true });
    Object.defineProperty(paste, "clipboardData", { value: { files: [file] } });
    input.dispatchEvent(paste);
    expect(paste.defaultPrevented).toBe(true);
    await vi.waitFor(() => expect(el.querySelectorAll(".ernie-attachment img")).toHaveLength(1));
    el.querySelector<HTMLButtonElement>(".ernie-attachment-remove")?.click();
    expect(el.querySelectorAll(".ernie-attachment")).toHaveLength(0);
  });

  it("lets a plain-text paste through", () => {
    const { byId } = mount();
    const paste = new Event("paste", { bubbles: true, cancelable: true });
    Object.defineProperty(paste, "clipboardData", { value: { files: [] } });
    byId("ernie-input").dispatchEvent(paste);
    expect(paste.defaultPrevented).toBe(false);
  });

  it("attaches dropped images and sends them in ask.images", async () => {
    const { el, model, byId } = mount();
    const file = new File([new Uint8Array([137, 80, 78, 71])], "a.png", { type: "image/png" });
    const drop = new Event("drop", { bubbles: true, cancelable: true });
    Object.defineProperty(drop, "dataTransfer", { value: { files: [file, new File(["x"], "a.txt", { type: "text/plain" })], types: ["Files"] } });
    el.querySelector(".ernie-chat")?.dispatchEvent(drop);
    await vi.waitFor(() => expect(el.querySelectorAll(".ernie-attachment")).toHaveLength(1));
    byId<HTMLTextAreaElement>("ernie-input").value = "what is this?";
    byId("ernie-send").click();
    const ask = model.sent.at(-1) as { type: string; text: string; images: string[] };
    expect(ask.type).toBe("ask");
    expect(ask.images).toHaveLength(1);
    expect(ask.images[0]).toMatch(/^data:image\/png;base64,/);
    expect(el.querySelectorAll(".ernie-attachment")).toHaveLength(0);
  });

  it("UI strings follow the lang trait", () => {
    const { model, byId, el } = mount({ lang: "zh" });
    expect(byId("ernie-send").textContent).toBe("发送");
    expect(el.querySelector(".ernie-hint")?.textContent).toContain("Shift+Enter 换行");
    model.set("lang", "en");
    expect(byId("ernie-send").textContent).toBe("Send");
  });

  it("lang auto follows the browser language", () => {
    const spy = vi.spyOn(navigator, "language", "get").mockReturnValue("zh-CN");
    const { byId } = mount({ lang: "auto" });
    expect(byId("ernie-stop").textContent).toBe("停止");
    spy.mockRestore();
  });

  it("a remote image loads only when its placeholder is clicked", () => {
    const { el } = mount({ messages: [{ role: "assistant", content: "![chart](https://example.com/c.png)", mid: 1 }] });
    expect(el.querySelector("img")).toBeNull();
    el.querySelector<HTMLButtonElement>("button.ernie-image-blocked")?.click();
    const img = el.querySelector("img");
    expect(img?.getAttribute("src")).toBe("https://example.com/c.png");
    expect(img?.getAttribute("referrerpolicy")).toBe("no-referrer");
  });
});

describe("code blocks", () => {
  const answer = "Two blocks:\n\n```python\nprint(1)\n```\n\ntext\n\n```bash\nls -l\n```\n";

  it("get a Copy button whose tooltip names %ernie --paste N (no extension)", () => {
    const { el } = mount({ messages: [{ role: "assistant", content: answer, mid: 1 }] });
    const copies = Array.from(el.querySelectorAll<HTMLButtonElement>('[data-testid="ernie-copy"]'));
    expect(copies).toHaveLength(2);
    expect(copies[0].title).toContain("%ernie --paste 1");
    expect(copies[1].title).toContain("%ernie --paste 2");
    expect(el.querySelector("[data-ernie-action]")).toBeNull();
  });

  it("carry the answer's model and request id for the companion extension's provenance", () => {
    const { el } = mount({
      messages: [
        { role: "assistant", content: answer, mid: 1, model: "ernie-4.5-turbo-32k", request_id: "as-abc123" },
        { role: "assistant", content: answer, mid: 2, model: '"><img src=x onerror=alert(1)>', request_id: 7 },
      ],
    });
    const [first, second] = Array.from(el.querySelectorAll<HTMLElement>('[data-role="assistant"]'));
    const block = first.querySelector(".ernie-codeblock")!;
    expect(block.closest<HTMLElement>("[data-model]")!.dataset.model).toBe("ernie-4.5-turbo-32k");
    expect(block.closest<HTMLElement>("[data-request-id]")!.dataset.requestId).toBe("as-abc123");
    // the trait is untrusted: anything that is not a plain identifier is dropped
    expect(second.dataset.model).toBeUndefined();
    expect(second.dataset.requestId).toBeUndefined();
  });

  it("only the last answer's blocks name --paste", () => {
    const { el } = mount({
      messages: [
        { role: "assistant", content: "```py\nold\n```", mid: 1 },
        { role: "user", content: "more" },
        { role: "assistant", content: "```py\nnew\n```", mid: 2 },
      ],
    });
    const copies = Array.from(el.querySelectorAll<HTMLButtonElement>('[data-testid="ernie-copy"]'));
    expect(copies[0].title).not.toContain("--paste");
    expect(copies[1].title).toContain("%ernie --paste 1");
  });

  it("numbers fenced blocks only, as the kernel does (render.extract_code_blocks)", () => {
    const { el } = mount({ messages: [{ role: "assistant", content: "    indented\n\ntext\n\n```py\nfenced\n```\n", mid: 1 }] });
    const copies = Array.from(el.querySelectorAll<HTMLButtonElement>('[data-testid="ernie-copy"]'));
    expect(copies).toHaveLength(2);
    expect(copies[0].title).not.toContain("--paste");
    expect(copies[1].title).toContain("%ernie --paste 1");
    expect(Array.from(el.querySelectorAll<HTMLElement>(".ernie-codeblock")).map((w) => w.dataset.ernieBlock)).toEqual([undefined, "1"]);
  });

  it("an answer in flight names --paste only once it is in the transcript", async () => {
    const { el, model } = mount({ messages: [{ role: "user", content: "q" }] });
    await stream(model, 1, ["```py\nx = 1\n```\n\nafter\n"]);
    const copy = el.querySelector<HTMLButtonElement>('[data-testid="ernie-copy"]');
    expect(copy?.title).not.toContain("--paste");
    model.custom({ type: "done", mid: 1, status: "ok" });
    model.set("messages", [{ role: "user", content: "q" }, { role: "assistant", content: "```py\nx = 1\n```\n\nafter\n", mid: 1 }]);
    expect(el.querySelector<HTMLButtonElement>('[data-testid="ernie-copy"]')?.title).toContain("%ernie --paste 1");
  });

  it("copies the code text", async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    const { el } = mount({ messages: [{ role: "assistant", content: answer, mid: 1 }] });
    el.querySelectorAll<HTMLButtonElement>('[data-testid="ernie-copy"]')[1].click();
    expect(writeText).toHaveBeenCalledWith("ls -l\n");
  });

  it("get extension buttons only inside [data-ernie-extension]", () => {
    const host = document.createElement("div");
    host.setAttribute("data-ernie-extension", "1");
    document.body.append(host);
    const { el } = mount({ messages: [{ role: "assistant", content: answer, mid: 1 }] }, host);
    const block = el.querySelector(".ernie-codeblock");
    for (const [action, testid] of [
      ["insert-below", "ernie-insert-below"],
      ["replace-cell", "ernie-replace-cell"],
      ["run-in-new-cell", "ernie-run-cell"],
    ]) {
      const button = block?.querySelector(`[data-ernie-action="${action}"]`);
      expect(button?.getAttribute("data-testid")).toBe(testid);
    }
    expect(el.querySelectorAll("[data-ernie-action]")).toHaveLength(6);
    expect(block?.querySelector("pre code")?.textContent).toBe("print(1)\n");
    expect(el.querySelector<HTMLButtonElement>('[data-testid="ernie-copy"]')?.title).not.toContain("--paste");
    host.remove();
  });

  it("re-checks for the extension on each answer", async () => {
    const host = document.createElement("div");
    document.body.append(host);
    const { el, model } = mount({ messages: [] }, host);
    host.setAttribute("data-ernie-extension", "");
    await stream(model, 1, ["```py\nx = 1\n```\n\nafter\n"]);
    expect(el.querySelectorAll('[data-testid="ernie-insert-below"]')).toHaveLength(1);
    host.remove();
  });

  it("appear on a streamed block once it is closed", async () => {
    const { el, model } = mount();
    await stream(model, 1, ["```python\nprint(1)\n"]);
    expect(el.querySelector('[data-testid="ernie-copy"]')).toBeNull();
    model.custom({ type: "delta", mid: 1, seq: 1, text: "```\n\nDone.\n" });
    await frame();
    expect(el.querySelectorAll('[data-testid="ernie-copy"]')).toHaveLength(1);
  });
});

describe("autoscroll", () => {
  it("follows the answer, and pauses while the user has scrolled up", async () => {
    const { el, model } = mount();
    const log = el.querySelector<HTMLElement>(".ernie-log")!;
    let height = 1000;
    Object.defineProperty(log, "scrollHeight", { get: () => height, configurable: true });
    Object.defineProperty(log, "clientHeight", { get: () => 200, configurable: true });
    let top = 0;
    Object.defineProperty(log, "scrollTop", { get: () => top, set: (v: number) => (top = v), configurable: true });

    await stream(model, 1, ["a"]);
    expect(top).toBe(1000);

    top = 100; // the user scrolls up
    log.dispatchEvent(new Event("scroll"));
    height = 1500;
    model.custom({ type: "delta", mid: 1, seq: 1, text: " more\n\nlines" });
    await frame();
    expect(top).toBe(100);

    top = 1300; // back to the bottom
    log.dispatchEvent(new Event("scroll"));
    height = 1800;
    model.custom({ type: "delta", mid: 1, seq: 2, text: " again" });
    await frame();
    expect(top).toBe(1800);
  });
});
