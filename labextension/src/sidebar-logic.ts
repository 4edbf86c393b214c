/**
 * The pure half of "ERNIE: Open chat beside notebook" (sidebar.ts does the DOM and the kernel): the thread name a
 * notebook's sidebar chat uses, the silent code that opens it in the notebook's kernel, the `%%ernie` line that
 * continues the same conversation, and when to (re)run that code.
 *
 * The code goes to the kernel as `requestExecute({code, silent: true, store_history: false})`: no cell, no
 * history entry, no execution count. Every value in it is a JSON string literal, which is also a valid Python
 * string literal with the same value (JSON's escapes `\" \\ \/ \b \f \n \r \t \uXXXX` are all Python escapes,
 * JSON.stringify escapes every control character, and Python reads U+2028, U+2029 and U+0085 inside a literal
 * as plain characters), so a path with quotes, newlines or any Unicode can neither break nor extend the code.
 */

/** Prefix of the thread names, so `%%ernie --list`-style listings show where a conversation comes from. */
export const THREAD_PREFIX = "sidebar:";

/** The pip command shown when the notebook's kernel cannot import ernie_widget. */
export const PIP_INSTALL = "%pip install ernie-widget";

/** Shown in the panel (by the kernel) when `ernie_widget` is not importable there. */
export const MISSING_MESSAGE =
  "此笔记本的内核无法导入 ernie_widget。请在内核的环境中安装它，然后重启内核：\n" +
  `    ${PIP_INSTALL}\n` +
  "ernie_widget is not importable in this notebook's kernel. Install it into the kernel's environment, then " +
  "restart the kernel:\n" +
  `    ${PIP_INSTALL}`;

/** Shown when the kernel has an ernie_widget without the sidebar helper (`ernie_widget.sidebar`). */
export const OUTDATED_MESSAGE =
  "此内核中的 ernie_widget 版本过旧，不支持侧边栏对话。请升级后重启内核：\n" +
  `    ${PIP_INSTALL.replace("install", "install -U")}\n` +
  "The ernie_widget in this kernel is too old for the sidebar chat. Upgrade it, then restart the kernel:\n" +
  `    ${PIP_INSTALL.replace("install", "install -U")}`;

/**
 * The conversation name of a notebook's sidebar chat: stable for a notebook path, shared with
 * `%%ernie --thread NAME` and `ErnieChat(thread=NAME)`. `path` is the document's local path (no drive prefix).
 */
export function threadName(path: string): string {
  return THREAD_PREFIX + path.replace(/^\/+/, "");
}

/** A Python string literal holding exactly `value` (see the module comment for why JSON is one). */
export function pyString(value: string): string {
  return JSON.stringify(value);
}

/**
 * The silent code that opens the chat of `thread` in the kernel: `ernie_widget.sidebar.sidebar_chat(thread)`
 * builds (or reuses) the ErnieChat and displays it. If ernie_widget (or, in an older version, its sidebar module)
 * cannot be imported, a bilingual text with the pip command is displayed instead of a traceback. One helper
 * name is defined and removed again, so the user's namespace is left as it was.
 */
export function sidebarCode(thread: string): string {
  return [
    "def _ernie_sidebar_open(thread):",
    "    try:",
    "        from ernie_widget.sidebar import sidebar_chat",
    "    except ImportError as error:",
    "        import sys",
    "        from IPython.display import display",
    "        # the package imported, only its sidebar module is missing: an older ernie_widget",
    `        outdated = getattr(error, "name", None) == "ernie_widget.sidebar" and sys.modules.get("ernie_widget")`,
    `        text = ${pyString(OUTDATED_MESSAGE)} if outdated else ${pyString(MISSING_MESSAGE)}`,
    `        display({"text/plain": text + "\\n(" + type(error).__name__ + ": " + str(error) + ")"}, raw=True)`,
    "        return",
    "    sidebar_chat(thread)",
    "try:",
    `    _ernie_sidebar_open(${pyString(thread)})`,
    "finally:",
    "    del _ernie_sidebar_open",
  ].join("\n");
}

/**
 * The first line of a cell that continues the sidebar's conversation. IPython splits magic options without
 * POSIX quoting and ernie_widget strips one pair of quotes, so the name is quoted with a quote it does not
 * contain; a name with both quotes or a line break cannot be an option, and the `%config` form (a Python
 * literal) names it instead.
 */
export function magicHint(thread: string): string {
  if (!/[\r\n]/.test(thread)) {
    if (!thread.includes('"')) return `%%ernie --thread "${thread}"`;
    if (!thread.includes("'")) return `%%ernie --thread '${thread}'`;
  }
  return `%config ErnieMagics.thread = ${pyString(thread)}`;
}

/** Kernel statuses from @jupyterlab/services (`Kernel.Status`). */
export type KernelStatus =
  "unknown" | "starting" | "idle" | "busy" | "terminating" | "restarting" | "autorestarting" | "dead";

/** A kernel as far as the decision needs it. */
export interface KernelView {
  id: string;
  status: KernelStatus;
}

/** What the panel shows (or is fetching): for which kernel, thread and kernel lifetime (`epoch`). */
export interface Target {
  kernelId: string;
  thread: string;
  /** counts the kernel's restarts seen by the panel: a restarted kernel has the same id but lost the chat */
  epoch: number;
}

/**
 * What to do for the notebook the panel follows:
 * - `no-kernel`: the notebook has no kernel (show a hint, run nothing);
 * - `wait`: the kernel is starting, restarting or dead: run once it is idle (or busy: the run queues behind);
 * - `keep`: the panel shows (or is fetching) the chat of this kernel, thread and epoch;
 * - `run`: run the silent code.
 */
export type Step = "no-kernel" | "wait" | "keep" | "run";

export function decide(kernel: KernelView | null, thread: string, epoch: number, current: Target | null): Step {
  if (!kernel) return "no-kernel";
  if (kernel.status !== "idle" && kernel.status !== "busy") return "wait";
  if (current && current.kernelId === kernel.id && current.thread === thread && current.epoch === epoch) {
    return "keep";
  }
  return "run";
}

/** Whether a run for `target` still matters once it has finished (the notebook may have moved on). */
export function isCurrent(target: Target, kernelId: string | null, thread: string, epoch: number): boolean {
  return target.kernelId === kernelId && target.thread === thread && target.epoch === epoch;
}

/** A kernel status that ends the chat the panel shows (a restart keeps the kernel id, so count it). */
export function endsChat(status: KernelStatus): boolean {
  return status === "restarting" || status === "autorestarting" || status === "dead";
}
