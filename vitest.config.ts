import { defineConfig } from "vitest/config";
import { KATEX_DEFINE, katexSlimVite, SHIM_ALIASES } from "./js/tools/slim.mjs";

export default defineConfig({
  // Tests run the same slimmed dependencies that the bundle ships (js/tools/slim.mjs).
  plugins: [katexSlimVite()],
  define: KATEX_DEFINE,
  resolve: { alias: SHIM_ALIASES },
  test: {
    environment: "happy-dom",
    include: ["js/**/*.test.ts"],
    setupFiles: ["js/test-setup.ts"],
    watch: false,
    testTimeout: 120_000,
    // Let vite transform these instead of node importing them: KaTeX is bundled from its TypeScript sources,
    // and markdown-it must see the shims for linkify-it and entities, as in the bundle.
    server: { deps: { inline: [/katex/, /markdown-it/] } },
    pool: "forks",
    maxWorkers: 2,
  },
});
