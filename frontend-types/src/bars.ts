/**
 * Continuity of one candle stream across reconnects: what to ask for, and what to let through.
 *
 * After a reconnect the client re-subscribes with `since` = the open time of the newest bar it
 * delivered; the server answers with every bar at or after that time, then streams. That
 * answer overlaps what the application already saw (at least the bar at `since`), and a server
 * that just restarted may replay older bars too. The rule that makes the application see each
 * closed bar once and never go back in time:
 *
 * - a bar at or before the newest *closed* bar delivered is a duplicate: dropped;
 * - a bar older than the newest bar delivered is stale: dropped;
 * - anything else (the same open bar updated, or a newer bar) is delivered.
 *
 * `BARS` is the family's entry for the subscription table (`history.ts`).
 */

import type { Bar, BarsUpdatePayload } from "./generated/messages.js";
import type { Family, Resume, Sequencer, Stream } from "./history.js";

/** The part of a candle the rule looks at; both `Bar` and `BarsUpdatePayload` have it. */
export interface Timed {
  readonly time: number;
  readonly closed: boolean;
}

export class BarSequencer implements Sequencer<Timed> {
  /** Open time of the newest bar delivered, open or closed. */
  #lastTime: number | undefined;
  /** Open time of the newest closed bar delivered. */
  #lastClosed: number | undefined;

  /** True when `bar` is to be delivered (and remembered); false for a duplicate or stale bar. */
  accept(bar: Timed): boolean {
    if (this.#lastClosed !== undefined && bar.time <= this.#lastClosed) return false;
    if (this.#lastTime !== undefined && bar.time < this.#lastTime) return false;
    this.#lastTime = bar.time;
    if (bar.closed) this.#lastClosed = bar.time;
    return true;
  }

  /**
   * The `since` to re-subscribe with: the newest bar delivered (the server sends it again,
   * closed by now or still open), or undefined when nothing was delivered yet.
   */
  get resumeFrom(): number | undefined {
    return this.#lastTime;
  }

  resume(): Resume | undefined {
    return this.#lastTime === undefined ? undefined : { since: this.#lastTime };
  }

  /** Always: the server itself says whether its `since` reply is complete (`recovered`). */
  joins(): boolean {
    return true;
  }
}

/** The aliases a subscribe may use, as the server writes them in replies and updates. */
const CANONICAL_RESOLUTION: Readonly<Record<string, string>> = { "1D": "D", "1W": "W", "1M": "M" };

/** What `onUpdate` receives for a bar that came in a snapshot or a `since` reply: the same
 * fields a live update carries, so the resolution in its canonical spelling. */
export function barUpdate(stream: Stream, bar: Bar): BarsUpdatePayload {
  const asked = String(stream.params["resolution"]);
  return {
    topic: stream.wireTopic,
    symbol: stream.symbol,
    resolution: (CANONICAL_RESOLUTION[asked] ?? asked) as BarsUpdatePayload["resolution"],
    ...bar,
  };
}

/** Candles: snapshots of up to 1000 bars or every bar `since` a time, resumed with `since`. */
export const BARS: Family<Bar, BarsUpdatePayload> = {
  field: "bars",
  maxSnapshot: 1000,
  since: (bar, since) => bar.time >= since,
  sequencer: () => new BarSequencer(),
  // Only the newest state of an open bar matters; a closed bar is never superseded.
  supersedes: (held, next) => held.time === next.time && !held.closed,
  update: barUpdate,
};
