/**
 * Cell sources written by the ERNIE commands (pure functions, unit-tested).
 *
 * The commands' cells carry no `%load_ext ernie_widget`: the extension is loaded silently before they run
 * (`LOAD_IF_NEEDED`, notebook.ts). Only without a kernel is the load written into the notebook, and IPython only
 * recognises a cell magic on the cell's first line (`%load_ext …\n%%ernie` turns `%%ernie` into a broken line
 * magic), so it is prepended to ordinary cells and put in a cell of its own above a `%%ernie` cell.
 */

export const LOAD_EXT = "%load_ext ernie_widget";

/**
 * Kernel code, sent silently: load the extension unless `%%ernie` is already registered (loading it twice would
 * register its hooks twice; `%load_ext` would print "already loaded"). One expression: it leaves no name behind.
 */
export const LOAD_IF_NEEDED =
  "(lambda ip: ip is None or 'ernie' in ip.magics_manager.magics['cell'] or "
  + "ip.extension_manager.load_extension('ernie_widget'))(get_ipython())";

const LOAD_EXT_LINE = /^[ \t]*%load_ext[ \t]+ernie_widget[ \t]*$/m;

/** True when one of `sources` already loads the extension with its own `%load_ext ernie_widget` line. */
export function hasLoadExt(sources: Iterable<string>): boolean {
  for (const source of sources) if (LOAD_EXT_LINE.test(source)) return true;
  return false;
}

/** A cell whose first line is `%%…` needs the extension loaded by an earlier cell. */
export function isCellMagic(source: string): boolean {
  return source.startsWith("%%");
}

/**
 * `%%ernie` fills `{name}`, `{In[n]}`, `{Out[n]}`, `{Err[n]}` from the notebook and turns `{{field}}` into the
 * literal `{field}`; every other brace is plain text (ernie_widget/interpolate.py). Doubling the braces of
 * field-shaped text only keeps code literal: `{"k": 1}` stays, `f"{x}"` becomes `f"{{x}}"` (sent as `f"{x}"`),
 * and `{{x}}` becomes `{{{x}}}` (sent as `{{x}}`).
 */
export function escapeFields(text: string): string {
  return text.replace(/\{((?:In|Out|Err)\[-?[0-9]+\]|[\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*)\}/gu, "{{$1}}");
}

/** A Markdown fence longer than any backtick run in `text`, so the text cannot close it early. */
export function fenceFor(text: string): string {
  const longest = Math.max(0, ...Array.from(text.matchAll(/`+/g), (m) => m[0].length));
  return "`".repeat(Math.max(3, longest + 1));
}

/** "ERNIE: Generate code in a new cell": the prompt goes in verbatim (`{name}` fields are the user's to use). */
export function generateSource(prompt: string): string {
  return `%%ernie -f code\n${prompt.trim()}`;
}

/** "ERNIE: Open chat". */
export function openChatSource(): string {
  return "from ernie_widget import ErnieChat\nErnieChat()";
}

/** "ERNIE: Explain / fix this cell" when the cell shows an error: the kernel's `%ernie --fix`. */
export function fixSource(): string {
  return "%ernie --fix";
}

/** "ERNIE: Explain / fix this cell" when the cell has no error: the cell's code, sent verbatim. */
export function explainSource(code: string, language = "python"): string {
  const body = code.replace(/\n+$/, "");
  const fence = fenceFor(body);
  return `%%ernie\nExplain this code:\n\n${fence}${language}\n${escapeFields(body)}\n${fence}`;
}
