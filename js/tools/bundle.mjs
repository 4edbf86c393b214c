/** esbuild options for the widget bundle, shared by js/build.mjs and the bundle-size test. */
import { KATEX_DEFINE, katexSlimEsbuild, shimsEsbuild } from "./slim.mjs";

export const OUTDIR = "ernie_widget/static";

/** @param {{ dev?: boolean }} [opts] @returns {import("esbuild").BuildOptions} */
export function jsOptions({ dev = false } = {}) {
  return {
    entryPoints: ["js/widget.ts"],
    outfile: `${OUTDIR}/widget.js`,
    bundle: true,
    format: "esm",
    minify: !dev,
    sourcemap: dev ? "inline" : false,
    legalComments: "none",
    // anywidget runs in JupyterLab 4 / Notebook 7 / VS Code / Colab: evergreen browsers. es2022 (not es2020): the
    // browsers listed run class fields natively, so they are not lowered (−2.6 KB); what Safari 15 lacks still is.
    target: ["es2022", "chrome100", "firefox100", "safari15"],
    // Non-ASCII text (the Chinese UI strings, KaTeX's symbols) as UTF-8, not \uXXXX escapes (−4.5 KB): an ES module
    // is always decoded as UTF-8, and anywidget reads the file as UTF-8.
    charset: "utf8",
    define: KATEX_DEFINE,
    plugins: [katexSlimEsbuild(), shimsEsbuild()],
    logLevel: "info",
  };
}

/** @param {{ dev?: boolean }} [opts] @returns {import("esbuild").BuildOptions} */
export function cssOptions({ dev = false } = {}) {
  return {
    entryPoints: ["js/widget.css"],
    outfile: `${OUTDIR}/widget.css`,
    bundle: true,
    minify: !dev,
    logLevel: "info",
  };
}
