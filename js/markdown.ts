/**
 * Safe, incremental Markdown rendering for model output.
 *
 * `renderFull(text)` renders a whole answer in one pass. `IncrementalRenderer` renders the same text as it
 * streams: it splits it into top-level blocks with markdown-it's own block parser, renders each finished
 * block once and keeps (freezes) its DOM nodes, and re-renders only the open tail, at most once per
 * scheduled frame. Cost is linear in the answer; whole re-renders are quadratic
 * (docs/notebook-facts.md §9.3).
 * Invariant (tested over random Markdown and random chunkings): after every flush the container's
 * `innerHTML` equals `renderFull(text so far)`.
 *
 * Safety (model output is untrusted, and so is a transcript restored from a saved notebook):
 * - markdown-it with `html: false`: raw HTML is shown as text;
 * - links only to http(s), mailto and `#` (others stay literal text), with rel/target set;
 * - images are never loaded: a placeholder button carries the URL, the widget loads it on click (http(s) only);
 * - each block's HTML then goes through DOMPurify with an allowlist (sanitize.ts).
 *
 * ERNIE's web-search citation markers (`^[1]^`, `^[1][3]^`) in text become `<span class="ernie-cite">` with the
 * marker as its text; the answer's view links them to its sources (sources.ts), so the HTML here stays a function
 * of the text alone, whenever the sources arrive.
 */
import MarkdownItCallable, { type Env, type MarkdownIt, type StateCore, type Token } from "markdown-it";
import cjkFriendly from "markdown-it-cjk-friendly";
import { highlightCode } from "./highlight";
import { mathPlugin } from "./math";
import { LINK_REL, LOADABLE_IMAGE, SAFE_HREF, sanitizeHtml } from "./sanitize";

/** A citation marker: `^[n]^` with one to nine bracketed numbers (render.py has the same rule). */
export const CITATION = /\^((?:\[\d{1,3}\]){1,9})\^/g;

/** Split text tokens at citation markers. Code, math and link targets are other tokens, and text inside a link
 *  is skipped (a link in a link), so a marker there stays as written. */
function citations(state: StateCore): void {
  for (const block of state.tokens) {
    if (block.type !== "inline" || !block.children || !block.content.includes("^[")) continue;
    const children: Token[] = [];
    const piece = (type: string, content: string): void => {
      const token = new state.Token(type, "", 0);
      token.content = content;
      children.push(token);
    };
    let inLink = 0;
    for (const token of block.children) {
      inLink += token.type === "link_open" ? 1 : token.type === "link_close" ? -1 : 0;
      if (token.type !== "text" || inLink || !token.content.includes("^[")) {
        children.push(token);
        continue;
      }
      let pos = 0;
      for (const m of token.content.matchAll(CITATION)) {
        if (m.index > pos) piece("text", token.content.slice(pos, m.index));
        piece("ernie_cite", m[0]);
        pos = m.index + m[0].length;
      }
      if (pos < token.content.length) piece("text", token.content.slice(pos));
    }
    block.children = children;
  }
}

/**
 * markdown-it's `inline` core rule, skipping the blocks bigger than MAX_BLOCK_CHARS: renderBlock shows those as
 * their text anyway, and inline-parsing them cost up to 75 ms per update (50,000 "[" in one paragraph). A skipped
 * inline token is marked so that renderBlock never renders it empty.
 */
function boundedInline(state: StateCore): void {
  const starts = lineStarts(state.src);
  const at = (line: number): number => starts[Math.min(line, starts.length - 1)];
  let skip = false;
  for (const token of state.tokens) {
    if (token.level === 0 && token.nesting !== -1 && token.map) skip = at(token.map[1]) - at(token.map[0]) > MAX_BLOCK_CHARS;
    if (token.type !== "inline") continue;
    if (skip) token.meta = { ...token.meta, unparsed: true };
    else state.md.inline.parse(token.content, state.md, state.env, token.children ?? (token.children = []));
  }
}

function createMarkdown(): MarkdownIt {
  const md = MarkdownItCallable({ html: false, linkify: false, breaks: true, typographer: false });
  // Reference-style definitions resolve links anywhere in the document: a late `[x]: url` would change
  // blocks that were already rendered and frozen. Without the rule, `[x]: url` is shown as text.
  md.disable("reference");
  md.validateLink = (url: string) => SAFE_HREF.test(url.trim());
  md.use(cjkFriendly).use(mathPlugin);
  md.core.ruler.at("inline", boundedInline);
  md.core.ruler.push("ernie_citations", citations);

  const escape = md.utils.escapeHtml;
  const rules = md.renderer.rules;

  rules.link_open = (tokens, idx, options, _env, self) => {
    tokens[idx].attrSet("rel", LINK_REL);
    tokens[idx].attrSet("target", "_blank");
    return self.renderToken(tokens, idx, options);
  };

  rules.image = (tokens, idx, options, env, self) => {
    const token = tokens[idx];
    const src = String(token.attrGet("src") ?? "");
    const alt = self.renderInlineAsText(token.children ?? [], options, env);
    if (LOADABLE_IMAGE.test(src)) {
      return `<button type="button" class="ernie-image-blocked" data-src="${escape(src)}" title="${escape(src)}">${escape(alt)}</button>`;
    }
    return `<span class="ernie-image-blocked">${escape(alt)}</span>`;
  };

  rules.fence = (tokens, idx) => {
    const token = tokens[idx];
    const lang = md.utils.unescapeAll(token.info).trim().split(/\s+/)[0] ?? "";
    const safeLang = lang.replace(/[^\w+#.-]/g, "").slice(0, 32);
    const highlighted = highlightCode(token.content, safeLang);
    const cls = safeLang ? ` class="language-${escape(safeLang)}${highlighted === null ? "" : " hljs"}"` : "";
    // `ernie-fence`: fenced blocks are the ones the kernel numbers for `%ernie --paste N` (render.py).
    return `<pre class="ernie-code ernie-fence"><code${cls}>${highlighted ?? escape(token.content)}</code></pre>\n`;
  };

  rules.ernie_cite = (tokens, idx) => `<span class="ernie-cite">${escape(tokens[idx].content)}</span>`;

  rules.code_block = (tokens, idx) =>
    `<pre class="ernie-code"><code>${escape(tokens[idx].content)}</code></pre>\n`;

  // Tables carry alignment as `style="text-align:…"`; styles are stripped, so use classes.
  const align = (token: Token): void => {
    const style = token.attrGet("style");
    if (style === null) return;
    const match = /text-align:(left|right|center)/.exec(String(style));
    token.attrs = (token.attrs ?? []).filter(([name]) => name !== "style");
    if (match) token.attrJoin("class", `ernie-align-${match[1]}`);
  };
  rules.th_open = (tokens, idx, options, _env, self) => (align(tokens[idx]), self.renderToken(tokens, idx, options));
  rules.td_open = rules.th_open;
  return md;
}

let shared: MarkdownIt | null = null;

/** The one configured markdown-it instance (created on first use: keeps the widget's `initialize` cheap). */
export function markdown(): MarkdownIt {
  return (shared ??= createMarkdown());
}

/** Normalize line endings as markdown-it does, so offsets into our text match its line map. */
export function normalizeText(text: string): string {
  return text.replace(/\r\n?/g, "\n").replace(/\0/g, "\uFFFD");
}

/** Container markers (list bullets, ordered-list numbers, `>`) one line may open before the rest is text. */
export const MAX_LINE_NESTING = 24;
const MARKER = /[ \t]*(?:[-*+>]|\d{1,9}[.)])(?=[ \t]|$)/y;

/**
 * Past markdown-it's nesting limit (maxNesting 100: fifty "- " on one line) the parser stops and everything
 * after that line vanished from the answer without a sign. A line with more than MAX_LINE_NESTING markers is
 * shown as text (its first marker escaped), so the rest of the answer still renders. Line-local (no line is added or
 * removed), so the incremental renderer's line-based block boundaries are unchanged.
 */
export function limitNesting(text: string): string {
  if (!/(?:^|\n)[ \t]*(?:[-*+>]|\d{1,9}[.)])[ \t]/.test(text)) return text;
  return text.replace(/^.*$/gm, (line) => {
    let pos = 0;
    let count = 0;
    const markers: Array<[number, number]> = [];
    for (;;) {
      MARKER.lastIndex = pos;
      const m = MARKER.exec(line);
      if (!m) break;
      markers.push([pos, MARKER.lastIndex]);
      pos = MARKER.lastIndex;
      count++;
    }
    if (count <= MAX_LINE_NESTING) return line;
    // The whole line is text: its first marker escaped, it opens no container at all. Keeping the first
    // MAX_LINE_NESTING levels open made every such line 24 nested lists, and 100 k characters of them cost
    // seconds per update (benchmarks/browser_render.py); no real answer nests a line that deep.
    const [start, end] = markers[0];
    return line.slice(0, start) + line.slice(start, end).replace(/([-*+>.)])$/, "\\$1") + line.slice(end);
  });
}

interface Block {
  /** token range [start, end) */
  start: number;
  end: number;
  /** first source line of the block */
  line: number;
  /** set when markdown-it could not parse the text: shown as this plain text */
  text?: string;
}

/** Split a token stream into top-level blocks (a block ends where the nesting level returns to 0). */
function topLevelBlocks(tokens: Token[]): Block[] {
  const blocks: Block[] = [];
  let i = 0;
  while (i < tokens.length) {
    const start = i;
    let level = 0;
    do {
      level += tokens[i].nesting;
      i++;
    } while (level > 0 && i < tokens.length);
    blocks.push({ start, end: i, line: tokens[start].map?.[0] ?? 0 });
  }
  return blocks;
}

/** Text as HTML element content, escaped exactly as the DOM serializes a text node (so innerHTML round-trips). */
function escapeText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\u00a0/g, "&nbsp;");
}

/** Tokens one block may render to (a 100-row table is ~1,500, a long paragraph a few hundred). */
export const MAX_BLOCK_TOKENS = 10_000;

/**
 * Characters one block may have and still be formatted. Past it, one element's highlighting, typesetting and
 * layout cost hundreds of ms per update (a 100 k-character code fence 450 ms, a 100 k-character formula 7.8 s in
 * KaTeX); real answers' blocks are far smaller (a 300-line code fence is ~12 k).
 */
export const MAX_BLOCK_CHARS = 20_000;

/**
 * Top-level blocks one answer may format; past them, the rest of the answer is plain text. Laying out 25,000
 * headings took Chromium 190–250 ms per update; a long real answer has a few hundred blocks.
 */
export const MAX_ANSWER_BLOCKS = 2_000;

/**
 * Lines per part of long plain text. Each full part is laid out only near the viewport (`content-visibility: auto`
 * in widget.css): laying out 50,000 lines of text in one element took 130–230 ms on every update.
 */
export const PART_LINES = 100;

/** `text` split into full parts of PART_LINES lines (each ending in "\n") and what is left after them. */
function splitParts(text: string, from = 0): { full: string[]; left: number } {
  const full: string[] = [];
  for (;;) {
    let end = from;
    let lines = 0;
    while (lines < PART_LINES) {
      const newline = text.indexOf("\n", end);
      if (newline < 0) break;
      end = newline + 1;
      lines++;
    }
    if (lines < PART_LINES) return { full, left: from };
    full.push(text.slice(from, end));
    from = end;
  }
}

/** The parts `splitParts(text)` found, as HTML: each full part, then the last one (what is left, maybe empty). */
function partsHtml(text: string, full: string[], left: number): string {
  const parts = full.map((part) => `<div class="ernie-text-part">${escapeText(part)}</div>`);
  return `${parts.join("")}<div class="ernie-text-last">${escapeText(text.slice(left))}</div>`;
}

/** A block whose rendering threw, shown as its source text: the text stays readable, the rest of the answer renders. */
export function fallbackBlock(source: string): string {
  const text = source.replace(/^\n+|\n+$/g, "");
  if (!text) return "";
  const { full, left } = splitParts(text);
  if (!full.length) return `<div class="ernie-render-fallback">${escapeText(text)}</div>`;
  return `<div class="ernie-render-fallback">${partsHtml(text, full, left)}</div>`;
}

/** The rest of an answer past MAX_ANSWER_BLOCKS, as plain text in parts (the last one may still grow). */
function restHtml(text: string): string {
  const { full, left } = splitParts(text);
  return `<div class="ernie-render-fallback ernie-rest">${partsHtml(text, full, left)}</div>`;
}

/** The source lines [first, last) a block's tokens cover. */
function blockLines(tokens: Token[], block: Block): [number, number] {
  const first = tokens[block.start].map?.[0] ?? block.line;
  let last = first + 1;
  for (let i = block.start; i < block.end; i++) last = Math.max(last, tokens[i].map?.[1] ?? last);
  return [first, last];
}

/**
 * Sanitized HTML of one top-level block, or — if rendering it throws (any exception: a stack overflow from a
 * pathological input that slips past the guards, a bug in a plugin) or it is too big to format — its source lines
 * as plain text. One block must never take the rest of the answer, or a restored chat, down with it.
 * `starts`: lineStarts(src).
 */
function renderBlock(md: MarkdownIt, tokens: Token[], block: Block, env: Env, src: string, starts: number[]): string {
  if (block.text !== undefined) return fallbackBlock(block.text);
  const [first, last] = blockLines(tokens, block);
  const from = starts[Math.min(first, starts.length - 1)];
  const to = starts[Math.min(last, starts.length - 1)];
  const own = tokens.slice(block.start, block.end);
  if (to - from > MAX_BLOCK_CHARS || own.some((t) => t.meta?.unparsed)) return fallbackBlock(src.slice(from, to));
  try {
    // A block of more than MAX_BLOCK_TOKENS elements is its text: laying out "`a" × 50,000 (25,000 <code>) or a
    // 16,000-row table took the browser 0.5–1.6 s per update
    if (own.reduce((n, t) => n + 1 + (t.children?.length ?? 0), 0) > MAX_BLOCK_TOKENS) throw 0;
    return sanitizeHtml(md.renderer.render(own, md.options, env));
  } catch {
    return fallbackBlock(src.slice(from, to));
  }
}

/**
 * Parse `src` into tokens and top-level blocks. If markdown-it itself throws, the whole text becomes one block
 * shown as plain text — rendering goes on, and nothing is dropped.
 */
function parseBlocks(md: MarkdownIt, src: string, env: Env): { tokens: Token[]; blocks: Block[] } {
  try {
    const tokens = md.parse(limitNesting(src), env);
    return { tokens, blocks: topLevelBlocks(tokens) };
  } catch {
    return { tokens: [], blocks: [{ start: 0, end: 0, line: 0, text: src }] };
  }
}

/** Offsets of the start of every line of `src` (lines split on "\n"), plus `src.length` at the end. */
function lineStarts(src: string): number[] {
  const starts = [0];
  for (let i = src.indexOf("\n"); i >= 0; i = src.indexOf("\n", i + 1)) starts.push(i + 1);
  starts.push(src.length);
  return starts;
}

/** Sanitized HTML of a whole text, rendered in one pass. */
export function renderFull(text: string): string {
  const md = markdown();
  const env: Env = {};
  const src = normalizeText(text);
  const { tokens, blocks } = parseBlocks(md, src, env);
  const starts = lineStarts(src);
  const html = blocks.slice(0, MAX_ANSWER_BLOCKS).map((block) => renderBlock(md, tokens, block, env, src, starts));
  if (blocks.length > MAX_ANSWER_BLOCKS) html.push(restHtml(src.slice(starts[blocks[MAX_ANSWER_BLOCKS].line])));
  return html.join("");
}

/** The rendered HTML of one open block and its DOM nodes (null until inserted). */
interface Segment {
  html: string;
  nodes: ChildNode[] | null;
}

export interface IncrementalRendererOptions {
  /** Run `flush` later (default: the next animation frame). Pass `(f) => f()` to render synchronously. */
  schedule?: (flush: () => void) => void;
  /** Called with the top-level nodes of each block when it is frozen (e.g. to add code-block buttons). */
  onCommit?: (nodes: Element[]) => void;
  /** Called after each flush with the nodes it inserted (e.g. to link citation markers in them). */
  onRender?: (nodes: ChildNode[]) => void;
}

const defaultSchedule = (flush: () => void): void => {
  if (typeof requestAnimationFrame === "function") requestAnimationFrame(() => flush());
  else setTimeout(flush, 16);
};

function guarded(f: () => void): void {
  try {
    f();
  } catch (error) {
    console.error("ernie: decorating a rendered block failed", error);
  }
}

/** Between two segments' HTML parsed together: a comment no sanitized block contains (random per page). */
const SPLIT = `ernie-split-${Math.random().toString(36).slice(2)}`;

/**
 * Parse the HTML of several segments in one <template> (which keeps scripts inert, not that any survive) and
 * give each its nodes. One parse, not one per block: restoring 25,000 small blocks took 270 ms in per-block parses.
 */
function parseSegments(doc: Document, segments: Segment[]): void {
  const template = doc.createElement("template");
  template.innerHTML = segments.map((segment) => segment.html).join(`<!--${SPLIT}-->`);
  let k = 0;
  segments[0].nodes = [];
  for (const node of Array.from(template.content.childNodes)) {
    if (node.nodeType === 8 && (node as Comment).data === SPLIT && k + 1 < segments.length) segments[++k].nodes = [];
    else segments[k].nodes?.push(node);
  }
}

/**
 * Renders streamed Markdown into `container`, freezing finished blocks.
 *
 * A block is frozen once another block follows it *and* the first line of that next block is complete:
 * until its newline arrives a line can still change what ends the block before it (`#` is an empty
 * heading, `#x` a paragraph continuation; `- |` becomes a table delimiter row with one more `-`).
 */
export class IncrementalRenderer {
  readonly container: HTMLElement;
  private readonly schedule: (flush: () => void) => void;
  private readonly onCommit?: (nodes: Element[]) => void;
  private readonly onRender?: (nodes: ChildNode[]) => void;
  private src = "";
  private heldCR = false;
  private frozenAt = 0;
  private tail: Segment[] = [];
  private pending = false;
  private finished = false;
  private generation = 0;
  /** top-level blocks frozen so far (MAX_ANSWER_BLOCKS) */
  private committed = 0;
  /** past MAX_ANSWER_BLOCKS: the plain-text rest (null: not reached) and its last, growing part */
  private restEl: HTMLElement | null = null;
  private restLast: HTMLElement | null = null;

  constructor(container: HTMLElement, options: IncrementalRendererOptions = {}) {
    this.container = container;
    this.schedule = options.schedule ?? defaultSchedule;
    this.onCommit = options.onCommit;
    this.onRender = options.onRender;
  }

  /** All text received so far (line endings normalized). */
  get text(): string {
    return this.heldCR ? this.src + "\n" : this.src;
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /** Append streamed text; rendering happens on the next scheduled flush. */
  push(chunk: string): void {
    if (!chunk) return;
    if (this.finished) {
      // More text after finish (e.g. an answer that was continued): the last block may change, start over.
      this.replace(this.text + chunk);
      return;
    }
    let text = (this.heldCR ? "\r" : "") + chunk;
    // A "\r\n" may be split across chunks: hold a trailing "\r" until we see what follows it.
    this.heldCR = text.endsWith("\r");
    if (this.heldCR) text = text.slice(0, -1);
    this.src += normalizeText(text);
    this.request();
  }

  /** Make the rendered text equal `text`: append when it extends what we have, otherwise re-render. */
  replace(text: string): void {
    const next = normalizeText(text);
    if (!this.finished && next.startsWith(this.text)) {
      if (this.heldCR) {
        this.src += "\n";
        this.heldCR = false;
        this.request();
      }
      this.push(next.slice(this.src.length));
      return;
    }
    if (this.finished && next === this.src) return;
    this.reset();
    this.src = next;
    this.request();
  }

  /** Render everything now and freeze the last block: the answer is complete. */
  finish(): void {
    if (this.heldCR) {
      this.src += "\n";
      this.heldCR = false;
    }
    this.finished = true;
    this.flush();
  }

  /** Drop everything rendered so far. */
  reset(): void {
    this.generation++;
    this.container.replaceChildren();
    this.src = "";
    this.heldCR = false;
    this.frozenAt = 0;
    this.tail = [];
    this.pending = false;
    this.finished = false;
    this.committed = 0;
    this.restEl = null;
    this.restLast = null;
  }

  private request(): void {
    if (this.pending) return;
    this.pending = true;
    const generation = this.generation;
    this.schedule(() => {
      if (generation === this.generation && this.pending) this.flush();
    });
  }

  /** Render the tail now (normally called by the scheduler). */
  flush(): void {
    this.pending = false;
    if (this.restEl) {
      this.renderRest();
      return;
    }
    const md = markdown();
    const tailSrc = this.src.slice(this.frozenAt);
    const env: Env = {};
    const { tokens, blocks } = parseBlocks(md, tailSrc, env);

    let frozen = 0;
    const starts = lineStarts(tailSrc);
    // Line n is complete when line n + 1 starts within the text (i.e. a newline ends line n).
    const complete = (line: number): boolean => line + 1 < starts.length - 1;
    if (this.finished) frozen = blocks.length;
    else {
      while (frozen + 1 < blocks.length && complete(blocks[frozen + 1].line)) frozen++;
    }
    // Past MAX_ANSWER_BLOCKS the rest is plain text, cut where block number MAX_ANSWER_BLOCKS starts: once that
    // start is as certain as a freeze (so streaming and a restored transcript cut at the same line).
    const room = MAX_ANSWER_BLOCKS - this.committed;
    let restLine = -1;
    if (blocks.length > room && (this.finished || frozen >= room)) {
      restLine = blocks[room].line;
      blocks.length = room;
      frozen = room;
    }

    // Render every block of the tail; reuse the DOM of a block whose HTML did not change since the last
    // flush (no flicker, text selection survives, and the final DOM keeps the nodes seen while streaming).
    const segments: Segment[] = blocks.map((block, k) => {
      const html = renderBlock(md, tokens, block, env, tailSrc, starts);
      const old = this.tail[k];
      return old && old.html === html ? old : { html, nodes: null };
    });
    for (const old of this.tail) {
      if (!segments.includes(old)) for (const node of old.nodes ?? []) node.remove();
    }
    const doc = this.container.ownerDocument;
    const fresh = new Set(segments.filter((segment) => !segment.nodes));
    if (fresh.size) parseSegments(doc, [...fresh]);
    // Each run of fresh segments goes in with one call, before the first node of the next kept segment (the tail
    // is last in the container: a run at the end is appended).
    const inserted: ChildNode[] = [];
    let run = doc.createDocumentFragment();
    for (const segment of segments) {
      const nodes = segment.nodes ?? [];
      if (fresh.has(segment)) {
        for (const node of nodes) run.append(node);
        inserted.push(...nodes);
      } else if (nodes.length && run.hasChildNodes()) {
        this.container.insertBefore(run, nodes[0]);
        run = doc.createDocumentFragment();
      }
    }
    if (run.hasChildNodes()) this.container.append(run);
    // The callbacks decorate what is already shown (citation links, code buttons): one failing must not leave the
    // renderer's own state half-updated, or every later flush of this answer would go wrong.
    if (inserted.length) guarded(() => this.onRender?.(inserted));
    for (let k = 0; k < frozen; k++) {
      guarded(() => this.onCommit?.((segments[k].nodes ?? []).filter((n): n is Element => n.nodeType === 1)));
    }
    this.tail = segments.slice(frozen);
    this.committed += frozen;
    if (restLine >= 0) {
      this.frozenAt += starts[restLine];
      this.renderRest();
    } else if (this.finished) this.frozenAt = this.src.length;
    else if (frozen > 0) this.frozenAt += starts[blocks[frozen].line];
  }

  /**
   * The rest of the answer past MAX_ANSWER_BLOCKS, as plain text: full parts of PART_LINES lines are appended
   * once, only the last part is rewritten. `frozenAt` is where that last part starts. The same DOM as restHtml.
   */
  private renderRest(): void {
    const doc = this.container.ownerDocument;
    if (!this.restEl || !this.restLast) {
      this.restEl = doc.createElement("div");
      this.restEl.className = "ernie-render-fallback ernie-rest";
      this.restLast = doc.createElement("div");
      this.restLast.className = "ernie-text-last";
      this.restEl.append(this.restLast);
      this.container.append(this.restEl);
    }
    const { full, left } = splitParts(this.src, this.frozenAt);
    for (const text of full) {
      const part = doc.createElement("div");
      part.className = "ernie-text-part";
      part.textContent = text;
      this.restEl.insertBefore(part, this.restLast);
    }
    this.restLast.textContent = this.src.slice(left);
    this.frozenAt = left;
  }
}
