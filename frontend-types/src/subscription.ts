/**
 * What one `subscribe()` call is to the application: its options, its state and its events.
 * The table that implements them, one entry per topic renewed on every connection, is
 * `subscriptions.ts`; each route's history rules (snapshots, resuming) are in `history.ts`.
 */

import type { Bar, BookSnapshot, ErrorCode, TradeRecord } from "./generated/messages.js";
import type { RequestError, TimeoutError } from "./errors.js";
import type { Route, SubscribeReplyOf } from "./protocol.js";

/** `subscribing` until the server confirms (again after every reconnect), `subscribed`, and
 * `unsubscribed` for good (the application unsubscribed, or the server refused). */
export type SubscriptionState = "subscribing" | "subscribed" | "unsubscribed";

/** The server confirmed the subscription: the first time, and after every reconnect. */
export interface SubscribedEvent {
  /**
   * False when updates are missing. Bars: the server could not fill the gap back to `since`
   * (its history does not reach back that far): reload that chart's history over REST.
   * Trades: the renewal's snapshot does not reach back to the last trade delivered (more than
   * 500 came meanwhile, or the server lost its history or numbers its trades anew after a
   * restart): subscribe anew for a fresh tape. Either: more than 1000 live updates came while
   * this subscription's backfill was pending and the oldest were dropped. True otherwise,
   * also when nothing needed recovering.
   */
  readonly recovered: boolean;
  /**
   * The bars this (re)subscribe brought to this subscription, oldest first: the snapshot, the
   * bars from `since`, or the bars missed while disconnected. They also reach `onSnapshot` /
   * `onUpdate` as usual. Empty for other routes.
   */
  readonly bars: Bar[];
  /**
   * The trades this (re)subscribe brought to this subscription, oldest first: the snapshot, or
   * the trades missed while disconnected. They also reach `onSnapshot` / `onUpdate` as usual.
   * Empty for other routes.
   */
  readonly trades: TradeRecord[];
  /**
   * `orderbook` only: the book this (re)subscribe brought, read by the server for this very
   * reply (also for a listener joining a topic already subscribed) and continuous with the
   * updates that follow; null while the server's book is not joined yet (it then comes as a
   * `reset` update). Absent for other routes. `OrderBook` (`orderbook.ts`) is built on it.
   */
  readonly book?: BookSnapshot | null;
  /** True for a renewal after a reconnect. */
  readonly resubscribed: boolean;
}

/** A subscribe failed. */
export interface SubscriptionErrorEvent {
  /** The server's error code, or `timeout` when no reply came in time. */
  readonly code: ErrorCode | "timeout";
  readonly message: string;
  /** True when the client tries again by itself; false when the subscription ended. */
  readonly willRetry: boolean;
  readonly error: RequestError | TimeoutError;
}

/** The subscription ended for good. */
export interface UnsubscribedEvent {
  /** `client`: `unsubscribe()` was called; `refused`: the server refused it (`error`). */
  readonly reason: "client" | "refused";
  readonly error: RequestError | undefined;
}

export interface SubscriptionEvents {
  subscribed: (event: SubscribedEvent) => void;
  error: (event: SubscriptionErrorEvent) => void;
  unsubscribed: (event: UnsubscribedEvent) => void;
}

/** Options of `subscribe` for every route; routes with history add `snapshot`, `onSnapshot`... */
export interface BaseSubscribeOptions {
  /** The same as `subscription.on("subscribed", ...)`, registered before anything happens. */
  readonly onSubscribed?: SubscriptionEvents["subscribed"];
  /** The same as `subscription.on("error", ...)`. */
  readonly onError?: SubscriptionEvents["error"];
  /** The same as `subscription.on("unsubscribed", ...)`. */
  readonly onUnsubscribed?: SubscriptionEvents["unsubscribed"];
}

export interface BarsSubscribeOptions extends BaseSubscribeOptions {
  /** Ask for the last N bars (1..1000) before the live stream; 0 or absent for none. */
  readonly snapshot?: number;
  /**
   * Ask for every bar opening at or after this time (ms UTC) before the live stream: to join
   * a history loaded over REST, pass the open time of its newest bar. Not with `snapshot`.
   */
  readonly since?: number;
  /**
   * Receives the snapshot (or the bars from `since`) as one array, oldest first (e.g. a
   * chart's `setData`). Without it, they go through `onUpdate` one by one.
   */
  readonly onSnapshot?: (bars: Bar[]) => void;
}

export interface TradesSubscribeOptions extends BaseSubscribeOptions {
  /** Ask for the newest N trades (1..500, what the server keeps) before the live stream. */
  readonly snapshot?: number;
  /**
   * Receives the snapshot as one array, oldest first (e.g. to fill a tape at once). Without it,
   * the trades go through `onUpdate` one by one.
   */
  readonly onSnapshot?: (trades: TradeRecord[]) => void;
}

/** The options of each route with history; the others (quotes) take the base options. */
interface OptionsOf {
  bars: BarsSubscribeOptions;
  trades: TradesSubscribeOptions;
}

export type SubscribeOptions<R extends Route> = R extends keyof OptionsOf
  ? OptionsOf[R]
  : BaseSubscribeOptions;

/** What `subscribe` reads of its options, whatever the route (internal). */
export type AnyOptions = BaseSubscribeOptions & {
  readonly snapshot?: number;
  readonly since?: number;
  readonly onSnapshot?: (items: never[]) => void;
};

/** One `subscribe()`: calling it (or `unsubscribe()`) ends it; idempotent. */
export interface Subscription<R extends Route> {
  (): void;
  unsubscribe(): void;
  /** The topic, as the client computed it (and the server confirms in its reply). */
  readonly topic: string;
  readonly state: SubscriptionState;
  /** Resolves with the server's first reply; rejects with a RequestError if it refused. */
  readonly ready: Promise<SubscribeReplyOf<R>>;
  /** Call `listener` on every such event; returns a function that stops the calls. */
  on<E extends keyof SubscriptionEvents>(event: E, listener: SubscriptionEvents[E]): () => void;
}
