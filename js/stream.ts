/**
 * The delta protocol (kernel → browser custom messages), without any DOM.
 *
 * Deltas are fire-and-forget and jupyter_server drops IOPub messages over its rate limit
 * (docs/notebook-facts.md §6), so every delta has a `seq` (0, 1, 2 … per `mid`):
 *   seq == expected → append;  seq < expected → duplicate, ignore;
 *   seq  > expected → a delta was lost: send `{type: "resync", mid}` once and ignore deltas until the kernel's
 *                     `resync` reply brings the whole in-flight buffer and the next expected seq.
 * Once the `messages` trait holds an entry for a `mid`, that entry is the truth and late deltas are ignored.
 */
import type { TurnStatus } from "./types";

/** What the assembler tells the view. */
export interface StreamSink {
  /** A new in-flight answer `mid` (append an empty streaming bubble). */
  begin(mid: number): void;
  /** New text and/or reasoning for `mid`, in order. */
  append(mid: number, text: string, reasoning: string): void;
  /** The whole in-flight text and reasoning so far (after a resync). */
  replace(mid: number, text: string, reasoning: string): void;
  /** The turn ended. */
  end(mid: number, status: TurnStatus, error?: string): void;
  /** Ask the kernel to resend the in-flight buffer of `mid`. */
  requestResync(mid: number): void;
}

interface InFlight {
  mid: number;
  expected: number;
  text: string;
  reasoning: string;
  awaitingResync: boolean;
  done: boolean;
}

const isMid = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value);
const isSeq = (value: unknown): value is number => typeof value === "number" && Number.isInteger(value) && value >= 0;
const asText = (value: unknown): string => (typeof value === "string" ? value : "");
const asStatus = (value: unknown): TurnStatus => (value === "stopped" || value === "error" ? value : "ok");

export class DeltaAssembler {
  private current: InFlight | null = null;

  /**
   * @param sink receives the assembled stream
   * @param isFinal whether the `messages` trait already holds the final entry for `mid`
   */
  constructor(
    private readonly sink: StreamSink,
    private readonly isFinal: (mid: number) => boolean,
  ) {}

  /** Handle one custom message; returns false when it is not part of the stream protocol. */
  handle(msg: unknown): boolean {
    if (!msg || typeof msg !== "object") return false;
    const m = msg as Record<string, unknown>;
    switch (m.type) {
      case "start":
        if (isMid(m.mid)) this.start(m.mid);
        return true;
      case "delta":
        if (isMid(m.mid) && isSeq(m.seq)) this.delta(m.mid, m.seq, asText(m.text), asText(m.reasoning));
        return true;
      case "resync":
        if (isMid(m.mid) && isSeq(m.seq)) this.resync(m.mid, m.seq, asText(m.text), asText(m.reasoning));
        return true;
      case "done":
        if (isMid(m.mid)) this.done(m.mid, asStatus(m.status), typeof m.error === "string" ? m.error : undefined);
        return true;
      default:
        return false;
    }
  }

  private start(mid: number): void {
    if (this.current?.mid === mid || this.isFinal(mid)) return; // duplicate start, or already final
    this.open(mid);
  }

  private open(mid: number): InFlight {
    this.current = { mid, expected: 0, text: "", reasoning: "", awaitingResync: false, done: false };
    this.sink.begin(mid);
    return this.current;
  }

  /** The in-flight record for `mid`, opening one when its `start` was missed (e.g. a view created mid-stream). */
  private target(mid: number): InFlight | null {
    if (this.current?.mid === mid) return this.current.done ? null : this.current;
    if (this.isFinal(mid)) return null;
    return this.open(mid);
  }

  private delta(mid: number, seq: number, text: string, reasoning: string): void {
    if (this.isFinal(mid)) return;
    const flight = this.target(mid);
    if (!flight || flight.awaitingResync || seq < flight.expected) return;
    if (seq > flight.expected) {
      flight.awaitingResync = true;
      this.sink.requestResync(mid);
      return;
    }
    flight.expected = seq + 1;
    flight.text += text;
    flight.reasoning += reasoning;
    if (text || reasoning) this.sink.append(mid, text, reasoning);
  }

  private resync(mid: number, seq: number, text: string, reasoning: string): void {
    if (this.isFinal(mid)) return;
    const flight = this.target(mid);
    if (!flight) return;
    flight.expected = seq;
    flight.text = text;
    flight.reasoning = reasoning;
    flight.awaitingResync = false;
    this.sink.replace(mid, text, reasoning);
  }

  private done(mid: number, status: TurnStatus, error?: string): void {
    let flight: InFlight | null = this.current?.mid === mid ? this.current : null;
    if (!flight) {
      // A turn that ended before we saw any of it (e.g. an error before the first token): show the error,
      // unless the transcript already has the final entry.
      if (this.isFinal(mid)) return;
      flight = this.open(mid);
    }
    if (flight.done) return;
    flight.done = true;
    this.sink.end(mid, status, error);
  }
}
