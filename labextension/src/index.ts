/**
 * ernie-widget JupyterLab 4 / Notebook 7 extension.
 *
 * - Marks every notebook panel with `data-ernie-extension`, so ErnieChat (which checks
 *   `el.closest("[data-ernie-extension]")`) offers Insert below / Replace cell / Run in new cell on code blocks.
 * - Acts on trusted clicks on those buttons only (capture-phase listener on the panel; see actions.ts).
 * - Acts on the cell that holds the chat (see onClick); a chat in the sidebar acts on the active cell (sidebar.ts).
 * - A trusted click on Stop while the agent's tool code runs interrupts the notebook's kernel (actions.ts).
 * - Adds three commands to the palette and the notebook context menu, with command-mode shortcuts (commands.ts).
 * - "ERNIE: Open chat beside notebook" (palette and notebook toolbar): the notebook's chat in the right sidebar,
 *   opened by silent kernel code, without a cell (sidebar.ts).
 *
 * - Ghost-text inline completion from ERNIE through the server extension, off by default (inline-plugin.ts).
 *
 * It stores nothing of its own: no keys, no prompts (the inline on/off switch is JupyterLab's own completer setting). Cells it writes carry `metadata.ernie_widget`.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from "@jupyterlab/application";
import { ICommandPalette, ISessionContextDialogs } from "@jupyterlab/apputils";
import { INotebookTracker, type NotebookPanel } from "@jupyterlab/notebook";
import { actionFromEvent, interruptFromEvent } from "./actions";
import { registerCommands } from "./commands";
import { applyAction, cellHoldingOutput, PRESENCE_ATTRIBUTE } from "./notebook";
import { inlineCompletionPlugin } from "./inline-plugin";
import { registerSidebar } from "./sidebar";

export { PRESENCE_ATTRIBUTE };

function attach(panel: NotebookPanel, dialogs: ISessionContextDialogs | null): void {
  if (panel.node.hasAttribute(PRESENCE_ATTRIBUTE)) return;
  panel.node.setAttribute(PRESENCE_ATTRIBUTE, "");
  const notebook = panel.content;

  // The cell whose output holds the chat is the target: Insert below / Run in new cell put the code right under
  // it, Replace cell replaces its source (its outputs, the chat among them, stay until it runs again).
  const onClick = (event: Event) => {
    if (interruptFromEvent(event, panel.node)) {
      // Stop while the agent's tool code holds the kernel's main thread: the kernel's own interrupt ends it
      void panel.sessionContext.session?.kernel?.interrupt();
      return;
    }
    const req = actionFromEvent(event, panel.node);
    if (!req) return;
    const host = cellHoldingOutput(notebook, req.chat);
    if (!host) return;
    applyAction(panel, host, notebook.widgets.indexOf(host) + 1, req, dialogs);
  };
  // Capture phase: seen before anything inside the output can stop the event.
  panel.node.addEventListener("click", onClick, true);
  panel.disposed.connect(() => {
    panel.node.removeEventListener("click", onClick, true);
  });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: "ernie-widget:plugin",
  description: "Insert, replace or run ErnieChat code blocks as notebook cells; ERNIE commands; a chat beside the notebook.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ISessionContextDialogs],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null,
             dialogs: ISessionContextDialogs | null) => {
    tracker.forEach((panel) => attach(panel, dialogs));
    tracker.widgetAdded.connect((_, panel) => attach(panel, dialogs));
    registerCommands(app, tracker, palette, dialogs);
    registerSidebar(app, tracker, palette, dialogs);
  },
};

export default [plugin, inlineCompletionPlugin];
