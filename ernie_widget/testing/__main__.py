"""`python -m ernie_widget.testing`: run the simulator in its own process until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from ._server import ErnieSimulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ernie_widget.testing", description="Serve the ERNIE protocol simulator on 127.0.0.1."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every chat response")
    parser.add_argument(
        "--text", default=None, help="fixed answer text (default: echo the last user message)"
    )
    parser.add_argument("--reasoning", default="", help="reasoning text streamed before the answer")
    parser.add_argument("--chunk-size", type=int, default=4, help="characters per streamed chunk")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between streamed chunks")
    args = parser.parse_args(argv)

    sim = ErnieSimulator(args.host, args.port, latency=args.latency)
    sim.set_answer(text=args.text, reasoning=args.reasoning, chunk_size=args.chunk_size, delay=args.delay)
    stopping: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        # Only a plain append here: Event.set() from a signal handler can deadlock on the lock that
        # Event.wait() in the interrupted main thread is holding.
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sim.start()
    try:
        print(f"ERNIE_SIMULATOR_URL={sim.url}", flush=True)  # first stdout line: what launchers parse
        while not stopping:
            time.sleep(0.05)
    finally:
        sim.stop()
        print(f"served {len(sim.chat_requests)} chat requests", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
