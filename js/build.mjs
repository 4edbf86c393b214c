/**
 * Bundle the widget: js/widget.ts → ernie_widget/static/widget.js (ESM, minified) and js/widget.css →
 * ernie_widget/static/widget.css, then enforce the size budget (the build fails when over).
 *
 *   node js/build.mjs            production build (hatch_build.py runs it through `npm run build`)
 *   node js/build.mjs --watch    rebuild on change with inline source maps (`npm run dev`; pair with ANYWIDGET_HMR=1)
 */
import * as esbuild from "esbuild";
import { checkSize } from "./check-size.mjs";
import { cssOptions, jsOptions } from "./tools/bundle.mjs";

const dev = process.argv.includes("--watch");

if (dev) {
  const contexts = await Promise.all([esbuild.context(jsOptions({ dev })), esbuild.context(cssOptions({ dev }))]);
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all([esbuild.build(jsOptions()), esbuild.build(cssOptions())]);
  if (!checkSize()) process.exit(1);
}
