// @vitest-environment happy-dom
/** A sent message's @-mentions in the transcript: chips and the exact context text, never HTML. */
import { describe, expect, it } from "vitest";
import { mount, SALES } from "./test-chat";

describe("the context of a sent message in the transcript", () => {
  const EVIL = "<img src=x onerror=\"window.hacked=1\"><script>window.hacked=2</script>";

  it("shows the chips under the text and each item's exact text, as text, in a collapsible Context section", () => {
    const { el } = mount({
      messages: [
        { role: "user", content: "why?", context: [SALES, { name: "error", label: "ZeroDivisionError", tokens: 40, text: EVIL, shortened: true }] },
        { role: "assistant", content: "because", mid: 1 },
      ],
    });
    const section = el.querySelector('[data-role="user"] [data-testid="ernie-context"]') as HTMLElement;
    expect(section.hidden).toBe(false);
    expect(Array.from(section.querySelectorAll(".ernie-chips .ernie-chip"), (c) => c.textContent)).toEqual([
      "@sales DataFrame 12,000 × 7 · 850 tok",
      "@error ZeroDivisionError · 40 tok · shortened",
    ]);
    const details = section.querySelector("details")!;
    expect(details.open).toBe(false);
    expect(details.querySelector("summary")!.textContent).toBe("Context");
    const pres = Array.from(details.querySelectorAll("pre"));
    expect(pres.map((p) => p.textContent)).toEqual([SALES.text, EVIL]);
    expect(el.querySelector("img, script")).toBeNull();
    expect((window as unknown as { hacked?: number }).hacked).toBeUndefined();
  });

  it("validates the stored context (it may come from a saved notebook) and relabels with the language", () => {
    const chat = mount({
      messages: [{ role: "user", content: "q", context: [null, "x", { name: "a" }, { name: "b", label: 5, tokens: "9", text: "B" }, SALES] }],
    });
    const pres = Array.from(chat.el.querySelectorAll(".ernie-context pre"), (p) => p.textContent);
    expect(pres).toEqual(["B", SALES.text]);
    chat.set("lang", "zh");
    expect(chat.el.querySelector(".ernie-context summary")!.textContent).toBe("上下文");
  });

  it("shows nothing for a message without context, and updates when the context changes", () => {
    const chat = mount({ messages: [{ role: "user", content: "q" }] });
    const section = chat.el.querySelector<HTMLElement>('[data-testid="ernie-context"]')!;
    expect(section.hidden).toBe(true);
    chat.set("messages", [{ role: "user", content: "q", context: [SALES] }]);
    expect(chat.el.querySelector<HTMLElement>('[data-testid="ernie-context"]')!.hidden).toBe(false);
  });
});
