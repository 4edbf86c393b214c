/**
 * The wire contract with `ernie_widget/widget.py`: the message types are generated from
 * `ernie_widget/protocol.py` into `protocol.gen.ts`; this module adds the traits and validates untrusted input.
 */

import type { BrowserMessage, ContextItem, MetricsDict, StoredMessage, UsageDict, VariableEntry } from "./protocol.gen";

export type { BrowserMessage, ContextItem, KernelMessage, Role, TurnStatus, VariableEntry } from "./protocol.gen";
export type Usage = UsageDict;
export type Metrics = MetricsDict;

/** One web source of an answer; ERNIE's `^[index]^` markers cite it. Untrusted: the url may be anything. */
export interface Source {
  index: number;
  url: string;
  title: string;
}

/** What the front end keeps of a stored message (`parseMessages` drops the kernel-side fields). */
export type ChatMessage = Omit<StoredMessage, "excluded" | "finish_reason" | "search_results"> & {
  search_results?: Source[];
};

/** The synced traits the front end reads. */
export interface WidgetTraits {
  messages: unknown;
  status: string;
  lang: string;
  send_mode: string;
  model_label: string;
  placeholder: string;
  /** a standing notice above the transcript (e.g. "this is an offline demo model, not ERNIE"); plain text */
  banner: string;
  /** tokens the @-mentions of one message may use before the kernel shortens the largest (added by the kernel
   *  side of the @-mentions; absent in older kernels) */
  context_budget?: number;
  /** agent mode: tool calls run without asking (set from Python only); the header shows a badge */
  auto_approve?: boolean;
}

/** The part of anywidget's model the view uses (a subset of @anywidget/types' AnyModel). */
export interface ChatModel {
  get<K extends keyof WidgetTraits>(key: K): WidgetTraits[K];
  on(name: string, callback: (...args: any[]) => void): void;
  off(name?: string | null, callback?: ((...args: any[]) => void) | null): void;
  send(content: BrowserMessage, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
}

const SAFE_IMAGE_DATA_URL = /^data:image\/(?:png|jpe?g|gif|webp);base64,[A-Za-z0-9+/=\s]*$/;

/** True for the data URLs the widget will display as thumbnails (never SVG, never remote). */
export function isSafeImageDataUrl(value: unknown): value is string {
  return typeof value === "string" && SAFE_IMAGE_DATA_URL.test(value);
}

function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** A validated message plus its position in the trait (what `{type: "delete", index}` refers to). */
export interface IndexedMessage extends ChatMessage {
  index: number;
}

/** A short identifier-like string (model names, request ids), or undefined: the trait is untrusted input. */
function provenance(value: unknown): string | undefined {
  return typeof value === "string" && /^[\w.:\/-]{1,128}$/.test(value) ? value : undefined;
}

const MAX_SOURCES = 50;

/** Validate a list of sources (the `messages` trait or a `sources` message: both untrusted, the trait may come from
 *  a saved notebook): `{index, url, title}` with an index 1…999, one per index, by index, at most 50. */
export function parseSources(value: unknown): Source[] {
  if (!Array.isArray(value)) return [];
  const byIndex = new Map<number, Source>();
  for (const raw of value) {
    if (!raw || typeof raw !== "object") continue;
    const r = raw as Record<string, unknown>;
    const index = r.index;
    if (typeof index !== "number" || !Number.isInteger(index) || index < 1 || index > 999) continue;
    let url = str(r.url)?.trim() ?? "";
    if (url.length > 2048) url = ""; // cut short it would lead somewhere else (protocol.web_sources drops it too)
    const title = (str(r.title) ?? "").replace(/\s+/g, " ").trim().slice(0, 200);
    if (url || title) byIndex.set(index, { index, url, title });
  }
  return [...byIndex.values()].sort((a, b) => a.index - b.index).slice(0, MAX_SOURCES);
}

const MAX_CONTEXT_ITEMS = 50;

/** One validated @-mention snapshot (from a `mention` answer or a stored user message), or undefined. */
export function parseContextItem(value: unknown): ContextItem | undefined {
  if (!value || typeof value !== "object") return undefined;
  const r = value as Record<string, unknown>;
  const name = str(r.name);
  const text = str(r.text);
  const tokens = num(r.tokens);
  if (!name || text === undefined) return undefined;
  const item: ContextItem = { name: name.slice(0, 200), label: (str(r.label) ?? "").slice(0, 200), tokens: Math.max(0, Math.round(tokens ?? 0)), text };
  if (r.shortened === true) item.shortened = true;
  return item;
}

/** A user message's `context` (its @-mentions as sent): the valid items, at most 50. */
export function parseContext(value: unknown): ContextItem[] {
  if (!Array.isArray(value)) return [];
  return value.map(parseContextItem).filter((i): i is ContextItem => !!i).slice(0, MAX_CONTEXT_ITEMS);
}

/** The rows of a `variables` answer: `{name, kind, size}` strings each (a name is required), at most 500. */
export function parseVariables(value: unknown): VariableEntry[] {
  if (!Array.isArray(value)) return [];
  const out: VariableEntry[] = [];
  for (const raw of value.slice(0, 500)) {
    const r = (raw ?? {}) as Record<string, unknown>;
    const name = str(r.name);
    if (name) out.push({ name: name.slice(0, 200), kind: (str(r.kind) ?? "").slice(0, 80), size: (str(r.size) ?? "").slice(0, 80) });
  }
  return out;
}

/** Validate the `messages` trait: drop what is malformed, keep only known fields with the right types. */
export function parseMessages(value: unknown): IndexedMessage[] {
  if (!Array.isArray(value)) return [];
  const out: IndexedMessage[] = [];
  for (const [index, raw] of value.entries()) {
    if (!raw || typeof raw !== "object") continue;
    const m = raw as Record<string, unknown>;
    if (m.role !== "user" && m.role !== "assistant") continue;
    const msg: IndexedMessage = { index, role: m.role, content: str(m.content) ?? "" };
    if (num(m.mid) !== undefined) msg.mid = num(m.mid);
    if (str(m.reasoning)) msg.reasoning = str(m.reasoning);
    if (m.usage && typeof m.usage === "object") {
      const u = m.usage as Record<string, unknown>;
      msg.usage = { prompt_tokens: num(u.prompt_tokens), completion_tokens: num(u.completion_tokens), total_tokens: num(u.total_tokens) };
    }
    if (m.metrics && typeof m.metrics === "object") {
      const x = m.metrics as Record<string, unknown>;
      msg.metrics = { ttft_ms: num(x.ttft_ms), duration_ms: num(x.duration_ms), tokens_per_s: num(x.tokens_per_s) };
    }
    if (str(m.error)) msg.error = str(m.error);
    if (m.error_kind === "auth") msg.error_kind = "auth";
    if (m.status === "ok" || m.status === "stopped" || m.status === "error") msg.status = m.status;
    if (m.truncated === true) msg.truncated = true;
    if (str(m.notice)) msg.notice = str(m.notice);
    if (Array.isArray(m.images)) {
      const images = m.images.filter(isSafeImageDataUrl);
      if (images.length) msg.images = images;
    }
    if (m.withdrawn === true) msg.withdrawn = true;
    const model = provenance(m.model);
    if (model) msg.model = model;
    const requestId = provenance(m.request_id);
    if (requestId) msg.request_id = requestId;
    const sources = parseSources(m.search_results);
    if (sources.length) msg.search_results = sources;
    const context = m.role === "user" ? parseContext(m.context) : [];
    if (context.length) msg.context = context;
    out.push(msg);
  }
  return out;
}
