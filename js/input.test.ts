// @vitest-environment happy-dom
import { describe, expect, it, vi } from "vitest";
import { bindSendKeys, COMPOSITION_GRACE_MS, imeOwns, isolateKeys, isSendKey, type SendMode, trackIme } from "./input";

function setup(mode: SendMode = "enter") {
  const textarea = document.createElement("textarea");
  document.body.append(textarea);
  let now = 1_000;
  const onSend = vi.fn();
  const onEscape = vi.fn();
  const current = { mode };
  const unbind = bindSendKeys(textarea, { mode: () => current.mode, onSend, onEscape, now: () => now });
  const key = (init: KeyboardEventInit & { keyCode?: number }) => {
    const event = new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true, ...init });
    if (init.keyCode !== undefined) Object.defineProperty(event, "keyCode", { value: init.keyCode });
    textarea.dispatchEvent(event);
    return event;
  };
  return {
    textarea,
    onSend,
    onEscape,
    key,
    current,
    unbind,
    advance: (ms: number) => (now += ms),
    compose: (type: "compositionstart" | "compositionend") => textarea.dispatchEvent(new CompositionEvent(type, { data: "你好" })),
  };
}

describe("Enter mode", () => {
  it("Enter sends and prevents the newline", () => {
    const s = setup();
    const event = s.key({});
    expect(s.onSend).toHaveBeenCalledTimes(1);
    expect(event.defaultPrevented).toBe(true);
  });

  it("Shift+Enter adds a newline (does not send)", () => {
    const s = setup();
    const event = s.key({ shiftKey: true });
    expect(s.onSend).not.toHaveBeenCalled();
    expect(event.defaultPrevented).toBe(false);
  });

  it("other keys do nothing", () => {
    const s = setup();
    s.key({ key: "a" });
    expect(s.onSend).not.toHaveBeenCalled();
  });

  it("does not send while an IME composes (isComposing)", () => {
    const s = setup();
    s.key({ isComposing: true });
    expect(s.onSend).not.toHaveBeenCalled();
  });

  it("does not send on keyCode 229 (IME processing, Safari and some IMEs)", () => {
    const s = setup();
    const event = s.key({ keyCode: 229 });
    expect(s.onSend).not.toHaveBeenCalled();
    expect(event.defaultPrevented).toBe(false);
  });

  it("does not send between compositionstart and compositionend even if isComposing is missing", () => {
    const s = setup();
    s.compose("compositionstart");
    s.key({});
    expect(s.onSend).not.toHaveBeenCalled();
  });

  it("ignores the Enter right after compositionend (the one that commits the text), then sends", () => {
    const s = setup();
    s.compose("compositionstart");
    s.compose("compositionend");
    s.advance(5);
    s.key({});
    expect(s.onSend).not.toHaveBeenCalled();
    s.advance(COMPOSITION_GRACE_MS);
    s.key({});
    expect(s.onSend).toHaveBeenCalledTimes(1);
  });

  it("Escape cancels (e.g. editing) but not while composing", () => {
    const s = setup();
    s.compose("compositionstart");
    s.key({ key: "Escape" });
    expect(s.onEscape).not.toHaveBeenCalled();
    s.compose("compositionend");
    s.key({ key: "Escape" });
    expect(s.onEscape).toHaveBeenCalledTimes(1);
  });

  it("unbind removes the handlers", () => {
    const s = setup();
    s.unbind();
    s.key({});
    expect(s.onSend).not.toHaveBeenCalled();
  });
});

describe("Ctrl+Enter mode", () => {
  it("plain Enter and Shift+Enter insert newlines", () => {
    const s = setup("ctrl-enter");
    expect(s.key({}).defaultPrevented).toBe(false);
    expect(s.key({ shiftKey: true }).defaultPrevented).toBe(false);
    expect(s.onSend).not.toHaveBeenCalled();
  });

  it("Ctrl+Enter and ⌘+Enter send", () => {
    const s = setup("ctrl-enter");
    s.key({ ctrlKey: true });
    s.key({ metaKey: true });
    expect(s.onSend).toHaveBeenCalledTimes(2);
  });

  it("Ctrl+Enter during composition does not send", () => {
    const s = setup("ctrl-enter");
    s.key({ ctrlKey: true, isComposing: true });
    s.key({ ctrlKey: true, keyCode: 229 });
    expect(s.onSend).not.toHaveBeenCalled();
  });

  it("follows a mode change without rebinding", () => {
    const s = setup("enter");
    s.current.mode = "ctrl-enter";
    s.key({});
    expect(s.onSend).not.toHaveBeenCalled();
    s.key({ ctrlKey: true });
    expect(s.onSend).toHaveBeenCalledTimes(1);
  });
});

describe("isSendKey (the rules as a pure function)", () => {
  const base = { key: "Enter", keyCode: 13, isComposing: false, shiftKey: false, ctrlKey: false, metaKey: false, altKey: false };
  it.each([
    ["Enter", base, "enter", true],
    ["Shift+Enter", { ...base, shiftKey: true }, "enter", false],
    ["Alt+Enter", { ...base, altKey: true }, "enter", false],
    ["Ctrl+Enter in enter mode", { ...base, ctrlKey: true }, "enter", true],
    ["composing", { ...base, isComposing: true }, "enter", false],
    ["229", { ...base, keyCode: 229 }, "enter", false],
    ["Enter in ctrl mode", base, "ctrl-enter", false],
    ["Ctrl+Enter in ctrl mode", { ...base, ctrlKey: true }, "ctrl-enter", true],
  ] as const)("%s → %s", (_name, event, mode, expected) => {
    expect(isSendKey(event, mode, false, Infinity)).toBe(expected);
  });
});

describe("the shared composition tracker", () => {
  it("imeOwns: composing, keyCode 229, or just after compositionend", () => {
    expect(imeOwns({}, false, Infinity)).toBe(false);
    expect(imeOwns({ isComposing: true }, false, Infinity)).toBe(true);
    expect(imeOwns({ keyCode: 229 }, false, Infinity)).toBe(true);
    expect(imeOwns({}, true, Infinity)).toBe(true);
    expect(imeOwns({}, false, COMPOSITION_GRACE_MS - 1)).toBe(true);
  });

  it("one tracker serves the send keys and an interceptor that sees each key first", () => {
    const textarea = document.createElement("textarea");
    let now = 0;
    const ime = trackIme(textarea, () => now);
    const onSend = vi.fn();
    const intercept = vi.fn((e: KeyboardEvent) => e.key === "Tab");
    const unbind = bindSendKeys(textarea, { mode: () => "enter", onSend, intercept, ime });
    textarea.dispatchEvent(new KeyboardEvent("keydown", { key: "Tab" }));
    textarea.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(intercept).toHaveBeenCalledTimes(2);
    expect(onSend).toHaveBeenCalledTimes(1);
    textarea.dispatchEvent(new CompositionEvent("compositionstart"));
    expect(ime.owns()).toBe(true);
    textarea.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(onSend).toHaveBeenCalledTimes(1);
    textarea.dispatchEvent(new CompositionEvent("compositionend"));
    now += COMPOSITION_GRACE_MS;
    expect(ime.owns()).toBe(false);
    unbind(); // the shared tracker stays bound: its owner unbinds it
    textarea.dispatchEvent(new CompositionEvent("compositionstart"));
    expect(ime.composing).toBe(true);
    ime.unbind();
  });
});

describe("isolateKeys: keys typed in the widget never reach notebook shortcuts", () => {
  function isolated() {
    const root = document.createElement("div");
    const textarea = document.createElement("textarea");
    const button = document.createElement("button");
    root.append(textarea, button);
    document.body.append(root);
    const seen: string[] = [];
    const onDocument = (e: KeyboardEvent) => seen.push(e.key);
    document.addEventListener("keydown", onDocument);
    const unbind = isolateKeys(root);
    const press = (target: HTMLElement, init: KeyboardEventInit) =>
      target.dispatchEvent(new KeyboardEvent("keydown", { bubbles: true, cancelable: true, ...init }));
    return { root, textarea, button, seen, unbind, press, done: () => document.removeEventListener("keydown", onDocument) };
  }

  it("marks the root for Lumino's shortcut suppression", () => {
    const s = isolated();
    expect(s.root.hasAttribute("data-lm-suppress-shortcuts")).toBe(true);
    s.done();
  });

  it("stops keydown from the text box before the document sees it", () => {
    const s = isolated();
    for (const key of ["Enter", "Escape", "a", "b", "d", "ArrowUp"]) s.press(s.textarea, { key, shiftKey: key === "Enter" });
    expect(s.seen).toEqual([]);
    s.done();
  });

  it("does not prevent the default action (the newline is typed)", () => {
    const s = isolated();
    const event = new KeyboardEvent("keydown", { key: "Enter", shiftKey: true, bubbles: true, cancelable: true });
    s.textarea.dispatchEvent(event);
    expect(event.defaultPrevented).toBe(false);
    s.done();
  });

  it("lets keys on buttons bubble, and unbinds cleanly", () => {
    const s = isolated();
    s.press(s.button, { key: "x" });
    s.unbind();
    s.press(s.textarea, { key: "y" });
    expect(s.seen).toEqual(["x", "y"]);
    s.done();
  });
});
