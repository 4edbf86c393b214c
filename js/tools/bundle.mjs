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
    // anywidget runs in JupyterLab 4 / Notebook 7 / VS Code / Colab: evergreen browsers.
    target: ["es2020", "chrome100", "firefox100", "safari15"],
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
