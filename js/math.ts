/**
 * markdown-it plugin: TeX math typeset by KaTeX as MathML.
 *
 * Delimiters: `$…$` and `\(…\)` inline, `$$…$$` and `\[…\]` both inline and as blocks.
 * `$` follows Pandoc's rules so prices do not turn into math: the opening `$` is not followed by a space,
 * the closing `$` is not preceded by a space nor followed by a digit ("costs $5 and $10" stays text).
 *
 * A block opens on a line starting with `$$` or `\[` (unless the same line closes it and then goes on with
 * text: that is inline math in a paragraph). Like a code fence, an unclosed block runs to the end of the
 * document. Why: whether a line opens a block then depends on that line alone, so a block can never reach
 * back and change earlier blocks that the incremental renderer has already frozen. An unclosed block (an
 * answer still streaming) shows its TeX source.
 */
import katex from "katex";
import type { MarkdownIt, StateBlock, StateInline, Token } from "markdown-it";

const DOLLAR = 0x24;
const BACKSLASH = 0x5c;

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

// KaTeX is deterministic, and the streaming tail is re-rendered every frame: cache the typeset formulas.
const cache = new Map<string, string>();
const CACHE_LIMIT = 500;

function escapeText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** MathML markup for `tex` (KaTeX errors come back as an inline error span, never as an exception). */
export function typeset(tex: string, displayMode: boolean): string {
  const key = (displayMode ? "D" : "I") + tex;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  let html: string;
  try {
    html = katex.renderToString(tex, {
      output: "mathml",
      displayMode,
      throwOnError: false,
      trust: false, // no \href, \url, \includegraphics, \htmlClass …: model output is untrusted
      strict: "ignore",
      maxSize: 50,
      maxExpand: 500,
    });
  } catch {
    // throwOnError covers KaTeX's parse errors only: deep nesting overflows the call stack. One formula must
    // never break the answer (or, from a saved notebook, the whole chat): show its source instead.
    html = `<code class="ernie-math-error">${escapeText(tex)}</code>`;
  }
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, html);
  return html;
}

/** Inline math longer than this stays text (the kernel renderer uses the same bound). */
export const MATH_SEARCH_LIMIT = 5_000;

/**
 * Searches for closing delimiters, remembered per source text. markdown-it tries the math rule at every `$` and
 * `\(` of a paragraph in order, and a plain search from each of them to the end made text such as "$1" × 30,000
 * quadratic (seconds of a frozen tab). The next closing position only moves forward as the search start does,
 * so each answer is kept until the start passes it: every paragraph is scanned about once per delimiter kind.
 * Keyed by the parser state, not by the text: `===` on two equal strings compares their characters, and a memo left
 * by another render of the same answer (a restored transcript after streaming) cost the whole text per delimiter.
 */
const nextClose = new WeakMap<object, Map<string, { from: number; at: number }>>();

function memoised(state: StateInline, kind: string, from: number, search: (from: number) => number): number {
  let memo = nextClose.get(state);
  if (!memo) nextClose.set(state, (memo = new Map()));
  const hit = memo.get(kind);
  if (hit && hit.from <= from && (hit.at === -1 || hit.at >= from)) return hit.at;
  const at = search(from);
  memo.set(kind, { from, at });
  return at;
}

/** A `$` that can close inline math: not escaped (an even run of backslashes before it), not after a space,
 *  not before a digit ("costs $5 and $10" stays text). */
function isDollarClose(src: string, pos: number, max: number): boolean {
  let slashes = 0;
  for (let i = pos - 1; i >= 0 && src.charCodeAt(i) === BACKSLASH; i--) slashes++;
  if (slashes % 2 === 1) return false;
  if (isSpace(src.charCodeAt(pos - 1))) return false;
  return !(pos + 1 < max && isDigit(src.charCodeAt(pos + 1)));
}

/** Position of the closing `$` of an inline `$…$` opened at `start`, or -1 (also when it is too far). */
function findDollarClose(state: StateInline, start: number, max: number): number {
  const src = state.src;
  const at = memoised(state, "$", start + 1, (from) => {
    // to the end of the text, not to `max`: the memo outlives a link label's narrower `max`
    for (let pos = src.indexOf("$", from); pos !== -1; pos = src.indexOf("$", pos + 1)) {
      if (isDollarClose(src, pos, src.length)) return pos;
    }
    return -1;
  });
  return at !== -1 && at < max && at - start <= MATH_SEARCH_LIMIT ? at : -1;
}

/** Position of `close` after `from`, or -1 (also when it is beyond the search limit). */
function findClose(state: StateInline, close: string, from: number, max: number): number {
  const at = memoised(state, close, from, (f) => state.src.indexOf(close, f));
  return at !== -1 && at < max && at - from <= MATH_SEARCH_LIMIT ? at : -1;
}

function mathInline(state: StateInline, silent: boolean): boolean {
  const { src, pos: start, posMax: max } = state;
  const first = src.charCodeAt(start);
  let open: number;
  let close: string;
  let display: boolean;
  let end: number;
  if (first === DOLLAR) {
    display = src.charCodeAt(start + 1) === DOLLAR;
    if (display) {
      open = 2;
      close = "$$";
      end = findClose(state, "$$", start + 2, max);
    } else {
      open = 1;
      close = "$";
      if (start + 1 >= max || isSpace(src.charCodeAt(start + 1))) return false;
      end = findDollarClose(state, start, max);
    }
  } else if (first === BACKSLASH) {
    const next = src.charCodeAt(start + 1);
    if (next !== 0x28 && next !== 0x5b) return false; // \( or \[
    display = next === 0x5b;
    open = 2;
    close = display ? "\\]" : "\\)";
    end = findClose(state, close, start + 2, max);
    const anyClose = memoised(state, close, start + 2, (f) => src.indexOf(close, f));
    if (anyClose === -1 || anyClose >= max) {
      // No closer at all: the run of such openers is one escaped-text token, not one each ("\\(" × 40,000)
      let pos = start;
      while (pos + 1 < max && src.charCodeAt(pos) === BACKSLASH && src.charCodeAt(pos + 1) === next) pos += 2;
      if (!silent) {
        const token = state.push("text_special", "", 0);
        token.content = String.fromCharCode(next).repeat((pos - start) / 2);
        token.markup = src.slice(start, pos);
        token.info = "escape";
      }
      state.pos = pos;
      return true;
    }
  } else {
    return false;
  }
  if (end < 0) return false;
  const tex = src.slice(start + open, end);
  if (!tex.trim()) return false;
  if (!silent) {
    const token = state.push("math_inline", "math", 0);
    token.content = tex;
    token.markup = close;
    token.meta = { display };
  }
  state.pos = end + close.length;
  return true;
}

function mathBlock(state: StateBlock, startLine: number, endLine: number, silent: boolean): boolean {
  if (state.sCount[startLine] - state.blkIndent >= 4) return false;
  const pos = state.bMarks[startLine] + state.tShift[startLine];
  const max = state.eMarks[startLine];
  const line = state.src.slice(pos, max);
  let open: string;
  let close: string;
  if (line.startsWith("$$")) [open, close] = ["$$", "$$"];
  else if (line.startsWith("\\[")) [open, close] = ["\\[", "\\]"];
  else return false;

  const rest = line.slice(open.length);
  const sameLine = rest.indexOf(close);
  if (sameLine >= 0 && rest.slice(sameLine + close.length).trim()) return false; // `$$x$$ and text`: inline
  if (sameLine >= 0 && !rest.slice(0, sameLine).trim()) return false; // `$$$$`: nothing to typeset
  if (silent) return true;

  const lines: string[] = [];
  let nextLine = startLine;
  let closed = false;
  if (sameLine >= 0) {
    lines.push(rest.slice(0, sameLine));
    closed = true;
  } else {
    lines.push(rest);
    for (nextLine = startLine + 1; nextLine < endLine; nextLine++) {
      const begin = state.bMarks[nextLine] + state.tShift[nextLine];
      const finish = state.eMarks[nextLine];
      // A less indented non-empty line ends the container (list item, blockquote): the block ends too.
      if (begin < finish && state.sCount[nextLine] < state.blkIndent) break;
      const text = state.src.slice(begin, finish).trimEnd();
      if (text.endsWith(close)) {
        lines.push(text.slice(0, -close.length));
        closed = true;
        break;
      }
      lines.push(text);
    }
  }
  state.line = closed ? nextLine + 1 : nextLine;
  const token: Token = state.push("math_block", "math", 0);
  token.block = true;
  token.content = lines.join("\n");
  token.markup = open;
  token.meta = { closed };
  token.map = [startLine, state.line];
  return true;
}

/** Register the math rules and renderers on a markdown-it instance. */
export function mathPlugin(md: MarkdownIt): void {
  // Before `escape`, or `\(` would already have become a literal "(".
  md.inline.ruler.before("escape", "math_inline", mathInline);
  md.block.ruler.before("fence", "math_block", mathBlock, {
    alt: ["paragraph", "reference", "blockquote", "list"],
  });
  md.renderer.rules.math_inline = (tokens, idx) => {
    const token = tokens[idx];
    const display = Boolean(token.meta?.display);
    return `<span class="ernie-math${display ? " ernie-math-display" : ""}">${typeset(token.content, display)}</span>`;
  };
  md.renderer.rules.math_block = (tokens, idx) => {
    const token = tokens[idx];
    if (!token.meta?.closed) {
      return `<pre class="ernie-math-source"><code>${md.utils.escapeHtml(token.markup + token.content)}</code></pre>\n`;
    }
    return `<div class="ernie-math ernie-math-block">${typeset(token.content, true)}</div>\n`;
  };
}
