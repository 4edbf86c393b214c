/**
 * ernie-widget JupyterLab 4 / Notebook 7 extension.
 *
 * - Marks every notebook panel with `data-ernie-extension`, so ErnieChat (which checks
 *   `el.closest("[data-ernie-extension]")`) offers Insert below / Replace cell / Run in new cell on code blocks.
 * - Acts on trusted clicks on those buttons only (capture-phase listener on the panel; see actions.ts).
 * - Adds three commands to the palette and the notebook context menu.
 * - "ERNIE: Open chat beside notebook" (palette and notebook toolbar): the notebook's chat in the right sidebar,
 *   opened by silent kernel code, without a cell (sidebar.ts).
 *
 * It stores nothing: no settings, no keys, no prompts. Cells it writes carry `metadata.ernie_widget`.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from "@jupyterlab/application";
import { ICommandPalette, ISessionContextDialogs } from "@jupyterlab/apputils";
import type { Cell } from "@jupyterlab/cells";
import { INotebookTracker, type NotebookPanel } from "@jupyterlab/notebook";
import { actionFromEvent, type ActionRequest } from "./actions";
import { registerCommands } from "./commands";
import { ActiveHistory } from "./history";
import { applyAction, cellHoldingOutput, PRESENCE_ATTRIBUTE } from "./notebook";
import { registerSidebar } from "./sidebar";

export { PRESENCE_ATTRIBUTE };

function apply(panel: NotebookPanel, history: ActiveHistory<Cell>, host: Cell, req: ActionRequest,
               dialogs: ISessionContextDialogs | null): void {
  const notebook = panel.content;
  const target = history.pick(host, (cell) => notebook.widgets.includes(cell) && !cell.isDisposed);
  // Replace acts on the target code cell; otherwise a new cell goes below the target (or below the chat's own
  // cell when the chat is all the user has touched), never over the chat.
  const index = notebook.widgets.indexOf(target ?? host) + 1;
  applyAction(panel, target, index, req, dialogs);
}

function attach(panel: NotebookPanel, dialogs: ISessionContextDialogs | null): void {
  if (panel.node.hasAttribute(PRESENCE_ATTRIBUTE)) return;
  panel.node.setAttribute(PRESENCE_ATTRIBUTE, "");
  const notebook = panel.content;
  const history = new ActiveHistory<Cell>();
  history.note(notebook.activeCell);
  const onActive = (_: unknown, cell: Cell | null) => history.note(cell);
  notebook.activeCellChanged.connect(onActive);

  const onClick = (event: Event) => {
    const req = actionFromEvent(event, panel.node);
    if (!req) return;
    const host = cellHoldingOutput(notebook, req.chat);
    if (!host) return;
    apply(panel, history, host, req, dialogs);
  };
  // Capture phase: seen before anything inside the output can stop the event.
  panel.node.addEventListener("click", onClick, true);
  panel.disposed.connect(() => {
    panel.node.removeEventListener("click", onClick, true);
    notebook.activeCellChanged.disconnect(onActive);
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

export default plugin;
