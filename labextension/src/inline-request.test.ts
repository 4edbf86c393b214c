import { describe, expect, it } from "vitest";
import { boundedContext, buildBody, errorMessage, languageOf, LIMITS, readLines, worthAsking } from "./inline-request";
import { statusLabel, withEnabled } from "./inline-status";

function streamOf(chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(typeof c === "string" ? encoder.encode(c) : c);
      controller.close();
    },
  });
}

async function collect(body: ReadableStream<Uint8Array>) {
  const out = [];
  for await (const line of readLines(body)) out.push(line);
  return out;
}

describe("the request body", () => {
  it("splits the cell at the cursor and carries only prefix, suffix, language, cell type and context", () => {
    const body = buildBody("import pandas as pd\ndf = pd.\nprint(df)", 28, "code", "python", ["x = 1"]);
    expect(body).toEqual({ prefix: "import pandas as pd\ndf = pd.", suffix: "\nprint(df)", language: "python",
                           cell_type: "code", context: ["x = 1"] });
    expect(Object.keys(body).sort()).toEqual(["cell_type", "context", "language", "prefix", "suffix"]);
  });

  it("keeps the text nearest the cursor when the cell is long", () => {
    const text = "a".repeat(LIMITS.prefix) + "NEAR|" + "FAR".repeat(LIMITS.suffix);
    const body = buildBody(text, LIMITS.prefix + 5, "code", "python", []);
    expect(body.prefix.length).toBe(LIMITS.prefix);
    expect(body.prefix.endsWith("NEAR|")).toBe(true);
    expect(body.suffix.length).toBe(LIMITS.suffix);
    expect(body.suffix.startsWith("FAR")).toBe(true);
  });

  it("an offset outside the text is clamped", () => {
    expect(buildBody("abc", 99, "code", "python", []).prefix).toBe("abc");
    expect(buildBody("abc", -4, "code", "python", []).suffix).toBe("abc");
  });

  it("earlier cells: nearest kept first, blank ones skipped, within the budget, in notebook order", () => {
    const cells = ["first", "", "  ", "second", "third"];
    expect(boundedContext(cells)).toEqual(["first", "second", "third"]);
    const big = Array.from({ length: 20 }, (_, i) => `${i}`.padEnd(1500, "x"));
    const kept = boundedContext(big);
    expect(kept.length).toBeLessThanOrEqual(LIMITS.contextCells);
    expect(kept.join("").length).toBeLessThanOrEqual(LIMITS.contextChars);
    expect(kept[kept.length - 1].startsWith("19")).toBe(true);
  });

  it("language: markdown for markdown cells, else the kernel's, else from the MIME type", () => {
    expect(languageOf("markdown", "python", "text/x-ipython")).toBe("markdown");
    expect(languageOf("code", "R", undefined)).toBe("r");
    expect(languageOf("code", undefined, "text/x-ipython")).toBe("python");
  });

  it("an empty prefix asks nothing", () => {
    expect(worthAsking(buildBody("\n\n", 1, "code", "python", []))).toBe(false);
    expect(worthAsking(buildBody("df.", 3, "code", "python", []))).toBe(true);
  });
});

describe("reading the streamed answer", () => {
  it("yields whole lines across chunk boundaries", async () => {
    const lines = await collect(streamOf(['{"text": "de', 'f"}\n{"te', 'xt": "def f"}\n{"done": true, "text": "def f"}']));
    expect(lines).toEqual([{ text: "def" }, { text: "def f" }, { done: true, text: "def f" }]);
  });

  it("decodes a CJK character split between two chunks", async () => {
    const bytes = new TextEncoder().encode('{"text": "# 数据"}\n');
    const cut = bytes.indexOf(0xe6) + 1; // inside the first byte sequence of 数
    const lines = await collect(streamOf([bytes.slice(0, cut), bytes.slice(cut)]));
    expect(lines).toEqual([{ text: "# 数据" }]);
  });

  it("skips lines that are not JSON objects instead of trusting them", async () => {
    const lines = await collect(streamOf(['<html>\n[1,2]\n"s"\n{"text": "ok"}\n']));
    expect(lines).toEqual([{ text: "ok" }]);
  });

  it("error messages: the server's first line, else what the status means", () => {
    expect(errorMessage({ error: { message: "配额用完 / quota\nsecond line" } })).toBe("配额用完 / quota");
    expect(errorMessage(null, 403)).toContain("not authorized");
    expect(errorMessage(null, 404)).toContain("server extension");
    expect(errorMessage(null, 500)).toContain("HTTP 500");
  });
});

describe("the status item and the switch", () => {
  it("says off, on, fetching or failed, and where the server's configuration comes from", () => {
    const server = { provider: "qianfan", model: "ernie-lite-8k", source: "environment", ready: true };
    expect(statusLabel(false, { kind: "idle" }, server).kind).toBe("off");
    const on = statusLabel(true, { kind: "idle" }, server);
    expect(on.kind).toBe("on");
    expect(on.title).toContain("ernie-lite-8k · qianfan (environment)");
    expect(statusLabel(true, { kind: "fetching" }, server).kind).toBe("fetching");
    const failed = statusLabel(true, { kind: "failed", message: "boom" }, server);
    expect([failed.kind, failed.title.split("\n")[0]]).toEqual(["failed", "boom"]);
    expect(statusLabel(true, { kind: "idle" }, { ...server, ready: false, message: "no key" }).title).toContain("no key");
  });

  it("switching keeps the user's other provider settings and ours", () => {
    const user = { "@jupyterlab/inline-completer:history": { enabled: true }, "ernie-widget": { debouncerDelay: 50 } };
    expect(withEnabled(user, "ernie-widget", true)).toEqual({
      "@jupyterlab/inline-completer:history": { enabled: true }, "ernie-widget": { debouncerDelay: 50, enabled: true },
    });
    expect(withEnabled(undefined, "ernie-widget", false)).toEqual({ "ernie-widget": { enabled: false } });
  });
});
