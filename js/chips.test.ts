// @vitest-environment happy-dom
/** The @-mention chips above the input (preview, removal, budget, the ask's mentions) and "Fix last error". */
import { describe, expect, it, vi } from "vitest";
import { MENTION_TIMEOUT_MS } from "./chips";
import { addChip, mount, openList, SALES, VARS } from "./test-chat";

describe("mention chips", () => {
  it("an answer adds a chip: label and token estimate, and the total against the default budget", () => {
    const chat = mount();
    addChip(chat, SALES, 7);
    expect(chat.chips().map((c) => c.querySelector(".ernie-chip-label")!.textContent)).toEqual(["@sales DataFrame 12,000 × 7 · 850 tok"]);
    expect(chat.el.querySelector('[data-testid="ernie-chips-budget"]')!.textContent).toBe("850 / 4,000 tokens of context");
  });

  it("clicking a chip shows exactly its text, as text; clicking again collapses it", () => {
    const chat = mount();
    const text = "col <img src=x onerror=\"window.hacked=1\">\n  indented\tTAB  \n";
    addChip(chat, { ...SALES, text }, 7);
    const label = chat.chips()[0].querySelector<HTMLButtonElement>(".ernie-chip-label")!;
    const preview = chat.el.querySelector<HTMLElement>('[data-testid="ernie-chip-preview"]')!;
    expect(preview.hidden).toBe(true);
    label.click();
    expect(preview.hidden).toBe(false);
    expect(preview.textContent).toBe(text);
    expect(preview.querySelector("img")).toBeNull();
    expect(chat.chips()[0].querySelector(".ernie-chip-label")!.getAttribute("aria-expanded")).toBe("true");
    expect(chat.chips()[0].querySelector(".ernie-chip-label")!.getAttribute("aria-controls")).toBe(preview.id);
    chat.chips()[0].querySelector<HTMLButtonElement>(".ernie-chip-label")!.click();
    expect(preview.hidden).toBe(true);
  });

  it("× removes the chip and tells the kernel (unmention)", () => {
    const chat = mount();
    addChip(chat, SALES, 7);
    chat.chips()[0].querySelector<HTMLButtonElement>(".ernie-chip-label")!.click();
    const remove = chat.chips()[0].querySelector<HTMLButtonElement>(".ernie-chip-remove")!;
    expect(remove.getAttribute("aria-label")).toBe("Remove @sales");
    remove.click();
    expect(chat.chips()).toHaveLength(0);
    expect(chat.of("unmention")).toEqual([{ type: "unmention", cid: 7 }]);
    expect(chat.el.querySelector<HTMLElement>('[data-testid="ernie-chip-preview"]')!.hidden).toBe(true);
  });

  it("the ask carries the chips' cids in order, the chips clear, and the sent bubble shows them", () => {
    const chat = mount();
    addChip(chat, SALES, 7);
    addChip(chat, { name: "scores", label: "ndarray 100", tokens: 120, text: "array([1, 2, 3])" }, 9);
    chat.type("compare them");
    chat.key("Enter");
    expect(chat.of("ask")).toEqual([{ type: "ask", text: "@sales @scores compare them", mentions: [7, 9] }]);
    expect(chat.chips()).toHaveLength(0);
    expect(chat.el.querySelector<HTMLElement>('[data-testid="ernie-chips-budget"]')!.hidden).toBe(true);
    const pending = chat.el.querySelector(".ernie-pending [data-testid='ernie-context']")!;
    expect(Array.from(pending.querySelectorAll(".ernie-chip"), (c) => c.textContent)).toEqual([
      "@sales DataFrame 12,000 × 7 · 850 tok",
      "@scores ndarray 100 · 120 tok",
    ]);
    // the next message goes without them
    chat.kernel({ type: "start", mid: 1 });
    chat.kernel({ type: "done", mid: 1, status: "ok" });
    chat.set("messages", [{ role: "user", content: "@sales @scores compare them" }, { role: "assistant", content: "ok", mid: 1 }]);
    chat.type("and now?");
    chat.key("Enter");
    expect(chat.of("ask").at(-1)).toEqual({ type: "ask", text: "and now?" });
  });

  it("warns (without blocking) when the chips are over the context_budget trait, and follows its changes", () => {
    const chat = mount({ context_budget: 1000 });
    addChip(chat, SALES, 7);
    const budget = chat.el.querySelector<HTMLElement>('[data-testid="ernie-chips-budget"]')!;
    expect(budget.textContent).toBe("850 / 1,000 tokens of context");
    expect(budget.classList.contains("ernie-over")).toBe(false);
    addChip(chat, { name: "scores", label: "ndarray 100", tokens: 300, text: "…" }, 8);
    expect(budget.textContent).toBe("1,150 / 1,000 tokens of context · over the budget: the largest items will be shortened");
    expect(budget.classList.contains("ernie-over")).toBe(true);
    chat.set("context_budget", 2000);
    expect(budget.classList.contains("ernie-over")).toBe(false);
    chat.type("go");
    chat.key("Enter");
    expect(chat.of("ask").at(-1)).toMatchObject({ mentions: [7, 8] });
  });

  it("an error answer shows its message briefly; a busy one says the kernel is busy", () => {
    vi.useFakeTimers();
    const chat = mount();
    const notice = chat.el.querySelector<HTMLElement>(".ernie-notice")!;
    openList(chat);
    chat.key("Enter");
    chat.kernel({ type: "mention", rid: 1, status: "error", error: "sales is gone" });
    expect(chat.chips()).toHaveLength(0);
    expect(notice.hidden).toBe(false);
    expect(notice.textContent).toBe("@sales: sales is gone");
    vi.advanceTimersByTime(10_000);
    expect(notice.hidden).toBe(true);
    chat.type(" @");
    chat.kernel({ type: "variables", rid: chat.of("variables").at(-1)!.rid, status: "ok", items: VARS });
    chat.key("Enter");
    chat.kernel({ type: "mention", rid: 2, status: "busy" });
    expect(notice.textContent).toBe("Kernel busy");
  });

  it("the ask waits for a chip on its way; one not answered in time is dropped, and unmentioned if it comes late", () => {
    vi.useFakeTimers();
    const chat = mount();
    openList(chat);
    chat.key("Enter");
    const send = chat.el.querySelector<HTMLButtonElement>('[data-testid="ernie-send"]')!;
    expect(chat.el.querySelector(".ernie-chip-pending")?.textContent).toBe("@sales …");
    expect(send.disabled).toBe(true);
    chat.key("Enter");
    expect(chat.of("ask")).toHaveLength(0);
    vi.advanceTimersByTime(MENTION_TIMEOUT_MS);
    expect(send.disabled).toBe(false);
    expect(chat.el.querySelector(".ernie-chip-pending")).toBeNull();
    chat.kernel({ type: "mention", rid: 1, status: "ok", cid: 4, item: SALES });
    expect(chat.chips()).toHaveLength(0);
    expect(chat.of("unmention")).toEqual([{ type: "unmention", cid: 4 }]);
  });

  it("ignores answers it did not ask for, malformed items, and a second chip for the same name", () => {
    const chat = mount();
    chat.kernel({ type: "mention", rid: 99, status: "ok", cid: 1, item: SALES });
    addChip(chat, { ...SALES, text: 42 }, 3);
    expect(chat.chips()).toHaveLength(0);
    addChip(chat, SALES, 5);
    chat.type(" @");
    chat.kernel({ type: "variables", rid: chat.of("variables").at(-1)!.rid, status: "ok", items: VARS });
    chat.key("Enter");
    expect(chat.of("mention")).toHaveLength(2);
    expect(chat.chips()).toHaveLength(1);
  });
});

describe("Fix last error", () => {
  const trustedClick = (el: HTMLElement) => {
    const event = new MouseEvent("click", { bubbles: true, cancelable: true });
    Object.defineProperty(event, "isTrusted", { value: true });
    el.dispatchEvent(event);
  };

  it("appears for a last_error summary (as its title), and hides for null", () => {
    const chat = mount({ lang: "zh" });
    const fix = chat.el.querySelector<HTMLButtonElement>('[data-testid="ernie-fix-error"]')!;
    expect(fix.hidden).toBe(true);
    chat.kernel({ type: "last_error", summary: "ZeroDivisionError: division by zero" });
    expect(fix.hidden).toBe(false);
    expect(fix.textContent).toBe("修复上一个错误");
    expect(fix.title).toBe("ZeroDivisionError: division by zero");
    chat.kernel({ type: "last_error", summary: null });
    expect(fix.hidden).toBe(true);
  });

  it("a real click adds an error mention and puts the fix request in the input; a scripted click does nothing", () => {
    const chat = mount();
    chat.kernel({ type: "last_error", summary: "NameError: name 'x' is not defined" });
    const fix = chat.el.querySelector<HTMLButtonElement>('[data-testid="ernie-fix-error"]')!;
    fix.click();
    fix.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(chat.of("mention")).toHaveLength(0);
    expect(chat.input.value).toBe("");
    trustedClick(fix);
    expect(chat.of("mention")).toEqual([{ type: "mention", rid: 1, name: "error" }]);
    expect(chat.input.value).toBe("Fix this error");
    expect(fix.hidden).toBe(true);
    const item = { name: "error", label: "NameError", tokens: 60, text: "Traceback …\nNameError: name 'x' is not defined" };
    chat.kernel({ type: "mention", rid: 1, status: "ok", cid: 2, item });
    chat.key("Enter");
    expect(chat.of("ask")).toEqual([{ type: "ask", text: "Fix this error", mentions: [2] }]);
  });
});
