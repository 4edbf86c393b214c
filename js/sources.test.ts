// @vitest-environment happy-dom
/**
 * Web sources and citation markers in ErnieChat: markers link to their sources, nothing else does, titles and
 * URLs are only ever text, and the result is the same whatever order the stream delivers things in.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { IncrementalRenderer, renderFull } from "./markdown";
import { parseSources } from "./types";
import widget from "./widget";

type Handler = (...args: unknown[]) => void;

/** Just enough of anywidget's model for render(), and a way to play the kernel's custom messages. */
function mount(initial: Record<string, unknown> = {}) {
  const state: Record<string, unknown> = { messages: [], status: "idle", lang: "en", send_mode: "enter", model_label: "", placeholder: "", ...initial };
  const handlers = new Map<string, Handler[]>();
  const fire = (name: string, ...args: unknown[]) => (handlers.get(name) ?? []).slice().forEach((f) => f(...args));
  const model = {
    get: (key: string) => state[key],
    set: (key: string, value: unknown) => {
      state[key] = value;
      fire(`change:${key}`);
    },
    on: (name: string, f: Handler) => handlers.set(name, [...(handlers.get(name) ?? []), f]),
    off: (name: string, f: Handler) => handlers.set(name, (handlers.get(name) ?? []).filter((g) => g !== f)),
    send: vi.fn(),
    custom: (msg: Record<string, unknown>) => fire("msg:custom", msg, []),
  };
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = widget.render({ model: model as never, el });
  cleanups.push(() => {
    cleanup();
    el.remove();
  });
  return { el, model };
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const frame = () => new Promise<void>((resolve) => requestAnimationFrame(() => resolve()));

const SOURCES = [
  { index: 1, url: "https://yiyan.baidu.com/blog/ernie-4.5?x=1&y=2", title: "ERNIE 4.5 发布" },
  { index: 2, url: "https://www.example.org/report", title: "2024 年报告" },
];
const ANSWER = "ERNIE 4.5 已开源^[1]^，报告见^[2]^。两者都提到^[1][2]^。";

/** [text, href] of every citation link in `root`. */
const citeLinks = (root: Element) =>
  [...root.querySelectorAll<HTMLAnchorElement>(".ernie-cite a")].map((a) => [a.textContent, a.getAttribute("href")]);

const answered = (content: string, search_results: unknown) => ({
  messages: [{ role: "user", content: "q" }, { role: "assistant", content, mid: 1, status: "ok", search_results }],
});

describe("citation markers and the sources list", () => {
  it("turns ^[n]^ into a superscript link to source n that opens in a new tab without opener or referrer", () => {
    const { el } = mount(answered(ANSWER, SOURCES));
    const answer = el.querySelector(".ernie-answer")!;
    expect(citeLinks(answer)).toEqual([
      ["[1]", SOURCES[0].url], ["[2]", SOURCES[1].url], ["[1]", SOURCES[0].url], ["[2]", SOURCES[1].url],
    ]);
    for (const a of answer.querySelectorAll(".ernie-cite a")) {
      expect(a.parentElement?.tagName).toBe("SUP");
      expect(a.getAttribute("target")).toBe("_blank");
      expect(a.getAttribute("rel")?.split(" ")).toEqual(expect.arrayContaining(["noopener", "noreferrer"]));
    }
    expect(answer.textContent?.trim()).toBe("ERNIE 4.5 已开源[1]，报告见[2]。两者都提到[1][2]。");
  });

  it("lists the sources under the answer, numbered, with title and host", () => {
    const { el } = mount(answered(ANSWER, SOURCES));
    const box = el.querySelector('[data-testid="ernie-sources"]') as HTMLElement;
    expect(box.hidden).toBe(false);
    expect(box.querySelector(".ernie-sources-title")?.textContent).toBe("Sources");
    const items = [...box.querySelectorAll("li")];
    expect(items.map((li) => li.getAttribute("value"))).toEqual(["1", "2"]);
    expect(items.map((li) => li.querySelector(".ernie-source-title")?.textContent)).toEqual(["ERNIE 4.5 发布", "2024 年报告"]);
    expect(items.map((li) => li.querySelector(".ernie-source-host")?.textContent)).toEqual(["yiyan.baidu.com", "www.example.org"]);
    const link = items[0].querySelector("a")!;
    expect([link.getAttribute("href"), link.getAttribute("target"), link.getAttribute("rel")]).toEqual([
      SOURCES[0].url, "_blank", "noopener noreferrer nofollow",
    ]);
    // the answer's element order: answer, then sources, then the footer
    const order = [...el.querySelector('[data-role="assistant"]')!.children].map((c) => c.className.split(" ")[0]);
    expect(order.indexOf("ernie-answer")).toBeLessThan(order.indexOf("ernie-sources"));
    expect(order.indexOf("ernie-sources")).toBeLessThan(order.indexOf("ernie-footer"));
  });

  it("shows no list (and no links) for an answer without sources; the marker stays plain text", () => {
    const { el } = mount(answered("见^[1]^。", undefined));
    expect((el.querySelector('[data-testid="ernie-sources"]') as HTMLElement).hidden).toBe(true);
    expect(el.querySelector(".ernie-answer a, .ernie-answer sup")).toBeNull();
    expect(el.querySelector(".ernie-answer")?.textContent?.trim()).toBe("见^[1]^。");
  });

  it("a marker with no matching source stays plain text; in ^[1][9]^ only [1] links", () => {
    const { el } = mount(answered("无^[9]^，半^[1][9]^。", SOURCES));
    const answer = el.querySelector(".ernie-answer")!;
    expect(citeLinks(answer)).toEqual([["[1]", SOURCES[0].url]]);
    expect(answer.textContent?.trim()).toBe("无^[9]^，半[1][9]。");
    expect(answer.querySelectorAll("sup")).toHaveLength(1);
  });

  it.each([
    ["javascript:alert(document.cookie)"],
    ["JaVaScRiPt:alert(1)"],
    ["data:text/html,<script>alert(1)</script>"],
    ["/api/contents"],
    ["../files/secret"],
    ["//evil.example/x"],
    ["http:/logout"],
    ["http:evil"],
    ["https://user@evil.example/"],
    ["https:\\\\evil.example"],
    ["vbscript:x"],
    [""],
  ])("refuses %j as a link (no href anywhere; the marker stays text, the title stays listed)", (url) => {
    const { el } = mount(answered("见^[1]^。", [{ index: 1, url, title: "t" }]));
    expect(el.querySelector("[href]")).toBeNull();
    expect(el.querySelector(".ernie-answer")?.textContent?.trim()).toBe("见^[1]^。");
    expect(el.querySelector(".ernie-sources-list li")?.textContent).toBe("t");
  });

  it("keeps a hostile title as text: no element, no handler, in the list and in the link's tooltip", () => {
    const title = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>"><b>';
    const { el } = mount(answered("见^[1]^。", [{ index: 1, url: "https://ok.example/", title }]));
    expect(el.querySelector(".ernie-sources img, .ernie-sources script, .ernie-sources b, .ernie-answer img")).toBeNull();
    expect(el.querySelector(".ernie-source-title")?.textContent).toBe(title);
    expect(el.querySelector(".ernie-cite a")?.getAttribute("title")).toBe(`${title} · ok.example`);
    expect([...el.querySelectorAll("*")].some((n) => [...n.attributes].some((a) => /^on/i.test(a.name)))).toBe(false);
    expect((window as unknown as { __pwned?: number }).__pwned).toBeUndefined();
  });

  it("leaves markers inside code, math and link text alone", () => {
    const text = "`^[1]^` and [see ^[1]^](https://a.example/) and $x^[1]^$ and\n\n```\n^[1]^\n```\n\nbut ^[1]^";
    const { el } = mount(answered(text, SOURCES));
    const answer = el.querySelector(".ernie-answer")!;
    expect(citeLinks(answer)).toEqual([["[1]", SOURCES[0].url]]);
    expect(answer.querySelector("code")?.textContent).toBe("^[1]^");
    expect(answer.querySelector('a[href="https://a.example/"]')?.textContent).toBe("see ^[1]^");
    expect(answer.querySelector("pre")?.textContent).toBe("^[1]^\n");
  });

  it("hides the sources of a withdrawn answer", () => {
    const { el, model } = mount(answered(ANSWER, SOURCES));
    model.custom({ type: "withdraw", mid: 1, notice: "withdrawn" });
    expect((el.querySelector('[data-testid="ernie-sources"]') as HTMLElement).hidden).toBe(true);
  });
});

describe("a link opens only on a real click", () => {
  it("cancels an untrusted click (el.click() or a dispatched event, bubbling or not) on a citation, a source, or any answer link", () => {
    const { el } = mount(answered(`${ANSWER} [site](https://site.example/)`, SOURCES));
    const links = [
      el.querySelector<HTMLAnchorElement>(".ernie-cite a")!,
      el.querySelector<HTMLAnchorElement>(".ernie-source-link")!,
      el.querySelector<HTMLAnchorElement>('a[href="https://site.example/"]')!,
    ];
    for (const a of links) {
      expect(a.dispatchEvent(new MouseEvent("click", { cancelable: true }))).toBe(false); // not bubbling
      expect(a.dispatchEvent(new MouseEvent("click", { cancelable: true, bubbles: true }))).toBe(false);
      let prevented: boolean | undefined;
      const seen = (e: Event) => (prevented = e.defaultPrevented);
      document.addEventListener("click", seen);
      a.click();
      document.removeEventListener("click", seen);
      expect(prevented).toBe(true);
    }
  });
});

describe("while streaming", () => {
  const start = (model: ReturnType<typeof mount>["model"]) => model.custom({ type: "start", mid: 5 });
  const delta = (model: ReturnType<typeof mount>["model"], seq: number, text: string) =>
    model.custom({ type: "delta", mid: 5, seq, text });
  const sources = (model: ReturnType<typeof mount>["model"], results: unknown) =>
    model.custom({ type: "sources", mid: 5, results });

  it("links markers that arrive after the sources", async () => {
    const { el, model } = mount();
    start(model);
    sources(model, SOURCES);
    delta(model, 0, "第一段^[1]^。\n\n");
    await frame();
    delta(model, 1, "第二段^[2]^");
    await frame();
    expect(citeLinks(el.querySelector(".ernie-answer")!)).toEqual([["[1]", SOURCES[0].url], ["[2]", SOURCES[1].url]]);
    expect(el.querySelectorAll(".ernie-sources-list li")).toHaveLength(2);
  });

  it("links markers already shown when the sources come later", async () => {
    const { el, model } = mount();
    start(model);
    delta(model, 0, "第一段^[1]^。\n\n第二段^[2]^");
    await frame();
    expect(el.querySelector(".ernie-answer a")).toBeNull();
    sources(model, SOURCES);
    expect(citeLinks(el.querySelector(".ernie-answer")!)).toEqual([["[1]", SOURCES[0].url], ["[2]", SOURCES[1].url]]);
  });

  it("a marker split across deltas becomes one link", async () => {
    const { el, model } = mount();
    start(model);
    sources(model, SOURCES);
    ["见^", "[1", "]", "^。"].forEach((t, seq) => delta(model, seq, t));
    await frame();
    expect(citeLinks(el.querySelector(".ernie-answer")!)).toEqual([["[1]", SOURCES[0].url]]);
  });

  it("the list sent in the first and again in the last chunk is shown once; a later list replaces it", async () => {
    const { el, model } = mount();
    start(model);
    sources(model, SOURCES);
    delta(model, 0, "a^[1]^ b^[3]^");
    sources(model, SOURCES);
    await frame();
    expect(el.querySelectorAll(".ernie-sources-list li")).toHaveLength(2);
    sources(model, [...SOURCES, { index: 3, url: "https://three.example/", title: "三" }]);
    expect([...el.querySelectorAll(".ernie-sources-list li")].map((li) => li.getAttribute("value"))).toEqual(["1", "2", "3"]);
    expect(citeLinks(el.querySelector(".ernie-answer")!)).toEqual([["[1]", SOURCES[0].url], ["[3]", "https://three.example/"]]);
  });

  it("keeps the links and one list when the transcript's final entry arrives, and after a reload", async () => {
    const { el, model } = mount({ messages: [{ role: "user", content: "q" }] });
    start(model);
    sources(model, SOURCES);
    delta(model, 0, ANSWER);
    await frame();
    model.custom({ type: "done", mid: 5, status: "ok" });
    const final = [{ role: "user", content: "q" }, { role: "assistant", content: ANSWER, mid: 5, status: "ok", search_results: SOURCES }];
    model.set("messages", final);
    const answer = el.querySelector(".ernie-answer")!;
    expect(citeLinks(answer)).toHaveLength(4);
    expect(el.querySelectorAll(".ernie-sources-list li")).toHaveLength(2);
    // a late duplicate of the sources message for an answer the transcript holds changes nothing
    sources(model, [{ index: 1, url: "https://late.example/", title: "late" }]);
    expect(el.querySelectorAll(".ernie-sources-list li")).toHaveLength(2);
    // reload: a new view built from the stored messages alone
    const reloaded = mount({ messages: final });
    expect(citeLinks(reloaded.el.querySelector(".ernie-answer")!)).toEqual(citeLinks(answer));
    expect(reloaded.el.querySelectorAll(".ernie-sources-list li")).toHaveLength(2);
  });

  it("a view that reconnects mid-answer gets the text by resync and the sources after it", async () => {
    const { el, model } = mount({ status: "streaming", messages: [{ role: "user", content: "q" }] });
    model.custom({ type: "resync", mid: 5, seq: 3, text: "so far^[2]^", reasoning: "" });
    sources(model, SOURCES);
    await frame();
    expect(citeLinks(el.querySelector(".ernie-answer")!)).toEqual([["[2]", SOURCES[1].url]]);
  });
});

describe("rendering stays a function of the text", () => {
  it("renderFull wraps markers in span.ernie-cite, and the streamed DOM equals it at every step", () => {
    expect(renderFull("a^[1]^b^[2][3]^")).toBe('<p>a<span class="ernie-cite">^[1]^</span>b<span class="ernie-cite">^[2][3]^</span></p>\n');
    const text = "增长^[1]^。\n\n- 一^[2]^\n- 二^[1][2]^\n\n> 引^[3]^\n\n| a | b |\n|---|---|\n| x^[1]^ | y |\n";
    const container = document.createElement("div");
    const renderer = new IncrementalRenderer(container, { schedule: (f) => f() });
    for (const ch of text) {
      renderer.push(ch);
      expect(container.innerHTML).toBe(renderFull(renderer.text));
    }
  });
});

describe("parseSources (the trait and the sources message are untrusted)", () => {
  it("keeps {index, url, title} with an integer index 1…999, one per index, sorted, at most 50", () => {
    const many = Array.from({ length: 60 }, (_, i) => ({ index: 60 - i, url: `https://s${60 - i}.example/`, title: "" }));
    expect(parseSources(many).map((s) => s.index)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(
      parseSources([
        null, "x", { index: "1", url: "https://a/", title: "a" }, { index: 1.5, title: "x" }, { index: 0, title: "x" },
        { index: 1000, title: "x" }, { index: 2, url: 42, title: ["x"] }, { index: 3, url: ` https://b.example/${"x".repeat(2100)}`, title: " b \n c " },
        { index: 4, url: "https://d.example/", title: "first" }, { index: 4, url: "https://d.example/", title: "second" },
      ]),
    ).toEqual([{ index: 3, url: "", title: "b c" }, { index: 4, url: "https://d.example/", title: "second" }]);
  });
});
