/**
 * Registers the ERNIE inline-completion provider, a one-click on/off command, and a small status-bar item.
 *
 * The on/off switch is JupyterLab's own per-provider `enabled` setting of the inline completer
 * (`@jupyterlab/completer-extension:inline-completer` → `providers` → `ernie-widget`), so the Settings Editor,
 * the command and the status item all show and change the same value. The status item says whether a completion is
 * being fetched or failed (a failure never opens a dialog while the user types) and, in its tooltip, which provider,
 * model and configuration source the server extension uses (`GET ernie-widget/completion/status`; never a key).
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from "@jupyterlab/application";
import { ICommandPalette } from "@jupyterlab/apputils";
import { ICompletionProviderManager } from "@jupyterlab/completer";
import { INotebookTracker } from "@jupyterlab/notebook";
import { ServerConnection } from "@jupyterlab/services";
import { ISettingRegistry } from "@jupyterlab/settingregistry";
import { IStatusBar } from "@jupyterlab/statusbar";
import { Widget } from "@lumino/widgets";
import { completionUrl, ErnieInlineProvider, type InlineState, PROVIDER_ID } from "./inline-provider";
import { statusLabel, type ServerStatus, withEnabled } from "./inline-status";

export const INLINE_SETTINGS = "@jupyterlab/completer-extension:inline-completer";
export const TOGGLE_INLINE_COMMAND = "ernie-widget:toggle-inline-completion";
const TOGGLE_LABEL = "ERNIE 行内补全（开/关）/ ERNIE: Inline completion on/off";

async function serverStatus(settings: ServerConnection.ISettings): Promise<ServerStatus | null> {
  try {
    const response = await ServerConnection.makeRequest(completionUrl(settings, "/status"), { method: "GET" }, settings);
    return response.ok ? ((await response.json()) as ServerStatus) : null;
  } catch {
    return null;
  }
}

class InlineStatusItem extends Widget {
  constructor(onClick: () => void) {
    super({ node: document.createElement("button") });
    this.addClass("jp-StatusBar-TextItem");
    this.node.setAttribute("data-testid", "ernie-inline-status");
    this.node.style.cssText = "background:none;border:none;color:inherit;font:inherit;cursor:pointer;padding:0 4px";
    this.node.addEventListener("click", (event) => {
      if (event.isTrusted) onClick();
    });
  }

  render(enabled: boolean, state: InlineState, server: ServerStatus | null): void {
    const { text, title, kind } = statusLabel(enabled, state, server);
    this.node.textContent = text;
    this.node.title = title;
    this.node.setAttribute("data-state", kind);
  }
}

export const inlineCompletionPlugin: JupyterFrontEndPlugin<void> = {
  id: "ernie-widget:inline-completion",
  description: "Ghost-text completion from ERNIE or the offline model (off by default), through the server extension.",
  autoStart: true,
  requires: [ICompletionProviderManager],
  optional: [ISettingRegistry, IStatusBar, ICommandPalette, INotebookTracker],
  activate: (app: JupyterFrontEnd, manager: ICompletionProviderManager, registry: ISettingRegistry | null,
             statusBar: IStatusBar | null, palette: ICommandPalette | null, tracker: INotebookTracker | null) => {
    const serverSettings = app.serviceManager.serverSettings;
    const provider = new ErnieInlineProvider(serverSettings);
    manager.registerInlineProvider(provider);
    tracker?.activeCellChanged.connect(() => provider.abort());

    let enabled = false;
    let state: InlineState = { kind: "idle" };
    let server: ServerStatus | null = null;
    let settings: ISettingRegistry.ISettings | null = null;
    const item = new InlineStatusItem(() => void app.commands.execute(TOGGLE_INLINE_COMMAND));
    const refresh = () => item.render(enabled, state, server);
    provider.stateChanged.connect((_, next) => {
      state = next;
      refresh();
    });

    app.commands.addCommand(TOGGLE_INLINE_COMMAND, {
      label: TOGGLE_LABEL,
      caption: "发送当前单元格和前面的单元格给模型以获得补全 / sends the cell and earlier cells to the model for completions",
      isEnabled: () => settings !== null,
      isToggled: () => enabled,
      execute: async () => {
        if (!settings) return;
        await settings.set("providers", withEnabled(settings.user.providers, PROVIDER_ID, !enabled));
      },
    });
    palette?.addItem({ command: TOGGLE_INLINE_COMMAND, category: "ERNIE" });

    if (statusBar) {
      statusBar.registerStatusItem("ernie-widget:inline-status", {
        item, align: "right", rank: 50, isActive: () => true,
      });
    }
    refresh();

    const onSettings = (loaded: ISettingRegistry.ISettings) => {
      const providers = loaded.composite.providers as Record<string, { enabled?: boolean }> | undefined;
      const now = providers?.[PROVIDER_ID]?.enabled === true;
      if (now && !enabled) void serverStatus(serverSettings).then((s) => { server = s; refresh(); });
      if (!now) provider.abort();
      enabled = now;
      state = { kind: "idle" };
      refresh();
      app.commands.notifyCommandChanged(TOGGLE_INLINE_COMMAND);
    };
    if (registry) {
      void app.restored.then(() => registry.load(INLINE_SETTINGS)).then((loaded) => {
        settings = loaded;
        onSettings(loaded);
        loaded.changed.connect(onSettings);
      }).catch((error) => console.warn("ernie-widget: inline completer settings unavailable", error));
    }
  },
};
