import { expect, it } from "vitest";
import { highlightCode, supportedLanguage } from "./highlight";
it("JavaScript is highlighted with the TypeScript grammar under its own name and aliases", () => {
  expect(supportedLanguage("js")).toBe("javascript");
  expect(supportedLanguage("ts")).toBe("typescript");
  expect(highlightCode("const x = 1; // hi", "javascript")).toContain("hljs-keyword");
});
