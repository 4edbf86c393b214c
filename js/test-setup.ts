/**
 * Make happy-dom behave like a browser where our code depends on it (test-only; not bundled).
 *
 * Browsers define one `nodeName` getter on `Node.prototype`; happy-dom returns "" there and overrides it in
 * each subclass. DOMPurify ≥ 3.4 reads `nodeName` through `Node.prototype`'s getter (so a clobbered
 * `nodeName` cannot fool it) and would see every element as "" and strip it. Dispatch to the subclass getter.
 */
if (typeof Node !== "undefined") {
  const base = Object.getOwnPropertyDescriptor(Node.prototype, "nodeName")?.get;
  Object.defineProperty(Node.prototype, "nodeName", {
    configurable: true,
    get(this: Node): string {
      for (let proto = Object.getPrototypeOf(this); proto && proto !== Node.prototype; proto = Object.getPrototypeOf(proto)) {
        const getter = Object.getOwnPropertyDescriptor(proto, "nodeName")?.get;
        if (getter) return getter.call(this) as string;
      }
      return (base?.call(this) as string) ?? "";
    },
  });
}

// Widgets live in standards-mode pages (JupyterLab has a doctype); KaTeX warns in quirks mode.
if (typeof document !== "undefined" && document.compatMode !== "CSS1Compat") {
  Object.defineProperty(document, "compatMode", { value: "CSS1Compat", configurable: true });
}
