/**
 * Subscriptions: one entry per topic, outliving any one connection, and one `Subscription`
 * object per `subscribe()` call, with its own state and events.
 *
 * Why entries outlive connections: the application subscribes once; the client renews every
 * entry on each new connection (with `since` for candles, so nothing is missed). Several
 * listeners of one topic share one server subscription; the last one leaving ends it.
 *
 * Why a subscribe that times out recycles the socket: a reply that does not come means the
 * connection (or the server behind it) is stuck; the renewal on the next socket asks again,
 * with `since`, so neither bars nor later listeners are stranded.
 */

import { BarSequencer } from "./bars.js";
import { retryLater } from "./closecodes.js";
import type { Connection, UpdateMessage } from "./connection.js";
import { noop, quiet } from "./connection.js";
import { ConnectionError, type MarketcastError, RequestError, TimeoutError } from "./errors.js";
import type { Bar, ErrorCode } from "./generated/messages.js";
import type {
  ReplyMessage,
  RequestPayload,
  Route,
  SubscribeReplyOf,
  TopicKey,
  UpdateOf,
} from "./protocol.js";
import { buildTopic } from "./topics.js";

/** `subscribing` until the server confirms (again after every reconnect), `subscribed`, and
 * `unsubscribed` for good (the application unsubscribed, or the server refused). */
export type SubscriptionState = "subscribing" | "subscribed" | "unsubscribed";

/** The server confirmed the subscription: the first time, and after every reconnect. */
export interface SubscribedEvent {
  /**
   * False when bars are missing: the server could not fill the gap back to `since` (its
   * history does not reach back that far), or more than 1000 live updates came while this
   * subscription's backfill was pending and the oldest were dropped. Reload that chart's
   * history over REST. True otherwise, also when nothing needed recovering.
   */
  readonly recovered: boolean;
  /**
   * The bars this (re)subscribe brought to this subscription, oldest first: the snapshot, the
   * bars from `since`, or the bars missed while disconnected. They also reach `onSnapshot` /
   * `onUpdate` as usual. Empty for quotes.
   */
  readonly bars: Bar[];
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

/** Options of `subscribe`; `snapshot`, `since` and `onSnapshot` exist for candle routes only. */
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

export type SubscribeOptions<R extends Route> = R extends "bars"
  ? BarsSubscribeOptions
  : BaseSubscribeOptions;

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

/** Updates held for one listener while its backfill is on its way: at most this many. */
const MAX_HELD = 1_000;


type SubscribeReply = ReplyMessage<`${Route}.subscribe`>;

/** What one listener still wants before its live stream: the last N bars, or bars since T. */
type Backfill = { readonly snapshot: number } | { readonly since: number };

/** One `subscribe()` call. */
class Listener {
  state: SubscriptionState = "subscribing";
  /** Owed before the live stream; undefined once delivered, or when none was asked. */
  backfill: Backfill | undefined;
  /** Live updates that came while the backfill was on its way (conflated, bounded). */
  readonly held: UpdateOf<"bars">[] = [];
  /** Held updates were dropped (over MAX_HELD): its next `subscribed` says `recovered: false`. */
  overflowed = false;
  /** Confirmed once already: later confirmations are renewals. */
  confirmedOnce = false;
  settled = false;
  readonly events = {
    subscribed: new Set<SubscriptionEvents["subscribed"]>(),
    error: new Set<SubscriptionEvents["error"]>(),
    unsubscribed: new Set<SubscriptionEvents["unsubscribed"]>(),
  };

  constructor(
    readonly onUpdate: (update: never) => void,
    readonly onSnapshot: ((bars: Bar[]) => void) | undefined,
    backfill: Backfill | undefined,
    readonly settle: { resolve: (reply: unknown) => void; reject: (error: MarketcastError) => void },
  ) {
    this.backfill = backfill;
  }

  hold(update: UpdateOf<"bars">): void {
    const last = this.held.at(-1);
    if (last !== undefined && last.time === update.time && !last.closed) this.held.pop();
    this.held.push(update);
    if (this.held.length > MAX_HELD) {
      this.held.shift();
      this.overflowed = true;
    }
  }
}

export class TopicEntry {
  readonly listeners = new Set<Listener>();
  /** Candle continuity across reconnects; undefined for routes without bars. */
  readonly sequencer: BarSequencer | undefined;
  /** True while the current connection carries this subscription (its reply came). */
  confirmed = false;
  /**
   * Updates that arrived before this connection's subscribe reply was handled. The server
   * sends the reply first, but a WebSocket may dispatch several frames in one task, before
   * the promise that handles the reply runs: a live bar delivered then would make the
   * sequencer drop the reply's older recovered bars (a gap). Flushed after the reply, in
   * order; dropped with the connection. Bounded like a listener's held updates.
   */
  readonly early: UpdateMessage[] = [];
  /** Early updates were dropped (over MAX_HELD): the reply's `subscribed` says `recovered: false`. */
  earlyOverflowed = false;
  /** The topic as the server wrote it in its reply: what its updates carry. */
  wireTopic: string;
  /** Transient refusals in a row, for the retry delay; reset by a successful reply. */
  retries = 0;
  /** The latest subscribe reply, for listeners that join an already confirmed topic. */
  lastReply: SubscribeReply | undefined;

  constructor(
    readonly route: Route,
    readonly symbol: string,
    readonly params: Readonly<Record<string, unknown>>,
    readonly topic: string,
  ) {
    this.sequencer = route === "bars" ? new BarSequencer() : undefined;
    this.wireTopic = topic;
  }
}

/** What an entry's subscribe asked for. */
type Kind =
  | { readonly kind: "plain" }
  | { readonly kind: "snapshot"; readonly count: number }
  | { readonly kind: "since"; readonly time: number }
  | { readonly kind: "resume" };

/** Every subscription of one client, renewed on each new connection. */
export class Subscriptions {
  readonly #entries = new Map<string, TopicEntry>();
  readonly #connection: () => Connection;

  /** `connection` is a getter: the connection is made with callbacks into this table. */
  constructor(connection: () => Connection) {
    this.#connection = connection;
  }

  get #conn(): Connection {
    return this.#connection();
  }

  subscribe<R extends Route>(
    route: R,
    key: TopicKey<R>,
    onUpdate: (update: UpdateOf<R>) => void,
    options: SubscribeOptions<R> | undefined,
  ): Subscription<R> {
    const bars: BarsSubscribeOptions = route === "bars" ? (options ?? {}) : {};
    const backfill = backfillOf(bars);
    const { entry, created } = this.#entry(route, key);
    let settle: Listener["settle"] = { resolve: noop, reject: noop };
    const ready = quiet(
      new Promise<unknown>((resolve, reject) => {
        settle = { resolve, reject };
      }),
    ) as Subscription<R>["ready"];
    const listener = new Listener(
      onUpdate as Listener["onUpdate"],
      bars.onSnapshot,
      backfill,
      settle,
    );
    if (options?.onSubscribed) listener.events.subscribed.add(options.onSubscribed);
    if (options?.onError) listener.events.error.add(options.onError);
    if (options?.onUnsubscribed) listener.events.unsubscribed.add(options.onUnsubscribed);
    entry.listeners.add(listener);
    if (this.#conn.connected) {
      if (created) this.#renew(entry);
      else if (entry.confirmed) this.#join(entry, listener);
      // else: the entry's subscribe is in flight; its reply serves this listener too.
    }
    const unsubscribe = () => this.#leave(entry, listener, "client", undefined);
    const on = <E extends keyof SubscriptionEvents>(event: E, callback: SubscriptionEvents[E]) => {
      const set = listener.events[event] as Set<SubscriptionEvents[E]>;
      set.add(callback);
      return () => void set.delete(callback);
    };
    return Object.defineProperties(unsubscribe, {
      unsubscribe: { value: unsubscribe },
      topic: { value: entry.topic },
      ready: { value: ready },
      on: { value: on },
      state: { get: () => listener.state },
    }) as unknown as Subscription<R>;
  }

  /** A socket opened: subscribe every entry; settles when every reply came. */
  renewAll(): Promise<unknown> {
    return Promise.allSettled(this.all().map((entry) => this.#renew(entry)));
  }

  /** The socket was lost: every entry waits for the next one. */
  lost(): void {
    for (const entry of this.all()) {
      entry.confirmed = false;
      entry.early.length = 0;
      entry.earlyOverflowed = false;
      for (const listener of entry.listeners) listener.state = "subscribing";
    }
  }

  deliver(message: UpdateMessage): void {
    const entry = this.#entries.get(message.payload.topic);
    if (entry === undefined) return; // unsubscribed meanwhile
    if (!entry.confirmed) {
      const last = entry.early.at(-1);
      const open = last?.type === "bars.update" && !last.payload.closed;
      if (open && message.type === "bars.update" && last.payload.time === message.payload.time)
        entry.early.pop(); // the same open bar again: only its newest state matters
      entry.early.push(message);
      if (entry.early.length > MAX_HELD) {
        entry.early.shift();
        entry.earlyOverflowed = true;
      }
      return;
    }
    if (message.type === "bars.update" && entry.sequencer?.accept(message.payload) === false)
      return;
    this.#toAll(entry, message.payload);
  }

  // -- the table ------------------------------------------------------------------------------

  #entry(route: Route, key: { readonly symbol: string }): { entry: TopicEntry; created: boolean } {
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

  /** Forget `entry` under every name it has. */
  #delete(entry: TopicEntry): void {
    for (const [topic, candidate] of this.#entries) {
      if (candidate === entry) this.#entries.delete(topic);
    }
  }

  /** Every distinct entry, in subscription order. */
  all(): TopicEntry[] {
    return [...new Set(this.#entries.values())];
  }

  // -- delivery -------------------------------------------------------------------------------

  #toAll(entry: TopicEntry, update: UpdateMessage["payload"]): void {
    for (const listener of [...entry.listeners]) {
      // Only candle listeners ever wait for a backfill, so only candles are ever held.
      if (listener.backfill !== undefined) listener.hold(update as UpdateOf<"bars">);
      else this.#conn.call(listener.onUpdate as (u: unknown) => void, update);
    }
  }

  /** Hand `listener` its backfill out of `bars`, then what was held; returns what it got. */
  #giveBackfill(entry: TopicEntry, listener: Listener, bars: Bar[]): Bar[] {
    const wanted = listener.backfill;
    if (wanted === undefined) return [];
    listener.backfill = undefined;
    const mine =
      "snapshot" in wanted
        ? bars.slice(-wanted.snapshot)
        : bars.filter((bar) => bar.time >= wanted.since);
    const onUpdate = listener.onUpdate as (u: unknown) => void;
    if (listener.onSnapshot !== undefined) this.#conn.call(listener.onSnapshot, mine);
    else for (const bar of mine) this.#conn.call(onUpdate, barUpdate(entry, bar));
    // Held updates the backfill already covers are dropped, as the server does for its holds.
    const last = mine.at(-1);
    for (const update of listener.held.splice(0)) {
      const newer = last === undefined || update.time > last.time;
      if (newer || (update.time === last.time && !last.closed)) this.#conn.call(onUpdate, update);
    }
    return mine;
  }

  #confirm(listener: Listener, reply: SubscribeReply, event: Omit<SubscribedEvent, "resubscribed">) {
    if (listener.state === "unsubscribed") return;
    listener.state = "subscribed";
    const resubscribed = listener.confirmedOnce;
    listener.confirmedOnce = true;
    const recovered = event.recovered && !listener.overflowed;
    listener.overflowed = false;
    if (!listener.settled) {
      listener.settled = true;
      listener.settle.resolve(reply);
    }
    for (const callback of [...listener.events.subscribed])
      this.#conn.call(callback, { ...event, recovered, resubscribed });
  }

  // -- subscribing ----------------------------------------------------------------------------

  /** Subscribe `entry` on the current connection; settles when answered. */
  #renew(entry: TopicEntry): Promise<void> {
    const payload: Record<string, unknown> = { symbol: entry.symbol, params: entry.params };
    let kind: Kind = { kind: "plain" };
    const resume = entry.sequencer?.resumeFrom;
    const sinces = [...entry.listeners].flatMap((l) =>
      l.backfill !== undefined && "since" in l.backfill ? [l.backfill.since] : [],
    );
    const snapshot = Math.max(
      0,
      ...[...entry.listeners].map((l) =>
        l.backfill !== undefined && "snapshot" in l.backfill ? l.backfill.snapshot : 0,
      ),
    );
    if (resume !== undefined) {
      payload["since"] = resume;
      kind = { kind: "resume" };
    } else if (sinces.length > 0) {
      const time = Math.min(...sinces);
      payload["since"] = time;
      kind = { kind: "since", time };
    } else if (snapshot > 0) {
      payload["snapshot"] = snapshot;
      kind = { kind: "snapshot", count: snapshot };
    }
    const generation = this.#conn.generation;
    const listeners = [...entry.listeners];
    return this.#request(entry, payload).then(
      (reply) => this.#subscribed(entry, reply, kind),
      (error: unknown) =>
        this.#failed(entry, listeners, error, generation, () => void this.#renew(entry)),
    );
  }

  /** A listener joins a topic already subscribed on this connection. */
  #join(entry: TopicEntry, listener: Listener): void {
    if (listener.backfill === undefined && entry.lastReply !== undefined) {
      this.#confirm(listener, entry.lastReply, { recovered: true, bars: [] });
      return;
    }
    void this.#backfillFor(entry, listener);
  }

  /** Ask the server for `listener`'s own backfill ("already subscribed" still answers it). */
  #backfillFor(entry: TopicEntry, listener: Listener): Promise<void> {
    const wanted = listener.backfill;
    const payload: Record<string, unknown> = { symbol: entry.symbol, params: entry.params };
    if (wanted !== undefined) {
      if ("snapshot" in wanted) payload["snapshot"] = wanted.snapshot;
      else payload["since"] = wanted.since;
    }
    const generation = this.#conn.generation;
    return this.#request(entry, payload).then(
      (reply) => {
        if (!entry.listeners.has(listener)) return;
        const bars = this.#giveBackfill(entry, listener, barsOf(reply));
        this.#confirm(listener, reply, { recovered: recoveredOf(reply), bars });
      },
      (error: unknown) =>
        this.#failed(entry, [listener], error, generation, () => void this.#backfillFor(entry, listener)),
    );
  }

  #request(entry: TopicEntry, payload: Record<string, unknown>): Promise<SubscribeReply> {
    const type = `${entry.route}.subscribe` as const;
    // The payload is built from the entry, whose key was typed by subscribe()'s signature.
    return this.#conn.request(type, payload as unknown as RequestPayload<typeof type>);
  }

  #subscribed(entry: TopicEntry, reply: SubscribeReply, kind: Kind): void {
    if (!this.all().includes(entry)) return; // every listener left meanwhile
    entry.confirmed = true;
    entry.retries = 0;
    entry.lastReply = withoutBars(reply);
    entry.wireTopic = reply.payload.topic;
    if (!this.#entries.has(reply.payload.topic)) this.#entries.set(reply.payload.topic, entry);
    const bars = barsOf(reply);
    // Early updates dropped for room: bars are missing, as when the server cannot fill a gap.
    const recovered = recoveredOf(reply) && !entry.earlyOverflowed;
    entry.earlyOverflowed = false;
    let recoveredBars: Bar[] = [];
    if (kind.kind === "resume") {
      // Bars missed while disconnected, continuous with the live stream that follows.
      recoveredBars = bars.filter((bar) => entry.sequencer?.accept(bar) === true);
      for (const bar of recoveredBars) this.#toAll(entry, barUpdate(entry, bar));
    } else if (kind.kind !== "plain") {
      for (const bar of bars) entry.sequencer?.accept(bar);
    }
    for (const listener of [...entry.listeners]) {
      const wanted = listener.backfill;
      const served =
        wanted === undefined ||
        (kind.kind === "snapshot" && "snapshot" in wanted && wanted.snapshot <= kind.count) ||
        (kind.kind === "since" && "since" in wanted && wanted.since >= kind.time);
      if (!served) {
        void this.#backfillFor(entry, listener); // wants another backfill, or joined late
        continue;
      }
      const mine = wanted === undefined ? recoveredBars : this.#giveBackfill(entry, listener, bars);
      this.#confirm(listener, reply, { recovered, bars: mine });
    }
    // Then what arrived before this reply was handled, after the bars it recovered.
    for (const message of entry.early.splice(0)) this.deliver(message);
  }

  /**
   * A subscribe failed. A refusal ends the listeners; a transient refusal (rate limited, a
   * server fault) is retried after a backoff delay; a timeout recycles the socket; a lost
   * connection waits for the renewal every new connection does anyway.
   */
  #failed(
    entry: TopicEntry,
    listeners: Listener[],
    error: unknown,
    generation: number,
    retry: () => void,
  ): void {
    const connection = this.#conn;
    if (error instanceof TimeoutError) {
      this.#emitError(listeners, { code: "timeout", message: error.message, willRetry: true, error });
      connection.recycle(generation, "subscribe timeout");
      return;
    }
    if (!(error instanceof RequestError)) return; // ConnectionError: renewed on the next socket
    // "Not now" rather than "no" (the contract's x-error-codes): retried after a delay.
    if (retryLater(error.code)) {
      this.#emitError(listeners, { code: error.code, message: error.message, willRetry: true, error });
      const delay = connection.backoffDelay(Math.min(entry.retries, 8));
      entry.retries += 1;
      connection.after(delay, () => {
        const wanted = listeners.some((listener) => entry.listeners.has(listener));
        if (connection.connected && connection.generation === generation && wanted) retry();
      });
      return;
    }
    const event = { code: error.code, message: error.message, willRetry: false, error };
    for (const listener of listeners) {
      if (!entry.listeners.has(listener)) continue;
      this.#emitError([listener], event);
      this.#leave(entry, listener, "refused", error);
    }
  }

  #emitError(listeners: Listener[], event: SubscriptionErrorEvent): void {
    for (const listener of listeners) {
      if (listener.state === "unsubscribed") continue;
      if (listener.events.error.size === 0) this.#conn.report(event.error);
      for (const callback of [...listener.events.error]) this.#conn.call(callback, event);
    }
  }

  #leave(entry: TopicEntry, listener: Listener, reason: "client" | "refused", error?: RequestError) {
    if (!entry.listeners.delete(listener)) return;
    listener.state = "unsubscribed";
    if (!listener.settled) {
      listener.settled = true;
      listener.settle.reject(
        error ?? new ConnectionError(`unsubscribed from ${entry.topic} before the reply`),
      );
    }
    for (const callback of [...listener.events.unsubscribed])
      this.#conn.call(callback, { reason, error });
    if (entry.listeners.size > 0) return;
    this.#delete(entry);
    if (reason === "refused" || !this.#conn.connected) return;
    const type = `${entry.route}.unsubscribe` as const;
    const payload = { symbol: entry.symbol, params: entry.params } as RequestPayload<typeof type>;
    this.#conn.request(type, payload).catch((failure: unknown) => {
      if (failure instanceof RequestError) this.#conn.report(failure);
    });
  }
}

function backfillOf(options: BarsSubscribeOptions): Backfill | undefined {
  const { snapshot = 0, since } = options;
  if (!Number.isInteger(snapshot) || snapshot < 0 || snapshot > 1000)
    throw new RangeError(`snapshot must be an integer from 0 to 1000, got ${snapshot}`);
  if (since !== undefined) {
    if (!Number.isSafeInteger(since) || since < 0)
      throw new RangeError(`since must be a time in ms UTC (an integer >= 0), got ${since}`);
    if (snapshot > 0) throw new RangeError("snapshot and since cannot be combined");
    return { since };
  }
  return snapshot > 0 ? { snapshot } : undefined;
}

/** The reply without its bars: kept for listeners that join later, who did not ask for them. */
function withoutBars<T extends SubscribeReply>(reply: T): T {
  if (!("bars" in reply.payload)) return reply;
  const { bars: _bars, ...payload } = reply.payload;
  return { ...reply, payload } as T;
}

/** The bars a subscribe reply carries (snapshot or since), oldest first. */
function barsOf(reply: SubscribeReply): Bar[] {
  return "bars" in reply.payload ? (reply.payload.bars ?? []) : [];
}

/** False only when the server said that bars since `since` are missing. */
function recoveredOf(reply: SubscribeReply): boolean {
  return !("recovered" in reply.payload && reply.payload.recovered === false);
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
