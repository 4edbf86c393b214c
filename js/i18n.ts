/** UI strings in Chinese and English, chosen from the `lang` trait or the browser language. */

const en = {
  send: "Send",
  stop: "Stop",
  retry: "Retry",
  clear: "Clear",
  continue: "Continue",
  copy: "Copy",
  copied: "Copied",
  copyMessage: "Copy message",
  copyCode: "Copy code",
  copyCodePaste: "Copy code (or run %ernie --paste {n} in a cell)",
  insertBelow: "Insert below",
  replaceCell: "Replace cell",
  runCell: "Run in new cell",
  deleteTurn: "Delete this turn",
  turnDeleted: "Turn deleted",
  undo: "Undo",
  edit: "Edit and resend",
  editing: "Editing the last message",
  cancel: "Cancel",
  thinking: "Thinking",
  streaming: "Answering…",
  connecting: "Connecting to {host}… {s} s",
  ready: "Ready",
  stopped: "Stopped",
  error: "Error",
  truncated: "The answer was cut off at the length limit.",
  attach: "Attach images by pasting or dropping them",
  removeImage: "Remove image",
  loadImage: "Load image from {url}",
  hintEnter: "Enter to send · Shift+Enter for a new line",
  hintCtrlEnter: "Ctrl/⌘+Enter to send · Enter for a new line",
  placeholder: "Ask ERNIE…",
  tokens: "{prompt} in · {completion} out · {total} tokens",
  ttft: "first token {s} s",
  speed: "{n} tokens/s",
  duration: "{s} s",
  you: "You",
  assistant: "ERNIE",
  dropHere: "Drop images to attach",
  imageTooLarge: "Image too large (max {mb} MB)",
  sources: "Sources",
  mentionList: "Variables to mention",
  mentionLoading: "Reading variables…",
  mentionNone: "No matching variables",
  kernelBusy: "Kernel busy",
  tok: "{n} tok",
  removeMention: "Remove {name}",
  contextBudget: "{used} / {budget} tokens of context",
  overBudget: "over the budget: the largest items will be shortened",
  fixLastError: "Fix last error",
  fixRequest: "Fix this error",
  context: "Context",
  shortened: "shortened",
};

type Strings = typeof en;
export type StringKey = keyof Strings;

const zh: Strings = {
  send: "发送",
  stop: "停止",
  retry: "重试",
  clear: "清空",
  continue: "继续",
  copy: "复制",
  copied: "已复制",
  copyMessage: "复制消息",
  copyCode: "复制代码",
  copyCodePaste: "复制代码（或在单元格中运行 %ernie --paste {n}）",
  insertBelow: "插入到下方",
  replaceCell: "替换单元格",
  runCell: "在新单元格中运行",
  deleteTurn: "删除这一轮",
  turnDeleted: "已删除这一轮",
  undo: "撤销",
  edit: "编辑并重新发送",
  editing: "正在编辑上一条消息",
  cancel: "取消",
  thinking: "思考过程",
  streaming: "回答中…",
  connecting: "正在连接 {host}… {s} 秒",
  ready: "就绪",
  stopped: "已停止",
  error: "错误",
  truncated: "回答因长度限制被截断。",
  attach: "粘贴或拖入图片即可附加",
  removeImage: "移除图片",
  loadImage: "从 {url} 加载图片",
  hintEnter: "Enter 发送 · Shift+Enter 换行",
  hintCtrlEnter: "Ctrl/⌘+Enter 发送 · Enter 换行",
  placeholder: "向文心一言提问…",
  tokens: "输入 {prompt} · 输出 {completion} · 共 {total} tokens",
  ttft: "首字 {s} 秒",
  speed: "{n} tokens/秒",
  duration: "{s} 秒",
  you: "你",
  assistant: "文心",
  dropHere: "松开以附加图片",
  imageTooLarge: "图片过大（上限 {mb} MB）",
  sources: "来源",
  mentionList: "可提及的变量",
  mentionLoading: "正在读取变量…",
  mentionNone: "没有匹配的变量",
  kernelBusy: "内核忙",
  tok: "{n} tok",
  removeMention: "移除 {name}",
  contextBudget: "上下文 {used} / {budget} tokens",
  overBudget: "超出预算：发送时先截短最大的项",
  fixLastError: "修复上一个错误",
  fixRequest: "修复这个错误",
  context: "上下文",
  shortened: "已截短",
};

export type Lang = "zh" | "en";

/** "zh" or "en" from the `lang` trait ("auto" → the browser's language). */
export function resolveLang(trait: unknown, browserLanguage?: string): Lang {
  if (trait === "zh" || trait === "en") return trait;
  const language = browserLanguage ?? (typeof navigator === "undefined" ? "" : navigator.language);
  return /^zh\b/i.test(language ?? "") ? "zh" : "en";
}

export type Translate = (key: StringKey, vars?: Record<string, string | number>) => string;

/** A translate function for `lang`: `t("tokens", {prompt: 1, …})`. */
export function translator(lang: Lang): Translate {
  const table = lang === "zh" ? zh : en;
  return (key, vars) => table[key].replace(/\{(\w+)\}/g, (m, name: string) => (vars && name in vars ? String(vars[name]) : m));
}
