/**
 * The composer's keyboard and image input.
 *
 * IME-safe Enter (docs/notebook-facts.md §10): while an input method composes Chinese/Japanese/Korean text,
 * Enter commits the composition and must not send. `isComposing` alone misses some IMEs and Safari, so also
 * check `keyCode === 229` and ignore an Enter that arrives right after `compositionend`
 * (jupyterlab/jupyter-ai#1534, workadventure/workadventure#5629).
 */

export type SendMode = "enter" | "ctrl-enter";

export interface SendKeyOptions {
  /** Current mode: "enter" (Enter sends, Shift+Enter newline) or "ctrl-enter" (Ctrl/⌘+Enter sends). */
  mode: () => SendMode;
  onSend: () => void;
  onEscape?: () => void;
  /** Sees every keydown first (e.g. the @ list's ↑/↓/Enter/Esc); returns true when it took the key. */
  intercept?: (e: KeyboardEvent) => boolean;
  /** The composition tracker to share (one is made for `textarea` otherwise). */
  ime?: ImeTracker;
  /** Clock in ms (injectable for tests). */
  now?: () => number;
}

/** An Enter within this many ms after `compositionend` belongs to the IME (Safari commits with it). */
export const COMPOSITION_GRACE_MS = 100;

type ImeEvent = Partial<Pick<KeyboardEvent, "isComposing" | "keyCode">>;

/** Whether the IME owns an event: it is composing, the key is IME processing (229), or the composition just
 *  ended (the commit's own Enter or input). Pure: the rules in one place. */
export function imeOwns(e: ImeEvent, composing: boolean, msSinceCompositionEnd: number): boolean {
  return !!e.isComposing || composing || e.keyCode === 229 || msSinceCompositionEnd < COMPOSITION_GRACE_MS;
}

/** Whether a keydown should send, given the composition state. */
export function isSendKey(
  e: Pick<KeyboardEvent, "key" | "keyCode" | "isComposing" | "shiftKey" | "ctrlKey" | "metaKey" | "altKey">,
  mode: SendMode,
  composing: boolean,
  msSinceCompositionEnd: number,
): boolean {
  if (e.key !== "Enter" || imeOwns(e, composing, msSinceCompositionEnd)) return false;
  const modifier = e.ctrlKey || e.metaKey;
  if (mode === "ctrl-enter") return modifier && !e.altKey;
  return !e.shiftKey && !e.altKey;
}

/** The composition state of one text box, for every handler that must leave the IME's keys and text alone. */
export interface ImeTracker {
  readonly composing: boolean;
  /** ms since the last `compositionend` (Infinity before any). */
  sinceEnd(): number;
  /** `imeOwns` for an event of this box (without one: whether a composition is under way or just ended). */
  owns(e?: ImeEvent): boolean;
  unbind(): void;
}

export function trackIme(target: HTMLElement, now: () => number = () => performance.now()): ImeTracker {
  let composing = false;
  let endedAt = -Infinity;
  const onStart = (): void => {
    composing = true;
  };
  const onEnd = (): void => {
    composing = false;
    endedAt = now();
  };
  target.addEventListener("compositionstart", onStart);
  target.addEventListener("compositionend", onEnd);
  const tracker: ImeTracker = {
    get composing() {
      return composing;
    },
    sinceEnd: () => now() - endedAt,
    owns: (e = {}) => imeOwns(e, composing, now() - endedAt),
    unbind: () => {
      target.removeEventListener("compositionstart", onStart);
      target.removeEventListener("compositionend", onEnd);
    },
  };
  return tracker;
}

/** Wire `textarea` so the configured key sends; returns an unbind function. */
export function bindSendKeys(textarea: HTMLTextAreaElement, options: SendKeyOptions): () => void {
  const ime = options.ime ?? trackIme(textarea, options.now);
  const onKey = (e: KeyboardEvent): void => {
    if (options.intercept?.(e)) return;
    if (e.key === "Escape" && !ime.composing && !e.isComposing) {
      options.onEscape?.();
      return;
    }
    if (!isSendKey(e, options.mode(), ime.composing, ime.sinceEnd())) return;
    e.preventDefault();
    options.onSend();
  };
  textarea.addEventListener("keydown", onKey);
  return () => {
    if (!options.ime) ime.unbind();
    textarea.removeEventListener("keydown", onKey);
  };
}

/**
 * Keep every keystroke typed inside the widget away from the notebook's keyboard shortcuts.
 *
 * JupyterLab and Notebook 7 run shortcuts from one document-level `keydown` listener (Lumino's command
 * registry): Shift+Enter typed in the chat box re-ran the cell that holds the chat (a new, empty ErnieChat
 * replaced it and the draft was lost), and command-mode keys such as `a`, `b`, `d d` acted on cells. Two
 * guards, because hosts differ in how they listen:
 * - `data-lm-suppress-shortcuts` on the root: Lumino's registry (≥ 2.3) skips any binding whose key event
 *   came from inside an element carrying it, in whichever phase the application listens;
 * - keydown events from an editable element stop bubbling at the root, so a host listening in the bubble
 *   phase without that Lumino rule (older hosts, other extensions) never sees them either.
 * The widget's own handlers sit on the elements themselves, so they run before the root stops the event.
 */
export function isolateKeys(root: HTMLElement): () => void {
  root.setAttribute("data-lm-suppress-shortcuts", "");
  const onKey = (e: KeyboardEvent): void => {
    if (isEditable(e.target)) e.stopPropagation();
  };
  root.addEventListener("keydown", onKey);
  return () => root.removeEventListener("keydown", onKey);
}

function isEditable(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  return target instanceof HTMLTextAreaElement || target instanceof HTMLInputElement || target.isContentEditable;
}

/** Image types the ERNIE vision models accept. */
export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
export const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
export const MAX_IMAGES = 8;

/** Image files among `files` (pasted or dropped), in order. */
export function imageFiles(files: Iterable<File> | ArrayLike<File> | null | undefined): File[] {
  if (!files) return [];
  return Array.from(files as ArrayLike<File>).filter((f) => IMAGE_TYPES.includes(f.type));
}

/** Read a file as a data URL. */
export function readAsDataUrl(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error("could not read the file"));
    reader.readAsDataURL(file);
  });
}
