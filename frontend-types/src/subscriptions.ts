/**
 * The client's subscriptions, one entry per topic, outliving any one connection.
 *
 * Why entries outlive connections: the application subscribes once; the client renews every
 * entry on each new connection (with `since` for candles, so nothing is missed). Several
 * listeners of one topic share one server subscription; the last one leaving ends it.
 */

import { BarSequencer, type Timed } from "./bars.js";
import type { MarketcastError, RequestError } from "./errors.js";
import type { Bar } from "./generated/messages.js";
import type { Route, SubscribeReplyOf, UpdateOf } from "./protocol.js";
import { buildTopic } from "./topics.js";

/** Options of `subscribe`; `snapshot` and `onSnapshot` exist for candle routes only. */
export interface BaseSubscribeOptions {
  /**
   * Called when the server refuses the subscription (unknown symbol, unsupported resolution,
   * too many subscriptions). The subscription is then dropped; it is not retried.
   */
  readonly onError?: (error: RequestError) => void;
}

export interface BarsSubscribeOptions extends BaseSubscribeOptions {
  /** Ask for the last N bars (1..1000) before the live stream; 0 or absent for none. */
  readonly snapshot?: number;
  /**
   * Receives the snapshot as one array, oldest first (e.g. a chart's `setData`). Without it,
   * the snapshot's bars go through `onUpdate` one by one, as if they had just arrived.
   */
  readonly onSnapshot?: (bars: Bar[]) => void;
}

export type SubscribeOptions<R extends Route> = R extends "bars"
  ? BarsSubscribeOptions
  : BaseSubscribeOptions;

/** Ends one listener's subscription (idempotent); `ready` settles with the first reply. */
export interface Subscription<R extends Route> {
  (): void;
  /** The topic, as the client computed it (and the server confirms in its reply). */
  readonly topic: string;
  /** Resolves with the server's first reply; rejects with a RequestError if it refused. */
  readonly ready: Promise<SubscribeReplyOf<R>>;
}

/** One application callback on a topic. */
export interface Listener {
  readonly onUpdate: (update: never) => void;
  readonly onError: ((error: RequestError) => void) | undefined;
  readonly onSnapshot: ((bars: Bar[]) => void) | undefined;
  /** Bars wanted in this listener's snapshot; 0 once delivered, or when none was asked. */
  snapshot: number;
  /**
   * Live updates that came while this listener's snapshot was on its way; released after the
   * snapshot minus what it already holds, so the listener's stream never goes back in time.
   */
  readonly held: Timed[];
  readonly settle: {
    resolve: (reply: unknown) => void;
    reject: (error: MarketcastError) => void;
  };
  settled: boolean;
}

export class TopicEntry {
  readonly listeners = new Set<Listener>();
  /** Candle continuity across reconnects; undefined for routes without bars. */
  readonly sequencer: BarSequencer | undefined;
  /** True while the current connection carries this subscription (its reply came). */
  confirmed = false;
  /** The topic as the server wrote it in its reply: what its updates carry. */
  wireTopic: string;
  /** Transient refusals in a row, for the retry delay; reset by a successful reply. */
  retries = 0;
  /** The latest subscribe reply, for listeners that join an already confirmed topic. */
  lastReply: SubscribeReplyOf<Route> | undefined;

  constructor(
    readonly route: Route,
    readonly symbol: string,
    readonly params: Readonly<Record<string, unknown>>,
    readonly topic: string,
  ) {
    this.sequencer = route === "bars" ? new BarSequencer() : undefined;
    this.wireTopic = topic;
  }

  /** The largest snapshot still owed to a listener (0 if none). */
  get snapshotWanted(): number {
    let wanted = 0;
    for (const listener of this.listeners) wanted = Math.max(wanted, listener.snapshot);
    return wanted;
  }
}

export class SubscriptionTable {
  readonly #entries = new Map<string, TopicEntry>();

  /** The entry for `route` + `key`, created if new; `created` says which. */
  entry(route: Route, key: { readonly symbol: string }): { entry: TopicEntry; created: boolean } {
    const { symbol, ...params } = key as { symbol: string } & Record<string, unknown>;
    if (typeof symbol !== "string" || symbol === "") {
      throw new TypeError(
        `subscribe needs a non-empty string symbol, got ${JSON.stringify(symbol)}`,
      );
    }
    const topic = buildTopic(route, { symbol, ...(params as Record<string, string>) });
    const existing = this.#entries.get(topic);
    if (existing !== undefined) return { entry: existing, created: false };
    const entry = new TopicEntry(route, symbol, params, topic);
    this.#entries.set(topic, entry);
    return { entry, created: true };
  }

  get(topic: string): TopicEntry | undefined {
    return this.#entries.get(topic);
  }

  /** Also answer to the topic the server confirmed, should its spelling differ. */
  alias(topic: string, entry: TopicEntry): void {
    if (!this.#entries.has(topic)) this.#entries.set(topic, entry);
  }

  /** Forget `entry` under every name it has. */
  delete(entry: TopicEntry): void {
    for (const [topic, candidate] of this.#entries) {
      if (candidate === entry) this.#entries.delete(topic);
    }
  }

  /** Every distinct entry, in subscription order. */
  all(): TopicEntry[] {
    return [...new Set(this.#entries.values())];
  }
}

/** The aliases a subscribe may use, as the server writes them in replies and updates. */
const CANONICAL_RESOLUTION: Readonly<Record<string, string>> = { "1D": "D", "1W": "W", "1M": "M" };

/** What `onUpdate` receives for a bar that came in a snapshot or a `since` reply: the same
 * fields a live update carries, so the resolution in its canonical spelling. */
export function barUpdate(entry: TopicEntry, bar: Bar): UpdateOf<"bars"> {
  const asked = String(entry.params["resolution"]);
  return {
    topic: entry.wireTopic,
    symbol: entry.symbol,
    resolution: (CANONICAL_RESOLUTION[asked] ?? asked) as UpdateOf<"bars">["resolution"],
    ...bar,
  };
}
