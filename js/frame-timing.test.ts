import { describe, expect, it } from "vitest";
import { FrameTiming } from "./frame-timing";
import type { FrameTimingMsg } from "./protocol.gen";

describe("FrameTiming", () => {
  it("reports each delta's wait from arrival to its frame, every N deltas", () => {
    const sent: FrameTimingMsg[] = [];
    const timing = new FrameTiming((m) => sent.push(m), 4);
    timing.arrived(7, 0, 100);
    timing.arrived(7, 1, 104.04);
    timing.frame(112);
    expect(sent).toEqual([]);
    timing.arrived(7, 2, 120);
    timing.arrived(7, 3, 121);
    timing.frame(128.7);
    expect(sent).toEqual([{ type: "frame_timing", mid: 7, waits: [[0, 12], [1, 8], [2, 8.7], [3, 7.7]] }]);
    timing.frame(140); // nothing arrived since: no report, nothing counted
    expect(sent).toHaveLength(1);
  });

  it("starts over for a new answer and never reports a negative wait", () => {
    const sent: FrameTimingMsg[] = [];
    const timing = new FrameTiming((m) => sent.push(m), 2);
    timing.arrived(1, 0, 10);
    timing.frame(15);
    timing.arrived(2, 0, 30);
    timing.frame(29); // a clock read before the message's own time
    expect(sent).toEqual([]);
    timing.arrived(2, 1, 40);
    timing.frame(41);
    expect(sent).toEqual([{ type: "frame_timing", mid: 2, waits: [[0, 0], [1, 1]] }]);
  });

  it("remembers a bounded number of deltas while no frame runs (a hidden tab)", () => {
    const sent: FrameTimingMsg[] = [];
    const timing = new FrameTiming((m) => sent.push(m), 257);
    for (let seq = 0; seq < 5000; seq++) timing.arrived(1, seq, seq);
    timing.frame(6000);
    expect(sent).toEqual([]); // at most 256 remembered: never the 257 a report needs
    timing.arrived(1, 5000, 6000);
    timing.frame(6001);
    expect(sent[0].waits.slice(0, 2)).toEqual([[4744, 1256], [4745, 1255]]); // the newest kept
  });
});
