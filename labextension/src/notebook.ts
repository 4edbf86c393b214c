/**
 * Notebook edits: insert, replace and run cells through the notebook model (no kernel round trip for the edit
 * itself, so it works while the kernel is busy; a run is queued behind whatever the kernel is doing).
 */
import type { ISessionContextDialogs } from "@jupyterlab/apputils";
import type { Cell, ICodeCellModel } from "@jupyterlab/cells";
import { NotebookActions, type Notebook, type NotebookPanel } from "@jupyterlab/notebook";
import type { ActionRequest, Provenance } from "./actions";
import { hasLoadExt, isCellMagic, LOAD_EXT, LOAD_IF_NEEDED } from "./sources";

/** The attribute ErnieChat looks for (`el.closest("[data-ernie-extension]")`) before offering the cell actions. */
export const PRESENCE_ATTRIBUTE = "data-ernie-extension";

/** Metadata key holding the provenance of cells the extension writes. */
export const METADATA_KEY = "ernie_widget";

/** Insert code cells at `index`, in order, each with the provenance; the first becomes the active cell. */
export function insertCodeCells(notebook: Notebook, index: number, sources: string[], provenance: Provenance): void {
  const model = notebook.model;
  if (!model || !sources.length) return;
  const at = Math.max(0, Math.min(index, model.cells.length));
  model.sharedModel.insertCells(
    at,
    sources.map((source) => ({ cell_type: "code", source, metadata: { [METADATA_KEY]: { ...provenance } } })),
  );
  notebook.activeCellIndex = at;
  notebook.deselectAll();
}

/** Replace a cell's source and record the provenance; the cell becomes the active cell. */
export function replaceSource(notebook: Notebook, cell: Cell, source: string, provenance: Provenance): void {
  cell.model.sharedModel.setSource(source);
  cell.model.setMetadata(METADATA_KEY, { ...provenance });
  const index = notebook.widgets.indexOf(cell);
  if (index !== -1) {
    notebook.activeCellIndex = index;
    notebook.deselectAll();
  }
}

/** Run `count` cells starting at `first` (fire and forget: the promise settles when they finish). */
export function runCells(panel: NotebookPanel, first: number, count: number, dialogs?: ISessionContextDialogs | null): void {
  const notebook = panel.content;
  notebook.activeCellIndex = first;
  notebook.deselectAll();
  for (let i = first + 1; i < first + count; i++) {
    const cell = notebook.widgets[i];
    if (cell) notebook.select(cell);
  }
  void NotebookActions.run(notebook, panel.sessionContext, dialogs ?? undefined);
}

/**
 * Insert `source` below the active cell and run it, with `%ernie` / `%%ernie` known to the kernel first. When the
 * notebook has a kernel, a silent request (no cell, no output, no execution count, no history) loads
 * `ernie_widget` unless its magics are already there (`LOAD_IF_NEEDED`); it is sent before the run, and a kernel
 * runs requests in order, so the cell never meets an unloaded extension and no redundant `%load_ext` cell is
 * written. Without a kernel yet (the run will start or ask for one) the load has to be visible: prepended to an
 * ordinary cell, or, for a `%%` cell (which must start with the cell magic), a separate cell above it unless a
 * cell above already has that line.
 */
export function insertAndRun(panel: NotebookPanel, source: string, provenance: Provenance,
                             dialogs?: ISessionContextDialogs | null): void {
  const notebook = panel.content;
  const index = notebook.widgets.length ? notebook.activeCellIndex + 1 : 0;
  const sources: string[] = [];
  const kernel = panel.sessionContext.session?.kernel;
  if (kernel) {
    kernel.requestExecute({ code: LOAD_IF_NEEDED, silent: true, store_history: false, allow_stdin: false });
  } else if (isCellMagic(source)) {
    const above = notebook.widgets.slice(0, index).map((cell) => cell.model.sharedModel.getSource());
    if (!hasLoadExt(above)) sources.push(LOAD_EXT);
  } else if (!hasLoadExt([source])) {
    source = `${LOAD_EXT}\n${source}`;
  }
  sources.push(source);
  insertCodeCells(notebook, index, sources, provenance);
  runCells(panel, index, sources.length, dialogs);
}

/** The cell whose output area holds `el`, if it belongs to this notebook. */
export function cellHoldingOutput(notebook: Notebook, el: Element): Cell | null {
  for (const cell of notebook.widgets) {
    if (cell.model.type !== "code") continue;
    const outputs = cell.node.querySelector(".jp-OutputArea");
    if (outputs?.contains(el)) return cell;
  }
  return null;
}

/** Whether the cell's outputs include an error (an exception shown under it). */
export function hasErrorOutput(cell: Cell): boolean {
  if (cell.model.type !== "code") return false;
  const outputs = (cell.model as ICodeCellModel).outputs;
  for (let i = 0; i < outputs.length; i++) {
    if (outputs.get(i).type === "error") return true;
  }
  return false;
}

/**
 * Carry out a code-block button: *Replace cell* replaces `target` when it is a code cell; otherwise (and for
 * *Insert below* / *Run in new cell*) a new cell goes in at `index`, and *Run in new cell* runs it.
 */
export function applyAction(panel: NotebookPanel, target: Cell | null, index: number, req: ActionRequest,
                            dialogs: ISessionContextDialogs | null): void {
  const notebook = panel.content;
  if (req.action === "replace-cell" && target && target.model.type === "code") {
    replaceSource(notebook, target, req.code, req.provenance);
    return;
  }
  insertCodeCells(notebook, index, [req.code], req.provenance);
  if (req.action === "run-in-new-cell") runCells(panel, index, 1, dialogs);
}
