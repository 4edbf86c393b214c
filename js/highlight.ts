/**
 * Syntax highlighting with highlight.js *core* and a few languages.
 *
 * The full highlight.js build is about 1 MB minified; core plus these languages is about 50 KB
 * (docs/notebook-facts.md §9.5). Each language registers its own aliases ("py", "js", "ts", "sh", "yml",
 * "html").
 */
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import diff from "highlight.js/lib/languages/diff";
import json from "highlight.js/lib/languages/json";
import python from "highlight.js/lib/languages/python";
import shell from "highlight.js/lib/languages/shell";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

import type { HLJSApi, Language } from "highlight.js";

// JavaScript is highlighted with the TypeScript grammar (a superset, self-contained in highlight.js): bundling the
// JavaScript grammar as well cost 6.5 KB of a bundle with a hard 400 KB budget
const javascript = (h: HLJSApi): Language => ({ ...typescript(h), name: "JavaScript", aliases: ["js", "jsx", "mjs", "cjs"] });

const LANGUAGES = { python, javascript, typescript, bash, shell, json, sql, yaml, xml, diff };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);

/** The canonical name of a supported language (alias-aware), or null. */
export function supportedLanguage(lang: string): string | null {
  const language = lang ? hljs.getLanguage(lang) : undefined;
  if (!language) return null;
  return Object.keys(LANGUAGES).find((name) => hljs.getLanguage(name) === language) ?? null;
}

/**
 * Highlighted HTML for `code`, or null when the language is not bundled.
 * highlight.js escapes the code text itself; the output only contains `<span class="hljs-…">`.
 */
export function highlightCode(code: string, lang: string): string | null {
  const name = supportedLanguage(lang);
  if (!name) return null;
  return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
}
