"""Comm traffic of the chat widget: batched deltas vs a string trait updated per token.

    python benchmarks/widget_comm.py            # 20,000-token answer; 2,000 tokens/s for 5 s
    python benchmarks/widget_comm.py --smoke    # small sizes, a quick check that it runs

1. Bytes. A 20,000-token answer streamed through `ErnieChat` from the ERNIE protocol simulator (real
   HTTP + SSE, one token per chunk, no delay), comm messages captured at `BaseComm.send` and packed
   the way jupyter_client packs them (`json_packer`: UTF-8, ensure_ascii=False). Reported separately:
   the delta contents, the start/done messages, the end-of-turn trait write, and the whole Jupyter
   message on the wire (header, parent header, metadata, signature). The baseline is a minimal
   anywidget with a Unicode trait doing ``w.text += token`` per token, which resends the whole text
   every time (docs/notebook-facts.md §6). Goal: delta content bytes ≤ 1.2 × the answer's UTF-8 size.
2. Rate. A paced producer (a `backend=` async generator) feeds 2,000 tokens/s; we count comm
   messages per second (overall, and the worst 1-second window) against jupyter_server's IOPub limit of
   1000 msg/s averaged over 3 s — above it the server drops messages. Goal: at most one delta per display frame
   (the DeltaBatcher flushes on a 1/60 s grid, at most once per grid slot): ≤ 62 deltas in the worst 1-second
   window (a window meets at most 61 slots, plus the flush that ends the answer). All messages (start, the trait
   writes, done) are reported too.

Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IOPUB_MSG_RATE_LIMIT = 1000  # jupyter_server ZMQChannelsWebsocketConnection.iopub_msg_rate_limit
# Two-character tokens, so the simulator's chunk_size=2 sends exactly one token per SSE event.
VOCAB = ["你好", "世界", "模型", "回答", "流式", "输出", "，我", "们的", "。\n", "数据", " a", "nd", " t", "he",
         " x", " =", " 1", "\n\n", "**", "代码"]


def make_tokens(n: int) -> list[str]:
    return [VOCAB[(i * 7 + i // 3) % len(VOCAB)] for i in range(n)]


class Capture:
    """Replaces `BaseComm.send`; keeps per-message sizes (not the messages: the baseline sends ~1 GB)."""

    def __init__(self) -> None:
        from jupyter_client.session import Session, json_packer

        self.packer = json_packer
        self.session = Session(key=b"benchmark-signing-key")
        self.records: list[tuple[float, str, str, int]] = []  # (time, method, custom type, data bytes)
        self._envelope: int | None = None

    def install(self) -> None:
        import comm.base_comm

        capture = self

        def send(comm_self: Any, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
            capture.record(data)

        comm.base_comm.BaseComm.send = send  # type: ignore[method-assign,assignment]

    def record(self, data: dict[str, Any]) -> None:
        method = data.get("method", "")
        kind = data.get("content", {}).get("type", "") if method == "custom" else ""
        size = len(self.packer(data["content"] if method == "custom" else data))
        self.records.append((time.monotonic(), method, kind, size))

    def envelope_bytes(self) -> int:
        """Bytes a comm_msg adds around its `data` on the wire: header, parent, metadata, signature."""
        if self._envelope is None:
            data = {"method": "custom", "content": {}}
            msg = self.session.msg("comm_msg", content={"comm_id": "f" * 32, "data": data},
                                   parent=self.session.msg_header("execute_request"))
            frames = self.session.serialize(msg, ident=[b"comm-f" * 4])
            self._envelope = sum(len(f) for f in frames) - len(self.packer({}))
        return self._envelope

    def clear(self) -> None:
        self.records.clear()


def chat_bytes(capture: Capture, tokens: list[str]) -> dict[str, Any]:
    """Stream the answer through ErnieChat from the simulator; sizes by message kind."""
    from ernie_widget import ErnieChat
    from ernie_widget.testing import Answer, ErnieSimulator

    answer = "".join(tokens)
    with ErnieSimulator() as sim:
        os.environ.update(sim.env("qianfan", api_key="bce-v3/ALTAK-bench/secret"))
        chat = ErnieChat()
        chat.ask("warm up").wait(30)
        sim.push(Answer(text=answer, chunk_size=2, delay=0))
        capture.clear()
        t0 = time.monotonic()
        reply = chat.ask("write a long answer").wait(300)
        elapsed = time.monotonic() - t0
        chunks = sim.chat_requests[-1].chunks_sent
    assert reply["content"] == answer, "the streamed text differs from the answer"
    recs = capture.records
    deltas = [r for r in recs if r[2] == "delta"]
    control = [r for r in recs if r[1] == "custom" and r[2] != "delta"]
    updates = [r for r in recs if r[1] == "update"]
    answer_bytes = len(answer.encode())
    return {
        "tokens": len(tokens), "sse_chunks": chunks, "seconds": elapsed, "answer_bytes": answer_bytes,
        "messages": len(recs), "delta_messages": len(deltas),
        "delta_content_bytes": sum(r[3] for r in deltas),
        "control_bytes": sum(r[3] for r in control),
        "trait_writes": len(updates), "final_trait_bytes": updates[-1][3] if updates else 0,
        "trait_bytes": sum(r[3] for r in updates),
        "wire_bytes": sum(r[3] for r in recs) + len(recs) * capture.envelope_bytes(),
    }


def trait_bytes(capture: Capture, tokens: list[str]) -> dict[str, Any]:
    """The naive widget: one Unicode trait, ``w.text += token`` for every token."""
    import anywidget
    import traitlets

    class TextWidget(anywidget.AnyWidget):
        _esm = "export default { render() {} };"
        text = traitlets.Unicode("").tag(sync=True)

    w = TextWidget()
    capture.clear()
    t0 = time.monotonic()
    for tok in tokens:
        w.text += tok
    elapsed = time.monotonic() - t0
    recs = capture.records
    w.close()
    return {"tokens": len(tokens), "seconds": elapsed, "messages": len(recs),
            "data_bytes": sum(r[3] for r in recs),
            "wire_bytes": sum(r[3] for r in recs) + len(recs) * capture.envelope_bytes()}


def paced_rate(capture: Capture, rate: float, seconds: float) -> dict[str, Any]:
    """Messages per second from ErnieChat while a backend produces *rate* tokens per second."""
    from ernie_widget import ErnieChat

    n = int(rate * seconds)
    tokens = make_tokens(n)

    async def paced(history: list[dict[str, Any]]) -> AsyncIterator[str]:
        start = time.monotonic()
        for i, tok in enumerate(tokens):
            ahead = start + i / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            yield tok

    chat = ErnieChat(backend=paced)
    capture.clear()
    t0 = time.monotonic()
    reply = chat.ask("go").wait(seconds * 3 + 30)
    elapsed = time.monotonic() - t0
    assert reply["content"] == "".join(tokens)
    times = [r[0] for r in capture.records]
    delta_bytes = sum(r[3] for r in capture.records if r[2] == "delta")
    worst = max(sum(1 for t in times if s <= t < s + 1.0) for s in times) if times else 0
    deltas = [r[0] for r in capture.records if r[2] == "delta"]
    worst_deltas = max(sum(1 for t in deltas if s <= t < s + 1.0) for s in deltas) if deltas else 0
    return {"tokens": n, "seconds": elapsed, "input_tokens_per_s": n / elapsed,
            "messages": len(times), "messages_per_s": len(times) / elapsed, "worst_1s_window": worst,
            "worst_1s_window_deltas": worst_deltas, "per_token_messages_per_s": n / elapsed,
            "delta_bytes_ratio": delta_bytes / len(reply["content"].encode())}


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1024
    return str(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=20_000, help="answer length in tokens (default 20,000)")
    parser.add_argument("--rate", type=float, default=2000.0, help="paced input, tokens/s (default 2,000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="paced run length (default 5 s)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: 1,000 tokens, 1 s paced")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.smoke:
        args.tokens, args.seconds = 1_000, 1.0
    os.environ.setdefault("ERNIE_QUIET", "1")

    capture = Capture()
    capture.install()
    tokens = make_tokens(args.tokens)
    chat = chat_bytes(capture, tokens)
    naive = trait_bytes(capture, tokens)
    rate = paced_rate(capture, args.rate, args.seconds)

    ratio = chat["delta_content_bytes"] / chat["answer_bytes"]
    goals = {
        "delta content bytes <= 1.2 x answer UTF-8 bytes": ratio <= 1.2,
        # at most one flush per 1/60 s grid slot (a 1 s window meets at most 61), plus the one that ends the answer
        "paced stream <= 62 deltas/s (worst 1 s window: one delta per frame)": rate["worst_1s_window_deltas"] <= 62,
        "paced stream under the IOPub limit (worst 1 s window)": rate["worst_1s_window"] < IOPUB_MSG_RATE_LIMIT,
    }
    if args.json:
        print(json.dumps({"chat": chat, "trait_per_token": naive, "paced": rate, "goals": goals}, indent=2))
        return 0 if all(goals.values()) else 1

    print(f"1. A {chat['tokens']:,}-token answer ({fmt_bytes(chat['answer_bytes'])} UTF-8), "
          f"{chat['sse_chunks']:,} SSE chunks from the simulator in {chat['seconds']:.2f} s")
    print(f"   ErnieChat   {chat['messages']:>7,} messages: {chat['delta_messages']:,} deltas "
          f"= {fmt_bytes(chat['delta_content_bytes'])} ({ratio:.3f} x the answer), "
          f"start/done {fmt_bytes(chat['control_bytes'])}, "
          f"{chat['trait_writes']} trait writes = {fmt_bytes(chat['trait_bytes'])} "
          f"(end of turn: {fmt_bytes(chat['final_trait_bytes'])})")
    print(f"               on the wire with Jupyter headers: {fmt_bytes(chat['wire_bytes'])}")
    print(f"   w.text += t {naive['messages']:>7,} messages: {fmt_bytes(naive['data_bytes'])} "
          f"(on the wire {fmt_bytes(naive['wire_bytes'])}), {naive['seconds']:.2f} s of Python")
    print(f"   → the per-token trait sends {naive['wire_bytes'] / chat['wire_bytes']:,.0f} x more bytes")
    print(f"2. Paced input: {rate['tokens']:,} tokens at {rate['input_tokens_per_s']:,.0f} tokens/s "
          f"for {rate['seconds']:.2f} s")
    print(f"   ErnieChat   {rate['messages_per_s']:6.1f} msg/s (worst 1 s window: {rate['worst_1s_window']}, "
          f"{rate['worst_1s_window_deltas']} of them deltas) — "
          f"{100 * rate['messages_per_s'] / IOPUB_MSG_RATE_LIMIT:.1f} % of the {IOPUB_MSG_RATE_LIMIT} msg/s "
          f"IOPub limit; delta bytes {rate['delta_bytes_ratio']:.3f} x the text")
    print(f"   per token   {rate['per_token_messages_per_s']:6.0f} msg/s — "
          f"{100 * rate['per_token_messages_per_s'] / IOPUB_MSG_RATE_LIMIT:.0f} % of the limit "
          "(jupyter_server drops the excess)")
    for goal, ok in goals.items():
        print(f"   {'PASS' if ok else 'FAIL'}  {goal}")
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
