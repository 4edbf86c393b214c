/**
 * "ERNIE: Open chat beside notebook": an ErnieChat for the active notebook's kernel in the right sidebar
 * (JupyterLab 4 and Notebook 7 both have a `right` shell area), without adding a cell.
 *
 * How the chat gets there: the panel sends `sidebarCode(thread)` as a silent execute request (no cell, no history,
 * no execution count); the kernel displays the ErnieChat, and the display message — an
 * `application/vnd.jupyter.widget-view+json` bundle — lands in a `SimplifiedOutputArea` whose rendermime is the
 * notebook's own. @jupyter-widgets/jupyterlab-manager binds that rendermime's widget renderer to the widget
 * manager of the notebook's kernel, so the view renders exactly as it would in a cell output (models come from
 * the kernel's comm messages, whichever request opened them).
 *
 * One `ChatSession` per notebook: the panel shows the session of the notebook the tracker says is current (the
 * last one focused), runs the code only while the panel is visible, and runs it again after a restart or a kernel
 * change (the thread is persisted by the kernel side, so the transcript comes back) or a rename (a new thread).
 * The panel carries `data-ernie-extension`, so the chat offers Insert below / Replace cell / Run in new cell;
 * a trusted click acts on the notebook's active cell (clicking in the sidebar does not move it).
 */
import type { JupyterFrontEnd } from "@jupyterlab/application";
import type { ICommandPalette, ISessionContextDialogs } from "@jupyterlab/apputils";
import type { INotebookTracker, NotebookPanel } from "@jupyterlab/notebook";
import { OutputAreaModel, SimplifiedOutputArea } from "@jupyterlab/outputarea";
import type { Kernel, KernelMessage } from "@jupyterlab/services";
import { LabIcon, ToolbarButton } from "@jupyterlab/ui-components";
import { Signal } from "@lumino/signaling";
import { Panel, Widget } from "@lumino/widgets";
import { actionFromEvent, interruptFromEvent } from "./actions";
import { applyAction, PRESENCE_ATTRIBUTE } from "./notebook";
import {
  decide, endsChat, isCurrent, type KernelStatus, magicHint, sidebarCode, type Target, threadName,
} from "./sidebar-logic";

export const SIDEBAR_COMMAND = "ernie-widget:open-chat-beside";
export const SIDEBAR_ID = "ernie-widget-sidebar";
export const SIDEBAR_LABEL = "在侧边栏打开 ERNIE 对话 / ERNIE: Open chat beside notebook";

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1
  2-2zm4 4v8h7v-1.8h-5V11.8h4.4V10h-4.4V8.8H15V7z"/>
</svg>`;

export const ernieIcon = new LabIcon({ name: "ernie-widget:chat", svgstr: ICON_SVG });

/** What the panel says about the chat it shows (`data-state` on the status line, for styling and tests). */
type State =
  "none" | "no-kernel" | "waiting" | "connecting" | "ready" | "restarting" | "dead" | "not-python" | "error";

const STATUS_TEXT: Record<State, string> = {
  none: "打开一个笔记本，即可在此与 ERNIE 对话 / Open a notebook to chat with ERNIE beside it",
  "no-kernel": "此笔记本没有内核：选择一个内核后对话会出现在这里 / This notebook has no kernel: select one and the chat appears here",
  waiting: "等待内核就绪… / Waiting for the kernel…",
  connecting: "正在连接内核… / Connecting to the kernel…",
  ready: "",
  restarting: "内核正在重启，就绪后自动重新连接 / The kernel is restarting; the chat reconnects when it is ready",
  dead: "内核已停止：重启内核后对话会重新连接 / The kernel has died: restart it and the chat reconnects",
  "not-python": "侧边栏对话需要 Python 内核 / The sidebar chat needs a Python kernel",
  error: "无法在内核中打开对话 / Could not open the chat in the kernel",
};

/** The chat of one notebook: its output area, and what it shows for which kernel, thread and restart. */
class ChatSession {
  readonly area: SimplifiedOutputArea;
  /** emitted when the kernel status, the kernel or the path changed, or a run ended: the panel re-syncs */
  readonly changed = new Signal<ChatSession, void>(this);
  state: State = "waiting";
  detail = "";
  private epoch = 0;
  private target: Target | null = null;

  constructor(readonly panel: NotebookPanel) {
    // trusted, as the outputs of a cell the user runs: the widget renderer is not "safe", so an untrusted area
    // would fall back to the widget's text/plain repr. The code that produces them is ours (sidebar-logic.ts).
    this.area = new SimplifiedOutputArea({
      model: new OutputAreaModel({ trusted: true }),
      rendermime: panel.content.rendermime,
    });
    this.area.addClass("ernie-sidebar-output");
    const sessionContext = panel.sessionContext;
    sessionContext.statusChanged.connect(this.onStatus, this);
    sessionContext.kernelChanged.connect(this.onKernelChanged, this);
    panel.context.pathChanged.connect(this.emit, this);
  }

  get thread(): string {
    return threadName(this.panel.context.localPath);
  }

  private get kernel(): Kernel.IKernelConnection | null {
    return this.panel.sessionContext.session?.kernel ?? null;
  }

  private emit(): void {
    this.changed.emit();
  }

  private forget(state: State): void {
    this.epoch++;
    this.target = null;
    if (!this.area.isDisposed) this.area.model.clear();
    this.state = state;
    this.detail = "";
  }

  private onStatus(_: unknown, status: KernelStatus): void {
    if (endsChat(status)) this.forget(status === "dead" ? "dead" : "restarting");
    this.emit();
  }

  private onKernelChanged(): void {
    this.forget("waiting");
    this.emit();
  }

  /** Show the chat of the notebook's current kernel and thread, running the silent code if it is not shown. */
  async sync(retry = false): Promise<void> {
    if (retry && this.state !== "ready" && this.state !== "connecting") this.target = null;
    const kernel = this.kernel;
    const step = decide(kernel ? { id: kernel.id, status: kernel.status } : null, this.thread, this.epoch,
                        this.target);
    if (step === "keep") return;
    if (step === "no-kernel") {
      this.area.model.clear();
      this.target = null;
      this.setState("no-kernel");
    } else if (step === "wait") {
      if (this.state !== "restarting" && this.state !== "dead") this.setState("waiting");
    } else if (kernel) {
      await this.run(kernel);
    }
  }

  private setState(state: State, detail = ""): void {
    if (this.state === state && this.detail === detail) return;
    this.state = state;
    this.detail = detail;
    this.emit();
  }

  private async run(kernel: Kernel.IKernelConnection): Promise<void> {
    const target: Target = { kernelId: kernel.id, thread: this.thread, epoch: this.epoch };
    this.target = target;
    this.area.model.clear();
    this.setState("connecting");
    const current = () => !this.area.isDisposed && isCurrent(target, this.kernel?.id ?? null, this.thread, this.epoch);
    try {
      // after jupyterlab-manager, which binds the rendermime's widget renderer once the session is ready
      await this.panel.sessionContext.ready;
      const info = await kernel.info;
      if (!current()) return;
      if (info.language_info?.name !== "python") {
        this.setState("not-python", info.language_info?.name ?? "");
        return;
      }
      const future = kernel.requestExecute({
        code: sidebarCode(target.thread), silent: true, store_history: false, allow_stdin: false,
        stop_on_error: false,
      });
      this.area.future = future;
      const reply: KernelMessage.IExecuteReplyMsg = await future.done;
      if (!current()) return;
      const content = reply.content;
      if (content.status === "ok") this.setState("ready");
      else if (content.status === "error") this.setState("error", `${content.ename}: ${content.evalue}`);
      else this.setState("error", content.status);
    } catch (error) {
      // the kernel went away or restarted mid-request: the status signals bring a new run
      if (current()) {
        this.target = null;
        this.setState("error", error instanceof Error ? error.message : String(error));
      }
    }
  }

  dispose(): void {
    Signal.clearData(this);
    this.area.dispose();
  }
}

/** The right-sidebar panel: a header (thread, how to continue it in a cell, status) over the current chat. */
export class ErnieSidebar extends Panel {
  private readonly sessions = new Map<NotebookPanel, ChatSession>();
  private current: ChatSession | null = null;
  private readonly body = new Panel();
  private readonly threadNode: HTMLElement;
  private readonly hintNode: HTMLElement;
  private readonly statusNode: HTMLElement;
  private readonly resizer: ResizeObserver | null;

  constructor(private readonly tracker: INotebookTracker, private readonly dialogs: ISessionContextDialogs | null) {
    super();
    this.id = SIDEBAR_ID;
    this.addClass("ernie-sidebar");
    this.title.icon = ernieIcon;
    this.title.caption = "ERNIE 对话 / ERNIE chat";
    this.node.setAttribute(PRESENCE_ATTRIBUTE, "");
    this.node.setAttribute("data-testid", "ernie-sidebar");

    const header = document.createElement("div");
    header.className = "ernie-sidebar-header";
    const title = document.createElement("div");
    title.className = "ernie-sidebar-title";
    title.textContent = "ERNIE 对话 / ERNIE chat";
    this.threadNode = document.createElement("div");
    this.threadNode.className = "ernie-sidebar-thread";
    this.threadNode.setAttribute("data-testid", "ernie-sidebar-thread");
    this.hintNode = document.createElement("div");
    this.hintNode.className = "ernie-sidebar-hint";
    this.statusNode = document.createElement("div");
    this.statusNode.className = "ernie-sidebar-status";
    this.statusNode.setAttribute("data-testid", "ernie-sidebar-status");
    header.append(title, this.threadNode, this.hintNode, this.statusNode);
    this.addWidget(new Widget({ node: header }));
    this.body.addClass("ernie-sidebar-body");
    this.addWidget(this.body);

    // the chat's own height limit (--ernie-height, 560px in a cell) follows the panel's height here
    this.resizer = typeof ResizeObserver === "function" ? new ResizeObserver(() => this.fitChat()) : null;
    this.resizer?.observe(this.body.node);
    this.node.addEventListener("click", this.onClick, true);
    tracker.currentChanged.connect(() => this.follow(), this);
    this.follow();
  }

  /** Show the current notebook's chat; run the kernel code when the panel is visible (again if `retry`). */
  follow(retry = false): void {
    if (this.isDisposed) return;
    const panel = this.tracker.currentWidget;
    let session = panel && !panel.isDisposed ? this.sessions.get(panel) ?? null : null;
    if (panel && !panel.isDisposed && !session) session = this.open(panel);
    for (const s of this.sessions.values()) s.area.setHidden(s !== session);
    this.current = session;
    this.render();
    if (session && this.isVisible) void session.sync(retry);
  }

  private open(panel: NotebookPanel): ChatSession {
    const session = new ChatSession(panel);
    this.sessions.set(panel, session);
    this.body.addWidget(session.area);
    session.changed.connect(() => {
      if (session !== this.current) return;
      this.render();
      if (this.isVisible) void session.sync();
    }, this);
    panel.disposed.connect(() => {
      this.sessions.delete(panel);
      session.dispose();
      if (this.current === session) this.follow();
    }, this);
    return session;
  }

  private render(): void {
    const session = this.current;
    this.threadNode.replaceChildren();
    this.hintNode.replaceChildren();
    if (session) {
      const thread = session.thread;
      const name = document.createElement("code");
      name.textContent = thread;
      this.threadNode.append("对话 / Thread: ", name);
      this.threadNode.title = thread;
      const hint = document.createElement("code");
      hint.textContent = magicHint(thread);
      this.hintNode.append("在单元格中继续 / Continue in a cell: ", hint);
    }
    const state: State = session ? session.state : "none";
    this.statusNode.setAttribute("data-state", state);
    const text = STATUS_TEXT[state];
    this.statusNode.textContent = session?.detail ? `${text}${text ? " — " : ""}${session.detail}` : text;
    this.statusNode.hidden = !this.statusNode.textContent;
  }

  private fitChat(): void {
    const height = this.body.node.clientHeight;
    if (height > 0) this.node.style.setProperty("--ernie-sidebar-chat-height", `${Math.max(240, height - 16)}px`);
  }

  private readonly onClick = (event: Event): void => {
    if (interruptFromEvent(event, this.node)) {
      // the sidebar chat runs on the notebook's kernel: Stop during a tool interrupts that kernel
      void this.current?.panel?.sessionContext.session?.kernel?.interrupt();
      return;
    }
    const req = actionFromEvent(event, this.node);
    const panel = this.current?.panel;
    if (!req || !panel || panel.isDisposed) return;
    const notebook = panel.content;
    const target = notebook.activeCell;
    const index = target ? notebook.widgets.indexOf(target) + 1 : notebook.widgets.length;
    applyAction(panel, target, index, req, this.dialogs);
  };

  protected override onAfterShow(): void {
    // the minimum width changed (see STYLE): let the split panels around the side area lay out again
    for (let widget = this.parent; widget; widget = widget.parent) widget.fit();
    this.follow();
    this.fitChat();
  }

  override dispose(): void {
    if (this.isDisposed) return;
    this.node.removeEventListener("click", this.onClick, true);
    this.resizer?.disconnect();
    for (const session of this.sessions.values()) session.dispose();
    this.sessions.clear();
    Signal.clearData(this);
    super.dispose();
  }
}

const STYLE = `
.ernie-sidebar { display: flex; flex-direction: column; background: var(--jp-layout-color1); }
/* more specific than the side areas' own min-width (250px): the chat's input row needs the room */
#ernie-widget-sidebar.ernie-sidebar.lm-Widget { min-width: 340px; }
/* Notebook 7's right area is a plain panel that does not take its children's minimum: give it ours while shown */
#jp-right-stack:has(#ernie-widget-sidebar:not(.lm-mod-hidden)) { min-width: 340px; }
.ernie-sidebar-header { flex: 0 0 auto; padding: 8px 10px 6px; border-bottom: 1px solid var(--jp-border-color2);
  font-size: var(--jp-ui-font-size1); color: var(--jp-ui-font-color1); }
.ernie-sidebar-title { font-weight: 600; margin-bottom: 2px; }
.ernie-sidebar-thread, .ernie-sidebar-hint { color: var(--jp-ui-font-color2); overflow-wrap: anywhere; }
.ernie-sidebar-hint code, .ernie-sidebar-thread code { font-family: var(--jp-code-font-family); user-select: all; }
.ernie-sidebar-hint code { display: block; }
.ernie-sidebar-status { margin-top: 4px; color: var(--jp-ui-font-color2); white-space: pre-wrap; }
.ernie-sidebar-status[data-state="error"], .ernie-sidebar-status[data-state="not-python"],
.ernie-sidebar-status[data-state="dead"] { color: var(--jp-error-color1); }
.ernie-sidebar-body { flex: 1 1 auto; overflow: auto; padding: 6px; }
.ernie-sidebar .ernie-chat { --ernie-height: var(--ernie-sidebar-chat-height, 70vh); }
.ernie-sidebar-output .jp-OutputArea-output pre { white-space: pre-wrap; }
`;

function addStyle(): void {
  if (document.getElementById("ernie-widget-sidebar-style")) return;
  const style = document.createElement("style");
  style.id = "ernie-widget-sidebar-style";
  style.textContent = STYLE;
  document.head.append(style);
}

/** The command (palette, category "ERNIE") and the notebook toolbar button; the panel is made on first use. */
export function registerSidebar(app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null,
                                dialogs: ISessionContextDialogs | null): void {
  let sidebar: ErnieSidebar | null = null;
  app.commands.addCommand(SIDEBAR_COMMAND, {
    label: SIDEBAR_LABEL,
    caption: "在右侧边栏与此笔记本的内核对话，不添加单元格 / Chat with this notebook's kernel in the right sidebar, without adding a cell",
    icon: ernieIcon,
    isEnabled: () => tracker.currentWidget !== null,
    execute: () => {
      if (!sidebar || sidebar.isDisposed) {
        addStyle();
        sidebar = new ErnieSidebar(tracker, dialogs);
        app.shell.add(sidebar, "right", { rank: 900 });
      }
      app.shell.activateById(sidebar.id);
      sidebar.follow(true);
    },
  });
  palette?.addItem({ command: SIDEBAR_COMMAND, category: "ERNIE" });
  app.docRegistry.addWidgetExtension("Notebook", {
    createNew: (panel: NotebookPanel) => {
      const button = new ToolbarButton({
        icon: ernieIcon,
        className: "ernie-sidebar-button",
        tooltip: SIDEBAR_LABEL,
        onClick: () => {
          // the button acts on its own notebook, which a click makes current
          if (tracker.currentWidget !== panel) app.shell.activateById(panel.id);
          void app.commands.execute(SIDEBAR_COMMAND);
        },
      });
      if (!panel.toolbar.insertAfter("cellType", "ernieSidebar", button)) panel.toolbar.addItem("ernieSidebar", button);
      return button;
    },
  });
}
