/**
 * Keyboard shortcuts of the ERNIE commands: two-key sequences starting with E, in command mode only (press Esc
 * first), under JupyterLab's own command-mode selector, so they never fire while typing in a cell editor or in
 * the chat's text box. No JupyterLab 4.5 / Notebook 7 default shortcut starts with E in command mode
 * (shortcuts.test.ts checks the installed JupyterLab's list).
 */

/** JupyterLab's selector for its command-mode shortcuts (A, B, D D, …). */
export const COMMAND_MODE = ".jp-Notebook.jp-mod-commandMode:not(.jp-mod-readWrite) :focus";

export const SHORTCUTS: ReadonlyArray<{ command: string; keys: string[] }> = [
  { command: "ernie-widget:generate-code", keys: ["E", "G"] },
  { command: "ernie-widget:explain-cell", keys: ["E", "E"] },
  { command: "ernie-widget:open-chat", keys: ["E", "C"] },
  { command: "ernie-widget:open-chat-beside", keys: ["E", "S"] },
];
