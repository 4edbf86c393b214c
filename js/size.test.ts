// @vitest-environment node
/**
 * The bundle must stay ≤ 400 KB minified: the whole `_esm` string travels in every widget's comm_open and is
 * stored in saved widget state (docs/notebook-facts.md §1.5). Builds in memory with the production options.
 */
import * as esbuild from "esbuild";
import { describe, expect, it } from "vitest";
import { BUDGET_BYTES } from "./check-size.mjs";
import { jsOptions } from "./tools/bundle.mjs";

describe("bundle", () => {
  it("is an ES module within the size budget", async () => {
    const result = await esbuild.build({ ...jsOptions(), write: false, logLevel: "silent", metafile: true });
    const js = result.outputFiles.find((f) => f.path.endsWith(".js"));
    expect(js).toBeDefined();
    const size = js!.contents.length;
    expect(size).toBeLessThanOrEqual(BUDGET_BYTES);
    expect(size).toBeLessThanOrEqual(400_000); // also under 400 kB in decimal units
    const text = js!.text;
    expect(text).toMatch(/export\s*\{[^}]*as default/);
    // Nothing is fetched at run time: no CDN imports, no full highlight.js, no remote fonts.
    expect(text).not.toMatch(/https?:\/\/(cdn|esm\.sh|unpkg|jsdelivr)/);
    const inputs = Object.keys(result.metafile!.inputs);
    expect(inputs.some((p) => p.includes("highlight.js/lib/index.js"))).toBe(false);
    expect(inputs.some((p) => p.includes("linkify-it/"))).toBe(false);
  });
});
