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
  /** Clock in ms (injectable for tests). */
  now?: () => number;
}

/** An Enter within this many ms after `compositionend` belongs to the IME (Safari commits with it). */
export const COMPOSITION_GRACE_MS = 100;

/** Whether a keydown should send, given the composition state. Pure: the rules in one place. */
export function isSendKey(
  e: Pick<KeyboardEvent, "key" | "keyCode" | "isComposing" | "shiftKey" | "ctrlKey" | "metaKey" | "altKey">,
  mode: SendMode,
  composing: boolean,
  msSinceCompositionEnd: number,
): boolean {
  if (e.key !== "Enter") return false;
  if (e.isComposing || composing || e.keyCode === 229) return false; // the IME is still composing
  if (msSinceCompositionEnd < COMPOSITION_GRACE_MS) return false; // the Enter that commits the text
  const modifier = e.ctrlKey || e.metaKey;
  if (mode === "ctrl-enter") return modifier && !e.altKey;
  return !e.shiftKey && !e.altKey;
}

/** Wire `textarea` so the configured key sends; returns an unbind function. */
export function bindSendKeys(textarea: HTMLTextAreaElement, options: SendKeyOptions): () => void {
  const now = options.now ?? (() => performance.now());
  let composing = false;
  let compositionEndedAt = -Infinity;
  const onStart = (): void => {
    composing = true;
  };
  const onEnd = (): void => {
    composing = false;
    compositionEndedAt = now();
  };
  const onKey = (e: KeyboardEvent): void => {
    if (e.key === "Escape" && !composing && !e.isComposing) {
      options.onEscape?.();
      return;
    }
    if (!isSendKey(e, options.mode(), composing, now() - compositionEndedAt)) return;
    e.preventDefault();
    options.onSend();
  };
  textarea.addEventListener("compositionstart", onStart);
  textarea.addEventListener("compositionend", onEnd);
  textarea.addEventListener("keydown", onKey);
  return () => {
    textarea.removeEventListener("compositionstart", onStart);
    textarea.removeEventListener("compositionend", onEnd);
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
