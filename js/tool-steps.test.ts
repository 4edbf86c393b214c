import { afterEach, describe, expect, it, vi } from "vitest";
import { type Chat, mount } from "./test-chat";

function trustedClick(el: HTMLElement): void {
  const event = new MouseEvent("click", { bubbles: true, cancelable: true });
  Object.defineProperty(event, "isTrusted", { value: true });
  el.dispatchEvent(event);
}

const CODE = "agent_x = 41 + 1";
const SHA = "a".repeat(64);

function step(extra: Record<string, unknown> = {}) {
  return { type: "tool_step", mid: 1, call_id: "1.1.c1", name: "run_python", code_or_arguments: CODE, sha256: SHA, status: "waiting", read_only: false, ...extra };
}

const steps = (chat: Chat) => Array.from(chat.el.querySelectorAll<HTMLDetailsElement>('[data-testid="ernie-tool-step"]'));
const byId = (chat: Chat, id: string) => chat.el.querySelector<HTMLButtonElement>(`[data-testid="${id}"]`);

function waiting(extra: Record<string, unknown> = {}) {
  const chat = mount();
  chat.kernel({ type: "start", mid: 1 });
  chat.kernel(step(extra));
  return chat;
}

describe("tool steps", () => {
  it("renders each status with its label, the tool name and the code as text", () => {
    const chat = mount({ lang: "zh" });
    chat.kernel({ type: "start", mid: 1 });
    const labels: Record<string, string> = { waiting: "等待批准", running: "运行中…", done: "完成", failed: "失败", skipped: "已跳过" };
    for (const status of Object.keys(labels)) chat.kernel(step({ call_id: `1.1.${status}`, status, result: status === "done" ? "42" : undefined }));
    const shown = steps(chat);
    expect(shown.map((s) => s.dataset.status)).toEqual(Object.keys(labels));
    expect(shown.map((s) => s.querySelector(".ernie-tool-status")!.textContent)).toEqual(Object.values(labels));
    expect(shown[0].closest('[data-role="assistant"]')!.getAttribute("data-mid")).toBe("1");
    expect(shown[0].querySelector("summary code")!.textContent).toBe("run_python");
    expect(shown[0].querySelector(".ernie-tool-code")!.textContent).toBe(CODE);
    expect(shown[0].querySelector(".ernie-tool-code .hljs-number")).not.toBeNull(); // highlighted
    expect(shown[2].querySelector('[data-testid="ernie-tool-result"]')!.textContent).toBe("42");
    // only the waiting step asks
    expect(chat.el.querySelectorAll('[data-testid="ernie-tool-approve"]').length).toBe(1);
    chat.set("lang", "en");
    expect(steps(chat)[1].querySelector(".ernie-tool-status")!.textContent).toBe("Running…");
  });

  it("keeps markup in code, arguments and results as text; loads no remote image", () => {
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>';
    const chat = waiting({ status: "done", code_or_arguments: `print('${evil}')`, result: evil, images: ["https://evil.example/x.png", "data:image/svg+xml;base64,PHN2Zz4=", "data:image/png;base64,iVBORw0KGgo="] });
    const s = steps(chat)[0];
    expect(s.querySelector('[data-testid="ernie-tool-result"]')!.textContent).toBe(evil);
    expect(s.querySelector(".ernie-tool-code")!.textContent).toBe(`print('${evil}')`);
    expect(s.querySelector("script")).toBeNull();
    expect(Array.from(s.querySelectorAll("img"), (i) => i.getAttribute("src"))).toEqual(["data:image/png;base64,iVBORw0KGgo="]);
    expect((window as unknown as { __pwned?: number }).__pwned).toBeUndefined();
  });

  it("a read-only step has no approval card", () => {
    const chat = waiting({ name: "describe", read_only: true, code_or_arguments: '{"name": "df"}' });
    expect(steps(chat)).toHaveLength(1);
    expect(byId(chat, "ernie-tool-approve")).toBeNull();
  });

  it("Run sends approve with the shown call_id and sha256, only on a real click", () => {
    const chat = waiting();
    expect(chat.el.querySelector(".ernie-live")!.textContent).toBe("Waiting for approval: run_python");
    const run = byId(chat, "ernie-tool-approve")!;
    run.click(); // page script, not the user
    run.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(chat.of("approve")).toEqual([]);
    trustedClick(run);
    expect(chat.of("approve")).toEqual([{ type: "approve", call_id: "1.1.c1", sha256: SHA, decision: "run" }]);
    trustedClick(run); // decided: the buttons are disabled
    expect(chat.of("approve")).toHaveLength(1);
  });

  it("Edit turns the code into a textarea; Run then sends decision edit with the new code", () => {
    const chat = waiting();
    byId(chat, "ernie-tool-edit")!.click();
    expect(chat.el.querySelector("textarea.ernie-tool-editor")).toBeNull();
    trustedClick(byId(chat, "ernie-tool-edit")!);
    const area = chat.el.querySelector<HTMLTextAreaElement>('[data-testid="ernie-tool-editor"]')!;
    expect(area.value).toBe(CODE);
    area.value = "agent_x = 1";
    byId(chat, "ernie-tool-approve")!.click();
    expect(chat.of("approve")).toEqual([]);
    trustedClick(byId(chat, "ernie-tool-approve")!);
    expect(chat.of("approve")).toEqual([{ type: "approve", call_id: "1.1.c1", sha256: SHA, decision: "edit", code: "agent_x = 1" }]);
  });

  it("Skip sends decision skip only on a real click", () => {
    const chat = waiting();
    const skip = byId(chat, "ernie-tool-deny")!;
    skip.click();
    expect(chat.of("approve")).toEqual([]);
    trustedClick(skip);
    expect(chat.of("approve")).toEqual([{ type: "approve", call_id: "1.1.c1", sha256: SHA, decision: "skip" }]);
  });

  it("a later tool_step for the same call_id replaces the card; the sha256 sent is the one shown", () => {
    const chat = waiting();
    const other = "b".repeat(64);
    chat.kernel(step({ code_or_arguments: "agent_x = 0", sha256: other }));
    expect(steps(chat)).toHaveLength(1);
    expect(steps(chat)[0].querySelector(".ernie-tool-code")!.textContent).toBe("agent_x = 0");
    trustedClick(byId(chat, "ernie-tool-approve")!);
    expect(chat.of("approve")[0].sha256).toBe(other);
    chat.kernel(step({ status: "running", sha256: other }));
    expect(steps(chat)).toHaveLength(1);
    expect(byId(chat, "ernie-tool-approve")).toBeNull();
    expect(steps(chat)[0].dataset.status).toBe("running");
  });

  it("a re-created view (hello) shows the step in flight", () => {
    const chat = mount();
    expect(chat.of("hello")).toHaveLength(1);
    chat.kernel({ type: "resync", mid: 3, seq: 1, text: "Let me compute.", reasoning: "" });
    chat.kernel(step({ mid: 3, call_id: "3.1.c1" }));
    const s = steps(chat);
    expect(s).toHaveLength(1);
    expect(s[0].open).toBe(true);
    expect(s[0].closest('[data-role="assistant"]')!.getAttribute("data-mid")).toBe("3");
    trustedClick(byId(chat, "ernie-tool-approve")!);
    expect(chat.of("approve")[0].call_id).toBe("3.1.c1");
  });

  it("a reloaded transcript shows stored steps collapsed, with no empty bubble for the round", () => {
    const messages = [
      { role: "user", content: "compute" },
      { role: "assistant", content: "", mid: 4, tool_calls: [{ id: "c1", type: "function", function: { name: "run_python", arguments: '{"code": "x"}' } }] },
      { role: "tool", content: "<b>42</b>", mid: 4, tool_call_id: "c1", name: "run_python", step_status: "done", code_or_arguments: CODE, sha256: SHA, images: ["data:image/jpeg;base64,/9j/"] },
      { role: "assistant", content: "", mid: 4, tool_calls: [{ id: "c2", type: "function", function: { name: "run_python", arguments: "{}" } }] },
      { role: "tool", content: "not run", mid: 4, tool_call_id: "c2", name: "run_python", step_status: "skipped", code_or_arguments: "rm()", sha256: SHA },
      { role: "assistant", content: "done", mid: 4 },
    ];
    const chat = mount({ messages });
    const bubbles = chat.el.querySelectorAll('[data-role="assistant"]');
    expect(bubbles).toHaveLength(1);
    expect(bubbles[0].querySelector(".ernie-answer")!.textContent!.trim()).toBe("done");
    const s = steps(chat);
    expect(s.map((x) => [x.dataset.status, x.open])).toEqual([["done", false], ["skipped", false]]);
    expect(s[0].querySelector('[data-testid="ernie-tool-result"]')!.textContent).toBe("<b>42</b>");
    expect(s[0].querySelector("b")).toBeNull();
    expect(s[0].querySelectorAll("img")).toHaveLength(1);
    expect(byId(chat, "ernie-tool-approve")).toBeNull();
    // a stopped turn whose last message is the round: that message is the bubble, its steps shown in it
    chat.set("messages", messages.slice(0, 3));
    expect(chat.el.querySelectorAll('[data-role="assistant"]')).toHaveLength(1);
    expect(steps(chat)).toHaveLength(1);
  });

  it("the stored steps replace the live ones once the answer is in the transcript", () => {
    const chat = waiting({ status: "done", result: "42" });
    chat.set("messages", [
      { role: "user", content: "q" },
      { role: "assistant", content: "", mid: 1, tool_calls: [{ id: "c1", type: "function", function: { name: "run_python", arguments: "{}" } }] },
      { role: "tool", content: "42", mid: 1, tool_call_id: "c1", name: "run_python", step_status: "done", code_or_arguments: CODE, sha256: SHA },
      { role: "assistant", content: "done", mid: 1 },
    ]);
    expect(steps(chat)).toHaveLength(1);
    expect(chat.el.querySelectorAll(".ernie-tool-steps")).toHaveLength(1);
    expect(chat.el.querySelectorAll('[data-role="assistant"]')).toHaveLength(1);
  });

  it("the auto_approve badge follows the trait", () => {
    const chat = mount({ lang: "zh" });
    const badge = byId(chat, "ernie-auto-approve")!;
    expect(badge.hidden).toBe(true);
    chat.set("auto_approve", true);
    expect(badge.hidden).toBe(false);
    expect(badge.textContent).toBe("自动运行工具");
    chat.set("lang", "en");
    expect(badge.textContent).toBe("Auto-running tools");
    chat.set("auto_approve", false);
    expect(badge.hidden).toBe(true);
  });
});

describe("insert_cell", () => {
  const insert = (extra: Record<string, unknown> = {}) => waiting({ name: "insert_cell", code_or_arguments: CODE, ...extra });
  afterEach(() => {
    document.body.removeAttribute("data-ernie-extension");
    vi.useRealTimers();
  });

  it("with the extension: an Insert button in the extension's contract; only a real click reports it", () => {
    vi.useFakeTimers();
    document.body.setAttribute("data-ernie-extension", "");
    const chat = insert();
    vi.runAllTimers();
    const button = byId(chat, "ernie-tool-insert")!;
    // what labextension/src/actions.ts reads: a [data-ernie-action] button in .ernie-codeblock in .ernie-chat
    expect(button.getAttribute("data-ernie-action")).toBe("insert-below");
    const block = button.closest(".ernie-codeblock")!;
    expect(block.closest(".ernie-chat")).not.toBeNull();
    expect(block.querySelector("pre code")!.textContent).toBe(CODE);
    expect(byId(chat, "ernie-tool-approve")).toBeNull(); // no Run / Edit for a cell
    button.click(); // synthetic: ignored
    expect(chat.of("approve")).toEqual([]);
    trustedClick(button);
    expect(chat.of("approve")).toEqual([{ type: "approve", call_id: "1.1.c1", sha256: SHA, decision: "run" }]);
  });

  it("without the extension: no button, and the view skips the call saying why", () => {
    vi.useFakeTimers();
    const chat = insert();
    vi.runAllTimers();
    expect(byId(chat, "ernie-tool-insert")).toBeNull();
    expect(chat.of("approve")).toEqual([{ type: "approve", call_id: "1.1.c1", sha256: SHA, decision: "skip", reason: "no_extension" }]);
    expect(steps(chat)[0].querySelector(".ernie-tool-card")!.textContent).toContain("extension is not present");
    chat.set("lang", "zh"); // a re-render does not report again
    vi.runAllTimers();
    expect(chat.of("approve")).toHaveLength(1);
  });
});
