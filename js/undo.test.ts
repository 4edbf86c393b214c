import { describe, expect, it } from "vitest";
import { mount } from "./test-chat";

function trustedClick(el: HTMLElement): void {
  const event = new MouseEvent("click", { bubbles: true, cancelable: true });
  Object.defineProperty(event, "isTrusted", { value: true });
  el.dispatchEvent(event);
}

describe("undo after deleting a turn", () => {
  it("offers Undo, and only a real click sends undo_delete", () => {
    const chat = mount({ lang: "zh" });
    chat.kernel({ type: "deleted", index: 0, count: 2 });
    const notice = chat.el.querySelector<HTMLElement>(".ernie-notice")!;
    expect(notice.hidden).toBe(false);
    expect(notice.textContent).toContain("已删除这一轮");
    const undo = notice.querySelector<HTMLButtonElement>(".ernie-notice-action")!;
    expect(undo.textContent).toBe("撤销");
    undo.click(); // page script, not the user
    undo.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(chat.of("undo_delete")).toHaveLength(0);
    trustedClick(undo);
    expect(chat.of("undo_delete")).toHaveLength(1);
    expect(notice.hidden).toBe(true);
  });

  it("a plain notice has no button", () => {
    const chat = mount();
    chat.kernel({ type: "deleted", index: 0, count: 2 });
    chat.kernel({ type: "notice", text: "cannot undo: the conversation changed" });
    const notice = chat.el.querySelector<HTMLElement>(".ernie-notice")!;
    expect(notice.textContent).toBe("cannot undo: the conversation changed");
    expect(notice.querySelector("button")).toBeNull();
  });
});
