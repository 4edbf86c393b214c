/** The inline-completion status text and the settings edit of the on/off switch (pure; vitest covers them). */
import type { PartialJSONObject, PartialJSONValue, ReadonlyPartialJSONValue } from "@lumino/coreutils";
import type { InlineState } from "./inline-provider";

/** `GET ernie-widget/completion/status`: what the server extension uses (never a key). */
export interface ServerStatus {
  provider?: string;
  model?: string;
  source?: string;
  ready?: boolean;
  message?: string;
}

export function statusLabel(enabled: boolean, state: InlineState, server: ServerStatus | null
): { text: string; title: string; kind: string } {
  const where = server
    ? `${server.model ?? "?"} · ${server.provider ?? "?"}${server.source ? ` (${server.source})` : ""}`
    : "服务器扩展状态未知 / server extension status unknown";
  if (!enabled) {
    return { text: "ERNIE 补全：关 / off", kind: "off",
             title: "ERNIE 行内补全已关闭，点击开启 / ERNIE inline completion is off: click to turn it on" };
  }
  const toggle = "点击关闭 / click to turn off";
  if (server && server.ready === false) {
    return { text: "ERNIE 补全 ⚠", kind: "failed", title: `${server.message ?? "未就绪 / not ready"}\n${where}\n${toggle}` };
  }
  if (state.kind === "fetching") return { text: "ERNIE 补全…", kind: "fetching", title: `${where}\n${toggle}` };
  if (state.kind === "failed") {
    return { text: "ERNIE 补全 ⚠", kind: "failed", title: `${state.message}\n${where}\n${toggle}` };
  }
  return { text: "ERNIE 补全：开 / on", kind: "on", title: `${where}\n${toggle}` };
}

/** The user's `providers` setting with ours switched; other providers' user values are kept as they are. */
export function withEnabled(userProviders: ReadonlyPartialJSONValue | undefined, id: string, enabled: boolean
): PartialJSONObject {
  const all: PartialJSONObject = userProviders && typeof userProviders === "object" && !Array.isArray(userProviders)
    ? { ...(userProviders as PartialJSONObject) } : {};
  const previous: PartialJSONValue | undefined = all[id];
  const ours = previous && typeof previous === "object" && !Array.isArray(previous) ? previous : {};
  all[id] = { ...ours, enabled };
  return all;
}
