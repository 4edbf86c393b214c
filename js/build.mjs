/**
 * Bundle the widget: js/widget.ts → ernie_widget/static/widget.js (ESM, minified) and js/widget.css →
 * ernie_widget/static/widget.css, then enforce the size budget.
 *
 *   node js/build.mjs            production build (run by hatch-jupyter-builder through `npm run build`)
 *   node js/build.mjs --watch    rebuild on change, with inline source maps (`npm run dev`, pairs with ANYWIDGET_HMR=1)
 */
import * as esbuild from "esbuild";
import { KATEX_DEFINE, katexSlimEsbuild, shimsEsbuild } from "./tools/slim.mjs";
import { checkSize } from "./check-size.mjs";

const watch = process.argv.includes("--watch");
const outdir = "ernie_widget/static";

/** @type {import("esbuild").BuildOptions} */
const common = {
  bundle: true,
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  legalComments: "none",
  logLevel: "info",
};

const js = {
  ...common,
  entryPoints: ["js/widget.ts"],
  outfile: `${outdir}/widget.js`,
  format: "esm",
  // anywidget runs in JupyterLab 4 / Notebook 7 / VS Code / Colab: all evergreen browsers.
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  define: KATEX_DEFINE,
  plugins: [katexSlimEsbuild(), shimsEsbuild()],
};

const css = { ...common, entryPoints: ["js/widget.css"], outfile: `${outdir}/widget.css` };

if (watch) {
  const contexts = await Promise.all([esbuild.context(js), esbuild.context(css)]);
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all([esbuild.build(js), esbuild.build(css)]);
  if (!checkSize()) process.exit(1);
}
