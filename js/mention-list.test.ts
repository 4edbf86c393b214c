// @vitest-environment happy-dom
/** The @ suggestion list: opening, filtering, keys, mouse, busy and stale answers, and IME safety. */
import { describe, expect, it, vi } from "vitest";
import { COMPOSITION_GRACE_MS } from "./input";
import { BUSY_AFTER_MS, DEBOUNCE_MS, mentionQuery } from "./mention-list";
import { type Chat, mount, openList, texts, VARS } from "./test-chat";

describe("mentionQuery: the @name being typed", () => {
  it.each([
    ["@", { start: 0, query: "" }],
    ["look at @sal", { start: 8, query: "sal" }],
    ["分析@sal", { start: 2, query: "sal" }],
    ["(@Out[3]", { start: 1, query: "Out[3]" }],
    ["mail me at a@b", null],
    ["(a)@b", null],
    ["x[0]@w", null],
    ["@sales ", null],
    ["full-width ＠", null],
  ] as const)("%j → %j", (text, expected) => {
    expect(mentionQuery(text, text.length)).toEqual(expected);
  });
});

describe("the @ suggestion list", () => {
  it("opens on @, asks the kernel, and lists name  kind  size as an ARIA listbox", () => {
    const chat = mount();
    chat.type("plot ");
    expect(chat.of("variables")).toHaveLength(0);
    chat.type("@");
    expect(chat.of("variables")).toEqual([{ type: "variables", rid: 1, prefix: "" }]);
    expect(chat.list().hidden).toBe(false);
    expect(chat.list().textContent).toContain("Reading variables…");
    chat.kernel({ type: "variables", rid: 1, status: "ok", items: VARS });
    expect(texts(chat.options())).toEqual(VARS.map((v) => [v.name, v.kind, v.size]));
    const listbox = chat.el.querySelector('[role="listbox"]')!;
    expect(chat.input.getAttribute("aria-controls")).toBe(listbox.id);
    expect(chat.input.getAttribute("aria-activedescendant")).toBe(chat.options()[0].id);
    expect(chat.options()[0].getAttribute("aria-selected")).toBe("true");
    expect(listbox.getAttribute("aria-label")).toBe("Variables to mention");
  });

  it("filters as the name is typed, and asks again once typing pauses (debounced)", () => {
    vi.useFakeTimers();
    const chat = mount();
    openList(chat);
    chat.type("sa");
    expect(chat.options().map((o) => o.firstChild!.textContent)).toEqual(["sales", "sales_2023"]);
    expect(chat.of("variables")).toHaveLength(1);
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(chat.of("variables").at(-1)).toEqual({ type: "variables", rid: 2, prefix: "sa" });
    chat.type("x");
    expect(chat.options()).toHaveLength(0);
    expect(chat.list().textContent).toContain("No matching variables");
  });

  it("↑/↓ move the selection (wrapping), Enter chooses: the text gets @name and a mention is requested", () => {
    const chat = mount();
    chat.type("describe ");
    openList(chat);
    chat.key("ArrowDown");
    chat.key("ArrowDown");
    expect(chat.input.getAttribute("aria-activedescendant")).toBe(chat.options()[2].id);
    chat.key("ArrowUp");
    chat.key("ArrowUp");
    chat.key("ArrowUp");
    expect(chat.options()[3].getAttribute("aria-selected")).toBe("true");
    chat.key("ArrowDown");
    const enter = chat.key("Enter");
    expect(enter.defaultPrevented).toBe(true);
    expect(chat.input.value).toBe("describe @sales ");
    expect(chat.of("mention")).toEqual([{ type: "mention", rid: 1, name: "sales" }]);
    expect(chat.of("ask")).toHaveLength(0); // Enter chose; it did not send the message
    expect(chat.list().hidden).toBe(true);
    expect(chat.input.hasAttribute("aria-activedescendant")).toBe(false);
  });

  it("Tab chooses too", () => {
    const chat = mount();
    openList(chat);
    chat.type("sc");
    expect(chat.key("Tab").defaultPrevented).toBe(true);
    expect(chat.input.value).toBe("@scores ");
    expect(chat.of("mention").at(-1)?.name).toBe("scores");
  });

  it("a click on an option chooses it, without taking the focus from the input", () => {
    const chat = mount();
    openList(chat);
    const option = chat.options()[1];
    const down = new MouseEvent("mousedown", { bubbles: true, cancelable: true });
    option.dispatchEvent(down);
    expect(down.defaultPrevented).toBe(true);
    option.click();
    expect(chat.input.value).toBe("@sales_2023 ");
    expect(chat.of("mention").at(-1)?.name).toBe("sales_2023");
  });

  it("Esc closes the list (and does not cancel an edit); the next Enter sends the message", () => {
    const chat = mount({ messages: [{ role: "user", content: "q" }, { role: "assistant", content: "a", mid: 1 }] });
    chat.el.querySelector<HTMLButtonElement>(".ernie-edit")!.click();
    chat.type(" ");
    openList(chat);
    expect(chat.key("Escape").defaultPrevented).toBe(true);
    expect(chat.list().hidden).toBe(true);
    expect(chat.el.querySelector<HTMLElement>(".ernie-editing")!.hidden).toBe(false);
    chat.key("Enter");
    expect(chat.of("mention")).toHaveLength(0);
    expect(chat.of("edit")).toEqual([{ type: "edit", text: "q @" }]);
  });

  it("closes when the caret leaves the @name (a space typed)", () => {
    const chat = mount();
    openList(chat);
    chat.type(" ");
    expect(chat.list().hidden).toBe(true);
    expect(chat.input.hasAttribute("aria-controls")).toBe(false);
  });

  it("a busy kernel shows 'kernel busy' instead of waiting; so does no answer at all", () => {
    vi.useFakeTimers();
    const chat = mount({ lang: "zh" });
    chat.type("@");
    chat.kernel({ type: "variables", rid: 1, status: "busy", items: [] });
    expect(chat.list().textContent).toBe("内核忙");
    expect(chat.options()).toHaveLength(0);
    chat.key("Escape");
    chat.type(" @");
    expect(chat.list().textContent).toBe("正在读取变量…");
    vi.advanceTimersByTime(BUSY_AFTER_MS);
    expect(chat.list().textContent).toBe("内核忙");
  });

  it("ignores stale answers (an older rid) and answers when closed", () => {
    vi.useFakeTimers();
    const chat = mount();
    chat.type("@");
    chat.type("s");
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(chat.of("variables").map((m) => m.rid)).toEqual([1, 2]);
    chat.kernel({ type: "variables", rid: 2, status: "ok", items: VARS.slice(0, 3) });
    chat.kernel({ type: "variables", rid: 1, status: "ok", items: [{ name: "stale", kind: "int", size: "" }] });
    expect(chat.options().map((o) => o.firstChild!.textContent)).toEqual(["sales", "sales_2023", "scores"]);
    chat.key("Escape");
    chat.kernel({ type: "variables", rid: 2, status: "ok", items: VARS });
    expect(chat.options()).toHaveLength(0);
  });

  it("shows names and kinds as text: no markup from the kernel's answer", () => {
    const chat = mount();
    openList(chat, [{ name: "x", kind: "<img src=x onerror=alert(1)>", size: "<b>9</b>" }]);
    expect(chat.el.querySelector("img, b")).toBeNull();
    expect(chat.options()[0].textContent).toContain("<img src=x onerror=alert(1)>");
  });

  it("does not open for an e-mail address or a pasted @", () => {
    const chat = mount();
    chat.type("a@b");
    chat.input.value += " @";
    chat.input.dispatchEvent(new InputEvent("input", { inputType: "insertFromPaste", data: "@", bubbles: true }));
    expect(chat.of("variables")).toHaveLength(0);
    expect(chat.list().hidden).toBe(true);
  });
});

describe("the @ list is IME-safe", () => {
  const compose = (chat: Chat, type: "compositionstart" | "compositionend", data = "") =>
    chat.input.dispatchEvent(new CompositionEvent(type, { data, bubbles: true }));

  it("an @ inside a composition (compositionstart … compositionend) opens nothing", () => {
    const chat = mount();
    compose(chat, "compositionstart");
    chat.type("@", { inputType: "insertCompositionText", isComposing: true });
    chat.type("s", { inputType: "insertCompositionText", isComposing: true });
    compose(chat, "compositionend", "@s");
    // some browsers report the committed text as plain insertText right after compositionend
    chat.type("@");
    expect(chat.of("variables")).toHaveLength(0);
    expect(chat.list().hidden).toBe(true);
  });

  it("an @ typed while our composition flag is set opens nothing, even when the event says insertText", () => {
    const chat = mount();
    compose(chat, "compositionstart");
    chat.type("@");
    expect(chat.of("variables")).toHaveLength(0);
  });

  it("a full-width ＠ (what a Chinese IME commits) opens nothing", () => {
    const chat = mount();
    chat.type("＠");
    expect(chat.of("variables")).toHaveLength(0);
  });

  it("an @ typed after the composition's grace period opens the list", () => {
    vi.useFakeTimers();
    const chat = mount();
    compose(chat, "compositionstart");
    compose(chat, "compositionend", "你好");
    vi.advanceTimersByTime(COMPOSITION_GRACE_MS + 10);
    chat.type("@");
    expect(chat.of("variables")).toHaveLength(1);
  });

  it("Enter while composing (isComposing or keyCode 229) neither picks nor sends", () => {
    const chat = mount();
    openList(chat);
    expect(chat.key("Enter", { isComposing: true }).defaultPrevented).toBe(false);
    chat.key("Enter", { keyCode: 229 });
    chat.key("Tab", { keyCode: 229 });
    compose(chat, "compositionstart");
    chat.key("Enter");
    chat.key("ArrowDown");
    expect(chat.options()[0].getAttribute("aria-selected")).toBe("true");
    expect(chat.of("mention")).toHaveLength(0);
    expect(chat.of("ask")).toHaveLength(0);
    expect(chat.list().hidden).toBe(false);
  });

  it("text composed while the list is open does not filter until it is committed", () => {
    vi.useFakeTimers();
    const chat = mount();
    openList(chat);
    compose(chat, "compositionstart");
    chat.type("s", { inputType: "insertCompositionText", isComposing: true });
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(chat.of("variables")).toHaveLength(1);
    compose(chat, "compositionend", "s");
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(chat.of("variables").at(-1)).toMatchObject({ prefix: "s" });
  });
});
