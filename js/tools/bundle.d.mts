import type { BuildOptions } from "esbuild";
export const OUTDIR: string;
export function jsOptions(opts?: { dev?: boolean }): BuildOptions;
export function cssOptions(opts?: { dev?: boolean }): BuildOptions;
