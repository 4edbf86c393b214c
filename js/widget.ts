/**
 * anywidget entry point of ErnieChat (bundled to ernie_widget/static/widget.js).
 *
 * `initialize` must stay cheap: anywidget aborts model initialization after 2 s
 * (docs/notebook-facts.md §1.7), so the Markdown engine is created lazily on the first render.
 */
import type { AnyWidget, RenderProps } from "@anywidget/types";
import { ChatView } from "./chat";
import type { ChatModel, WidgetTraits } from "./types";

/** Nothing to do per model: each view sends `hello` and the kernel replies with the answer in flight. */
function initialize(): void {}

/** Draw the chat into `el`; returns the cleanup anywidget calls when the view is removed. */
function render({ model, el }: Pick<RenderProps<WidgetTraits>, "model" | "el">): () => void {
  const view = new ChatView(model as unknown as ChatModel, el);
  return () => view.destroy();
}

const widget = { initialize, render } satisfies AnyWidget<WidgetTraits>;
export default widget;
