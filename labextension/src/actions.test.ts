/**
 * The click contract, checked against the widget's own toolbar code (js/code-tools.ts), so a change on either
 * side of the contract fails here.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { EXTENSION_ACTIONS, syncCodeTools, wrapCodeBlocks } from "../../js/code-tools";
import { translator } from "../../js/i18n";
import { ACTIONS, actionFromEvent, codeOfBlock, interruptFromEvent, parseAction, provenanceOf } from "./actions";

const CODE = 'def f(x):\n    return {"a": x} < 3 && `tick`\n\nprint(f(1))\n';
const NOW = new Date("2026-01-02T03:04:05.000Z");

/** A notebook panel with one ErnieChat answer holding one code block, built with the widget's own helpers. */
function chatFixture(): { panel: HTMLElement; chat: HTMLElement; block: HTMLElement } {
  document.body.innerHTML = "";
  const panel = document.createElement("div");
  panel.setAttribute("data-ernie-extension", "");
  panel.innerHTML = `
    <div class="jp-Cell"><div class="jp-OutputArea"><div class="ernie-chat">
      <span class="ernie-model">ERNIE 4.5 Turbo</span>
      <div class="ernie-msg" data-mid="3"><div class="ernie-answer">
        <pre class="ernie-code"><code class="language-python hljs"></code></pre>
      </div></div>
    </div></div></div>`;
  document.body.append(panel);
  // Highlighted code, as highlight.js leaves it: the text is split across spans.
  const code = panel.querySelector("pre code")!;
  const [first, ...rest] = CODE.split("\n");
  const kw = document.createElement("span");
  kw.className = "hljs-keyword";
  kw.textContent = first.slice(0, 3);
  code.append(kw, first.slice(3) + "\n" + rest.join("\n"));
  const [block] = wrapCodeBlocks([panel.querySelector(".ernie-answer")!]);
  syncCodeTools(block, 1, true, true, translator("en"));
  return { panel, chat: panel.querySelector<HTMLElement>(".ernie-chat")!, block };
}

/** A click as the browser delivers it for a real user gesture (an Event cannot be made trusted from script). */
function trustedClick(target: Element): Event {
  return { type: "click", isTrusted: true, target } as unknown as Event;
}

function button(root: Element, action: string): HTMLButtonElement {
  return root.querySelector<HTMLButtonElement>(`[data-ernie-action="${action}"]`)!;
}

describe("parseAction", () => {
  it("accepts exactly the three actions", () => {
    expect(ACTIONS.map(parseAction)).toEqual(["insert-below", "replace-cell", "run-in-new-cell"]);
    for (const bad of [null, undefined, "", "copy", "Insert-Below", "insert-below ", "run"]) {
      expect(parseAction(bad)).toBeNull();
    }
  });

  it("matches the buttons the widget draws", () => {
    expect(EXTENSION_ACTIONS.map((a) => parseAction(a.action))).toEqual([...ACTIONS]);
    const { block } = chatFixture();
    const drawn = Array.from(block.querySelectorAll("[data-ernie-action]"), (b) => b.getAttribute("data-ernie-action"));
    expect(drawn).toEqual([...ACTIONS]);
    expect(Array.from(block.querySelectorAll("[data-ernie-action]"), (b) => b.getAttribute("data-testid")))
      .toEqual(["ernie-insert-below", "ernie-replace-cell", "ernie-run-cell"]);
  });
});

describe("codeOfBlock", () => {
  it("reads the code text the Copy button copies, without the fence's trailing newline", () => {
    const { block } = chatFixture();
    expect(codeOfBlock(block)).toBe(CODE.replace(/\n+$/, ""));
    expect(codeOfBlock(block)).not.toContain("Copy");
  });

  it("keeps inner blank lines and leading indentation", () => {
    const { block } = chatFixture();
    block.querySelector("pre code")!.textContent = "\n    x = 1\n\n\n    y = 2\n\n";
    expect(codeOfBlock(block)).toBe("\n    x = 1\n\n\n    y = 2");
  });

  it("is null for a block without pre > code", () => {
    const div = document.createElement("div");
    div.innerHTML = "<pre>no code element</pre>";
    expect(codeOfBlock(div)).toBeNull();
  });
});

describe("actionFromEvent", () => {
  let fx: ReturnType<typeof chatFixture>;
  beforeEach(() => {
    fx = chatFixture();
  });

  it("turns a trusted click on each button into a request with the block's code", () => {
    for (const action of ACTIONS) {
      const req = actionFromEvent(trustedClick(button(fx.block, action)), fx.panel, NOW);
      expect(req).not.toBeNull();
      expect(req!.action).toBe(action);
      expect(req!.code).toBe(CODE.replace(/\n+$/, ""));
      expect(req!.chat).toBe(fx.chat);
      expect(req!.provenance).toEqual({ model: "ERNIE 4.5 Turbo", request_id: null, time: NOW.toISOString(),
                                        source: `chat:${action}` });
    }
  });

  it("accepts a click on a child of the button", () => {
    const inner = document.createElement("span");
    button(fx.block, "replace-cell").append(inner);
    expect(actionFromEvent(trustedClick(inner), fx.panel)?.action).toBe("replace-cell");
  });

  it("ignores every synthetic event: dispatchEvent and element.click()", () => {
    const seen: Array<ReturnType<typeof actionFromEvent>> = [];
    fx.panel.addEventListener("click", (e) => seen.push(actionFromEvent(e, fx.panel)), true);
    const target = button(fx.block, "run-in-new-cell");
    target.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    target.click();
    target.dispatchEvent(new MouseEvent("click", { bubbles: true, cancelable: true, composed: true, detail: 1 }));
    expect(seen).toHaveLength(3);
    expect(seen).toEqual([null, null, null]);
  });

  it("ignores a trusted event that is not a click", () => {
    const ev = { type: "mousedown", isTrusted: true, target: button(fx.block, "insert-below") } as unknown as Event;
    expect(actionFromEvent(ev, fx.panel)).toBeNull();
  });

  it("ignores clicks on Copy, on the code, and on unknown actions", () => {
    expect(actionFromEvent(trustedClick(fx.block.querySelector(".ernie-code-copy")!), fx.panel)).toBeNull();
    expect(actionFromEvent(trustedClick(fx.block.querySelector("pre code")!), fx.panel)).toBeNull();
    button(fx.block, "insert-below").setAttribute("data-ernie-action", "delete-notebook");
    expect(actionFromEvent(trustedClick(button(fx.block, "delete-notebook")), fx.panel)).toBeNull();
  });

  it("ignores action buttons outside an ErnieChat code block or outside the panel", () => {
    const stray = document.createElement("button");
    stray.setAttribute("data-ernie-action", "run-in-new-cell");
    fx.panel.append(stray);
    expect(actionFromEvent(trustedClick(stray), fx.panel)).toBeNull();

    const noChat = document.createElement("div");
    noChat.innerHTML = `<div class="ernie-codeblock"><button data-ernie-action="run-in-new-cell"></button>
      <pre><code>print(1)</code></pre></div>`;
    fx.panel.append(noChat);
    expect(actionFromEvent(trustedClick(noChat.querySelector("button")!), fx.panel)).toBeNull();

    const otherPanel = document.createElement("div");
    document.body.append(otherPanel);
    expect(actionFromEvent(trustedClick(button(fx.block, "insert-below")), otherPanel)).toBeNull();
  });

  it("ignores a target that is not an element", () => {
    const text = fx.block.querySelector("pre code")!.lastChild!;
    expect(actionFromEvent(trustedClick(text as unknown as Element), fx.panel)).toBeNull();
    expect(actionFromEvent({ type: "click", isTrusted: true, target: null } as unknown as Event, fx.panel)).toBeNull();
  });
});

describe("provenanceOf", () => {
  it("prefers data-model / data-request-id on the block or an ancestor", () => {
    const { chat, block } = chatFixture();
    block.closest(".ernie-msg")!.setAttribute("data-request-id", "as-abc123");
    block.setAttribute("data-model", "ernie-4.5-turbo-128k");
    expect(provenanceOf(block, chat, "chat:insert-below", NOW)).toEqual({
      model: "ernie-4.5-turbo-128k", request_id: "as-abc123", time: "2026-01-02T03:04:05.000Z",
      source: "chat:insert-below",
    });
  });

  it("records nulls when nothing is known", () => {
    const { chat, block } = chatFixture();
    chat.querySelector(".ernie-model")!.textContent = "  ";
    expect(provenanceOf(block, chat, "chat:replace-cell", NOW)).toEqual({
      model: null, request_id: null, time: NOW.toISOString(), source: "chat:replace-cell",
    });
  });
});

describe("interruptFromEvent (Stop while tool code runs)", () => {
  function stop(marked: boolean): { panel: HTMLElement; stop: HTMLButtonElement } {
    const { panel, chat } = chatFixture();
    const button = document.createElement("button");
    button.setAttribute("data-testid", "ernie-stop");
    button.innerHTML = "<svg><path></path></svg>";
    if (marked) button.setAttribute("data-ernie-interrupt", "");
    chat.append(button);
    return { panel, stop: button };
  }

  it("a trusted click on a marked Stop (or its icon) interrupts", () => {
    const fx = stop(true);
    expect(interruptFromEvent(trustedClick(fx.stop), fx.panel)).toBe(true);
    expect(interruptFromEvent(trustedClick(fx.stop.querySelector("path")!), fx.panel)).toBe(true);
  });

  it("an unmarked Stop (no tool running), a synthetic click, or a Stop outside the panel does not", () => {
    const fx = stop(false);
    expect(interruptFromEvent(trustedClick(fx.stop), fx.panel)).toBe(false);
    const marked = stop(true);
    expect(interruptFromEvent({ type: "click", isTrusted: false, target: marked.stop } as unknown as Event,
                              marked.panel)).toBe(false);
    expect(interruptFromEvent(trustedClick(marked.stop), document.createElement("div"))).toBe(false);
    // an action click is not an interrupt
    expect(interruptFromEvent(trustedClick(button(marked.panel, "insert-below")), marked.panel)).toBe(false);
  });
});
