import { defineConfig } from "vitest/config";
import { KATEX_DEFINE, katexSlimVite } from "./js/build/katex-slim.mjs";

export default defineConfig({
  // Tests run the same MathML-only KaTeX that the bundle ships (js/build/katex-slim.mjs).
  plugins: [katexSlimVite()],
  define: KATEX_DEFINE,
  test: {
    environment: "happy-dom",
    include: ["js/**/*.test.ts"],
    setupFiles: ["js/test-setup.ts"],
    watch: false,
    testTimeout: 30_000,
    // KaTeX is bundled from its TypeScript sources: let vite transform it instead of node importing it.
    server: { deps: { inline: [/katex/] } },
    pool: "forks",
    maxWorkers: 2,
  },
});
