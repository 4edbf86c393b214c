/**
 * The ERNIE commands (command palette, category "ERNIE", and the notebook context menu). Each inserts a cell
 * below the active cell and runs it; the kernel-side magics do the work.
 *
 * Keyboard shortcuts: see shortcuts.ts.
 */
import type { JupyterFrontEnd } from "@jupyterlab/application";
import { type ICommandPalette, InputDialog, type ISessionContextDialogs } from "@jupyterlab/apputils";
import type { INotebookTracker } from "@jupyterlab/notebook";
import type { Provenance } from "./actions";
import { hasErrorOutput, insertAndRun } from "./notebook";
import { COMMAND_MODE, SHORTCUTS } from "./shortcuts";
import { explainSource, fixSource, generateSource, openChatSource } from "./sources";

export const COMMAND_IDS = {
  generate: "ernie-widget:generate-code",
  explain: "ernie-widget:explain-cell",
  openChat: "ernie-widget:open-chat",
} as const;

function provenance(source: string): Provenance {
  return { model: null, request_id: null, time: new Date().toISOString(), source };
}

export function registerCommands(app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null,
                                 dialogs: ISessionContextDialogs | null): void {
  const hasNotebook = () => tracker.currentWidget !== null;

  app.commands.addCommand(COMMAND_IDS.generate, {
    label: "ERNIE: Generate code in a new cell",
    caption: "Describe the code; %%ernie -f code writes it in a new cell",
    isEnabled: hasNotebook,
    execute: async () => {
      const panel = tracker.currentWidget;
      if (!panel) return;
      const result = await InputDialog.getText({
        title: "ERNIE: Generate code",
        label: "Describe the code you want",
        placeholder: "e.g. plot a sine wave with matplotlib",
        okLabel: "Generate",
      });
      const prompt = result.button.accept ? (result.value ?? "").trim() : "";
      if (!prompt || panel.isDisposed) return;
      insertAndRun(panel, generateSource(prompt), provenance("command:generate"), dialogs);
    },
  });

  app.commands.addCommand(COMMAND_IDS.explain, {
    label: "ERNIE: Explain / fix this cell",
    caption: "%ernie --fix for the cell's error, or ask ERNIE to explain its code",
    isEnabled: () => tracker.activeCell !== null,
    execute: () => {
      const panel = tracker.currentWidget;
      const cell = panel?.content.activeCell;
      if (!panel || !cell) return;
      if (hasErrorOutput(cell)) {
        insertAndRun(panel, fixSource(), provenance("command:fix"), dialogs);
        return;
      }
      const code = cell.model.sharedModel.getSource();
      if (!code.trim()) return;
      insertAndRun(panel, explainSource(code), provenance("command:explain"), dialogs);
    },
  });

  app.commands.addCommand(COMMAND_IDS.openChat, {
    label: "ERNIE: Open chat",
    caption: "Insert and run a cell showing ErnieChat()",
    isEnabled: hasNotebook,
    execute: () => {
      const panel = tracker.currentWidget;
      if (panel) insertAndRun(panel, openChatSource(), provenance("command:open-chat"), dialogs);
    },
  });

  let rank = 50;
  for (const command of [COMMAND_IDS.generate, COMMAND_IDS.explain, COMMAND_IDS.openChat]) {
    palette?.addItem({ command, category: "ERNIE" });
    app.contextMenu.addItem({ command, selector: ".jp-Notebook", rank: rank++ });
  }
  for (const { command, keys } of SHORTCUTS) app.commands.addKeyBinding({ command, keys, selector: COMMAND_MODE });
}
