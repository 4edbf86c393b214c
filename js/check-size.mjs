/**
 * Size budget for the bundle. The whole `_esm` string travels in every widget's comm_open and is stored in
 * saved widget state (docs/notebook-facts.md §1.5), so it must stay small.
 *
 *   node js/check-size.mjs      exits 1 when ernie_widget/static/widget.js is missing or over budget
 */
import { existsSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const BUDGET_BYTES = 400 * 1024;
export const BUNDLE = "ernie_widget/static/widget.js";

export function checkSize(file = BUNDLE, budget = BUDGET_BYTES) {
  if (!existsSync(file)) {
    console.error(`size: ${file} not found; run npm run build`);
    return false;
  }
  const size = statSync(file).size;
  const ok = size <= budget;
  const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
  (ok ? console.log : console.error)(`size: ${file} is ${kb(size)} (${size} bytes), budget ${kb(budget)}: ${ok ? "ok" : "OVER BUDGET"}`);
  return ok;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(checkSize() ? 0 : 1);
