// Vite's `?raw` imports (tests only): the file's text.
declare module "*?raw" {
  const text: string;
  export default text;
}

// KaTeX's published ESM build, compared with the slim bundle in js/slim.test.ts.
declare module "katex/dist/katex.mjs" {
  import katex from "katex";
  export default katex;
}
