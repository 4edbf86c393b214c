/**
 * Stand-in for the `entities` package in the widget bundle: markdown-it only imports `decodeHTMLStrict`,
 * and the package's decode table is 24 KB of the 400 KB budget. The browser already has that table (the
 * HTML spec's named character references), so decode through a detached `<textarea>` (RCDATA: entity
 * decoding only, no elements are ever created).
 *
 * markdown-it passes only `&name;` / `&#…;` strings (its NAMED_RE / UNESCAPE_ALL_RE). "Strict" means the
 * whole reference must be one entity: the HTML parser would decode `&notit;` as `¬it;` (legacy `&not`
 * without a semicolon); strict decoding leaves it alone. `js/shims.test.ts` compares with `entities`.
 */
const REFERENCE = /^&#?[a-z0-9]+;$/i;
let area: HTMLTextAreaElement | null = null;

export function decodeHTMLStrict(text: string): string {
  if (!REFERENCE.test(text)) return text;
  area ??= document.implementation.createHTMLDocument("").createElement("textarea");
  area.innerHTML = text;
  const decoded = area.value;
  area.textContent = "";
  // A partial (legacy-prefix) match leaves the rest of the name and the ";" behind; a whole match never
  // ends with ";" except `&semi;` itself.
  if (decoded.length > 1 && decoded.endsWith(";")) return text;
  return decoded;
}
