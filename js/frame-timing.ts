/**
 * How long each streamed delta waited between arriving and the frame that rendered it, reported to the kernel.
 *
 * The kernel sends at most one delta per frame on a 1/60 s grid, and this view renders in
 * `requestAnimationFrame`: a chunk waits for the kernel's flush and then for the page's next frame, two clocks
 * that know nothing of each other. With these reports the kernel moves its grid so that deltas arrive just before
 * a frame (ernie_widget/frame_clock.py). Timing hints only: nothing here changes what is shown.
 */
import type { FrameTimingMsg } from "./protocol.gen";

/** Deltas per report: about 0.4 s of a fast stream (≤ 60 deltas/s), ~2.5 small messages a second. */
export const REPORT_EVERY = 24;
/** Deltas remembered between two frames (a hidden tab runs no frames: the oldest are dropped). */
const MAX_PENDING = 256;

interface Arrival {
  mid: number;
  seq: number;
  at: number;
}

export class FrameTiming {
  private pending: Arrival[] = [];
  private mid = -1;
  private waits: number[][] = [];

  constructor(
    private readonly report: (msg: FrameTimingMsg) => void,
    private readonly every = REPORT_EVERY,
  ) {}

  /** A delta arrived at `at` (performance.now()). */
  arrived(mid: number, seq: number, at: number): void {
    if (this.pending.length >= MAX_PENDING) this.pending.shift();
    this.pending.push({ mid, seq, at });
  }

  /** A frame is rendering now (`now`, performance.now()): every delta since the last frame waited until now. */
  frame(now: number): void {
    for (const { mid, seq, at } of this.pending) {
      if (mid !== this.mid) {
        this.mid = mid;
        this.waits = [];
      }
      this.waits.push([seq, Math.round(Math.max(0, now - at) * 10) / 10]);
    }
    this.pending = [];
    if (this.waits.length >= this.every) {
      this.report({ type: "frame_timing", mid: this.mid, waits: this.waits });
      this.waits = [];
    }
  }
}
