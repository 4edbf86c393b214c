import { describe, expect, it } from "vitest";
import { renderFull } from "./markdown";

function dom(html: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

describe("renderFull", () => {
  it("renders basic markdown", () => {
    const el = dom(renderFull("# Title\n\nSome *em* and **strong** and `code`."));
    expect(el.querySelector("h1")?.textContent).toBe("Title");
    expect(el.querySelector("em")?.textContent).toBe("em");
    expect(el.querySelector("code")?.textContent).toBe("code");
  });
  it("typesets math", () => {
    const html = renderFull("Euler: $e^{i\\pi}+1=0$\n\n$$\\int_0^1 x\\,dx$$\n");
    console.log(html);
  });
});
