/**
 * Ghost-text completion from ERNIE (or the offline model) through JupyterLab's inline completer (JupyterLab ≥ 4.1).
 *
 * Requests go to the ernie-widget server extension (`POST {baseUrl}ernie-widget/completion`), never through the
 * kernel: a busy kernel must not hold up a completion. `fetch()` answers at once with an empty, incomplete item and a
 * token; JupyterLab then iterates `stream(token)`, and each NDJSON line of the server's answer (the whole cleaned
 * completion so far) replaces the ghost text, so it grows as tokens arrive.
 *
 * Cancelling: JupyterLab's `fetch(request, context)` takes no abort signal, so the provider holds one
 * `AbortController` per request and aborts it on the next fetch, on any edit of the cell it was asked for (a
 * keystroke during the debounce delay calls no provider), on a cell change, and when the stream ends early. Aborting
 * the browser request closes the connection; the server extension then closes the upstream request.
 *
 * Off by default: with it on, every pause in typing sends the cell and earlier cells to the configured model. The
 * completer's own per-provider settings (`enabled`, `debouncerDelay`, `timeout`) apply; `schema.default` sets ours.
 */
import type { CompletionHandler, IInlineCompletionContext, IInlineCompletionItem,
  IInlineCompletionList, IInlineCompletionProvider } from "@jupyterlab/completer";
import { ServerConnection } from "@jupyterlab/services";
import { Signal, type ISignal } from "@lumino/signaling";
import type { Widget } from "@lumino/widgets";
import { buildBody, type CompletionLine, errorMessage, languageOf, readLines, worthAsking } from "./inline-request";

export const PROVIDER_ID = "ernie-widget";
export const COMPLETION_PATH = "ernie-widget/completion";

/** The server extension's endpoint (`path` "/status" for its status), under the server's base URL. */
export function completionUrl(settings: ServerConnection.ISettings, path = ""): string {
  return settings.baseUrl.replace(/\/?$/, "/") + COMPLETION_PATH + path;
}

/** What the status shows: off, ready, fetching, or failed with a one-line message. */
export type InlineState = { kind: "idle" | "fetching" } | { kind: "failed"; message: string };

interface CellLike {
  model: {
    type: string;
    sharedModel: { getSource(): string };
    contentChanged: ISignal<unknown, void>;
  };
}

interface NotebookLike {
  content: { activeCell: CellLike | null; widgets: readonly CellLike[] };
  sessionContext?: { session?: { kernel?: { info?: Promise<{ language_info?: { name?: string } }> } | null } | null };
}

function asNotebook(widget: Widget): NotebookLike | null {
  const candidate = widget as unknown as Partial<NotebookLike>;
  const content = candidate.content as Partial<NotebookLike["content"]> | undefined;
  return content && "activeCell" in content && Array.isArray(content.widgets) ? (candidate as NotebookLike) : null;
}

interface Pending {
  controller: AbortController;
  lines: AsyncGenerator<CompletionLine>;
  release: () => void;
}

export class ErnieInlineProvider implements IInlineCompletionProvider {
  readonly name = "ERNIE";
  readonly identifier = PROVIDER_ID;
  /** Defaults for JupyterLab's per-provider settings: off until the user turns it on. */
  readonly schema = {
    default: { enabled: false, debouncerDelay: 300, timeout: 20000 },
  } as const;

  private readonly _stateChanged = new Signal<this, InlineState>(this);
  private _pending = new Map<string, Pending>();
  private _current: Pending | null = null;
  private _next = 0;

  constructor(private readonly _settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** Fetching / failed / idle, for the status bar. */
  get stateChanged(): ISignal<this, InlineState> {
    return this._stateChanged;
  }

  /** Aborts the request in flight (the server closes the upstream request when the connection goes). */
  abort(): void {
    const current = this._current;
    this._current = null;
    if (current) {
      current.controller.abort();
      current.release();
    }
  }

  async fetch(request: CompletionHandler.IRequest, context: IInlineCompletionContext
  ): Promise<IInlineCompletionList<IInlineCompletionItem>> {
    this.abort();
    const notebook = asNotebook(context.widget);
    const cell = notebook?.content.activeCell ?? null;
    const cellType = cell?.model.type ?? "code";
    const earlier = notebook && cell ? notebook.content.widgets.slice(0, notebook.content.widgets.indexOf(cell)) : [];
    const kernelLanguage = cellType === "code" ? await kernelLanguageOf(notebook) : undefined;
    const body = buildBody(request.text, request.offset, cellType,
                           languageOf(cellType, kernelLanguage, request.mimeType),
                           earlier.filter((c) => c.model.type !== "raw").map((c) => c.model.sharedModel.getSource()));
    if (!worthAsking(body)) return { items: [] };

    const controller = new AbortController();
    // any edit of this cell makes the answer stale: stop paying for it at once
    const onEdit = () => {
      if (cell && cell.model.sharedModel.getSource() !== request.text) controller.abort();
    };
    cell?.model.contentChanged.connect(onEdit);
    const release = () => {
      cell?.model.contentChanged.disconnect(onEdit);
    };
    const url = completionUrl(this._settings);
    this._setState({ kind: "fetching" });
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, {
        method: "POST", body: JSON.stringify(body), signal: controller.signal,
        headers: { "Content-Type": "application/json" },
      }, this._settings);
    } catch (error) {
      release();
      this._failedUnlessAborted(controller, error);
      return { items: [] };
    }
    if (!response.ok || !response.body) {
      release();
      const first = response.body ? await firstLine(response.body) : null;
      this._setState({ kind: "failed", message: errorMessage(first, response.status) });
      return { items: [] };
    }
    const token = `ernie-${++this._next}`;
    const pending: Pending = { controller, lines: readLines(response.body), release };
    this._pending.set(token, pending);
    this._current = pending;
    return { items: [{ insertText: "", isIncomplete: true, token }] };
  }

  async *stream(token: string): AsyncGenerator<{ response: IInlineCompletionItem }> {
    const pending = this._pending.get(token);
    if (!pending) return;
    this._pending.delete(token);
    let text = "";
    let complete = false;
    try {
      for await (const line of pending.lines) {
        if (line.error) {
          const message = errorMessage(line);
          this._setState({ kind: "failed", message });
          yield { response: { insertText: text, isIncomplete: false, error: { message } } };
          return;
        }
        if (typeof line.text === "string") {
          text = line.text;
          yield { response: { insertText: text, isIncomplete: !line.done } };
        }
        if (line.done) complete = true;
      }
      complete = true; // the server ended the body
      this._setState({ kind: "idle" });
    } catch (error) {
      this._failedUnlessAborted(pending.controller, error);
    } finally {
      // ended early (JupyterLab stopped reading, an error line, a failure): close the connection, so the server
      // closes the upstream request; a body read to its end needs nothing
      if (!complete) pending.controller.abort();
      pending.release();
      if (this._current === pending) this._current = null;
    }
  }

  private _failedUnlessAborted(controller: AbortController, error: unknown): void {
    if (controller.signal.aborted) {
      this._setState({ kind: "idle" });
      return;
    }
    this._setState({ kind: "failed", message: errorMessage(null) + (error instanceof Error ? `: ${error.message}` : "") });
  }

  private _setState(state: InlineState): void {
    this._stateChanged.emit(state);
  }
}

async function kernelLanguageOf(notebook: NotebookLike | null): Promise<string | undefined> {
  const info = notebook?.sessionContext?.session?.kernel?.info;
  if (!info) return undefined;
  try {
    // the kernel answered kernel_info long ago; a kernel still starting must not hold the request up
    const reply = await Promise.race([info, new Promise<undefined>((resolve) => setTimeout(resolve, 50))]);
    return reply?.language_info?.name;
  } catch {
    return undefined;
  }
}

async function firstLine(body: ReadableStream<Uint8Array>): Promise<CompletionLine | null> {
  try {
    for await (const line of readLines(body)) return line;
  } catch {
    // an unreadable error body still gets the HTTP status in the message
  }
  return null;
}
