/**
 * What the inline-completion provider sends to the server extension, and how it reads the answer.
 *
 * The browser sends only text it already shows (the cell's prefix and suffix, its language, earlier cells): never a
 * base URL, a provider or a model name, which the server would refuse anyway (the key lives there; an endpoint that
 * took a host would point the key at any host). Pure functions, so vitest covers them without JupyterLab.
 */

/** The body of `POST ernie-widget/completion` (the server's strict model refuses any other field). */
export interface CompletionBody {
  prefix: string;
  suffix: string;
  language: string;
  cell_type: "code" | "markdown";
  context: string[];
}

/** One NDJSON line of the answer: the whole cleaned completion so far, the end, or an error. */
export interface CompletionLine {
  text?: string;
  done?: boolean;
  error?: { message?: string; code?: string };
}

/** Bounds on what one request carries: the server bounds them too, this keeps requests small on the wire. */
export const LIMITS = { prefix: 8000, suffix: 2000, cellChars: 2000, contextChars: 6000, contextCells: 8 } as const;

/** The text nearest the cursor: the end of the prefix, the start of the suffix. */
function tail(text: string, n: number): string {
  return text.length <= n ? text : text.slice(text.length - n);
}

function head(text: string, n: number): string {
  return text.length <= n ? text : text.slice(0, n);
}

/** Earlier cells, nearest last, within the context budget (the nearest cells are kept first). */
export function boundedContext(sources: readonly string[]): string[] {
  const picked: string[] = [];
  let used = 0;
  for (let i = sources.length - 1; i >= 0 && picked.length < LIMITS.contextCells; i--) {
    const src = tail(sources[i], LIMITS.cellChars);
    if (!src.trim()) continue;
    if (used + src.length > LIMITS.contextChars) break;
    used += src.length;
    picked.unshift(src);
  }
  return picked;
}

/** The language the model should write: the kernel's language for code cells, markdown for markdown cells. */
export function languageOf(cellType: string, kernelLanguage: string | undefined, mimeType: string | undefined): string {
  if (cellType === "markdown") return "markdown";
  if (kernelLanguage) return kernelLanguage.toLowerCase();
  if (mimeType && /python/i.test(mimeType)) return "python";
  return "python";
}

/** The request body for a cursor at `offset` in `text`. */
export function buildBody(text: string, offset: number, cellType: string, language: string,
                          earlierCells: readonly string[]): CompletionBody {
  const at = Math.max(0, Math.min(offset, text.length));
  return {
    prefix: tail(text.slice(0, at), LIMITS.prefix),
    suffix: head(text.slice(at), LIMITS.suffix),
    language,
    cell_type: cellType === "markdown" ? "markdown" : "code",
    context: boundedContext(earlierCells),
  };
}

/** Whether to ask at all: nothing to continue in an empty cell, and never from inside a run of blank lines. */
export function worthAsking(body: CompletionBody): boolean {
  return body.prefix.trim().length > 0;
}

/**
 * The NDJSON lines of a streamed body, as they arrive. A line cut by a chunk boundary waits for its end; a byte
 * sequence cut inside a multi-byte character (CJK) is decoded only when whole (`TextDecoder` with `stream: true`).
 * A line that is not JSON is skipped rather than trusted.
 */
export async function* readLines(body: ReadableStream<Uint8Array>): AsyncGenerator<CompletionLine> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      pending += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let nl = pending.indexOf("\n");
      while (nl >= 0) {
        const line = parseLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        if (line) yield line;
        nl = pending.indexOf("\n");
      }
      if (done) {
        const last = parseLine(pending);
        if (last) yield last;
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function parseLine(raw: string): CompletionLine | null {
  const text = raw.trim();
  if (!text) return null;
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? (value as CompletionLine) : null;
  } catch {
    return null;
  }
}

/** A short, one-line message for the status and the ghost-text error (never a modal while typing). */
export function errorMessage(line: CompletionLine | null, status?: number): string {
  const message = line?.error?.message;
  if (typeof message === "string" && message) return message.split("\n")[0].slice(0, 300);
  if (status === 403 || status === 401) return "未登录 Jupyter / not authorized by the Jupyter server";
  if (status === 404) {
    return "服务器扩展未启用 / the ernie-widget server extension is not enabled (jupyter server extension list)";
  }
  return `补全失败 / completion failed${status ? ` (HTTP ${status})` : ""}`;
}
