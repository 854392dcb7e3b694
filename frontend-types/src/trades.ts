/**
 * Continuity of one trades stream across reconnects, by trade id.
 *
 * Ids are strictly increasing per symbol and never repeated (the upstream's aggregate trade
 * ids; the simulator's own 1, 2, 3, ...). So the rule that makes the application see each
 * trade once and in order is one comparison: a trade whose id is not above the last one
 * delivered is dropped.
 *
 * After a reconnect there is no `since` for trades: the client re-subscribes with a snapshot of
 * the most the server keeps (`KEPT`, 500), oldest first and continuous with the live stream
 * that follows. It overlaps what the application already has; only ids above the last one
 * delivered get through. The snapshot covers the gap when it reaches back to that id:
 *
 * - its oldest id is at most last + 1 (no integer, so no trade, fits in between), and
 * - its newest id is at least the last one (the server's history is not behind the client's).
 *
 * Otherwise trades may be missing (more than 500 came meanwhile, or the server lost its history
 * or numbers its trades anew, as a restarted simulator does, from 1) and the renewal's
 * `subscribed` event says `recovered: false`. The client still never goes back: trades at or
 * below the last id stay dropped, so to start a fresh tape, subscribe anew.
 */

import type { TradeRecord, TradesUpdatePayload } from "./generated/messages.js";
import type { Family, Resume, Sequencer } from "./history.js";

/** Trades the server keeps per symbol: the largest `snapshot` of a `trades.subscribe`. */
export const KEPT = 500;

/** The part of a trade the rule looks at; both `TradeRecord` and `TradesUpdatePayload` have it. */
export interface Identified {
  readonly id: number;
}

export class TradeSequencer implements Sequencer<Identified> {
  /** The id of the newest trade delivered. */
  #last: number | undefined;

  accept(trade: Identified): boolean {
    if (this.#last !== undefined && trade.id <= this.#last) return false;
    this.#last = trade.id;
    return true;
  }

  /** The id of the newest trade delivered, or undefined before the first. */
  get lastId(): number | undefined {
    return this.#last;
  }

  resume(): Resume | undefined {
    return this.#last === undefined ? undefined : { snapshot: KEPT };
  }

  joins(trades: readonly Identified[]): boolean {
    const last = this.#last;
    if (last === undefined) return true; // nothing delivered: nothing to join
    const [oldest, newest] = [trades[0], trades.at(-1)];
    // An empty snapshot: the server kept none of the trades it sent, so it cannot vouch.
    if (oldest === undefined || newest === undefined) return false;
    return oldest.id <= last + 1 && newest.id >= last;
  }
}

/** Trades: snapshots of up to 500, resumed by a snapshot and de-duplicated by id. */
export const TRADES: Family<TradeRecord, TradesUpdatePayload> = {
  field: "trades",
  maxSnapshot: KEPT,
  sequencer: () => new TradeSequencer(),
  supersedes: () => false, // every trade counts: none is conflated
  update: (stream, trade) => ({ topic: stream.wireTopic, symbol: stream.symbol, ...trade }),
};
