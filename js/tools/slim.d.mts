// Types for the build helper (plain ESM so node runs it without a compile step).
export const KATEX_DIR: string;
export const KATEX_ENTRY: string;
export const KATEX_VERSION: string;
export const KATEX_DEFINE: Record<string, string>;
export function slimKatexModule(file: string): string | null;
export function katexSlimEsbuild(): { name: string; setup(build: unknown): void };
export function katexSlimVite(): {
  name: string;
  enforce: "pre";
  resolveId(source: string): string | null;
  load(id: string): string | null;
};
export const SHIMS: Record<"linkify-it" | "entities", string>;
export function shimsEsbuild(): { name: string; setup(build: unknown): void };
export const SHIM_ALIASES: Array<{ find: RegExp; replacement: string }>;
