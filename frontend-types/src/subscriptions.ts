/**
 * Subscriptions: one entry per topic, outliving any one connection, and one `Subscription`
 * object per `subscribe()` call, with its own state and events.
 *
 * Why entries outlive connections: the application subscribes once; the client renews every
 * entry on each new connection, asking for what it missed (`since` for candles, a snapshot
 * for trades: each family's rules are in `history.ts`), so nothing is missed or repeated.
 * Several listeners of one topic share one server subscription; the last one leaving ends it.
 *
 * Why a subscribe that times out recycles the socket: a reply that does not come means the
 * connection (or the server behind it) is stuck; the renewal on the next socket asks again,
 * resuming, so neither updates nor later listeners are stranded.
 */

import { retryLater } from "./closecodes.js";
import type { Connection, UpdateMessage } from "./connection.js";
import { noop, quiet } from "./connection.js";
import { ConnectionError, type MarketcastError, RequestError, TimeoutError } from "./errors.js";
import type { Bar, BookSnapshot, TradeRecord } from "./generated/messages.js";
import {
  type AnyFamily,
  type Backfill,
  backfillOf,
  familyOf,
  itemsOf,
  recoveredOf,
  type Sequencer,
  type SubscribeReply,
  withoutItems,
} from "./history.js";
import type { RequestPayload, Route, TopicKey, UpdateOf } from "./protocol.js";
import type {
  AnyOptions,
  SubscribedEvent,
  SubscribeOptions,
  Subscription,
  SubscriptionErrorEvent,
  SubscriptionEvents,
  SubscriptionState,
} from "./subscription.js";
import { buildTopic } from "./topics.js";

/** Updates held for one listener while its backfill is on its way: at most this many. */
const MAX_HELD = 1_000;

/**
 * Routes whose subscribe reply carries the stream's state at that instant (`orderbook`'s
 * `book`), which the updates that follow continue: a listener joining such a topic asks for a
 * reply of its own (the server answers "already subscribed" with the state as it is now),
 * since the reply that confirmed the topic is out of date by then.
 */
const STATEFUL: ReadonlySet<Route> = new Set<Route>(["orderbook"]);

/** A live update of any route, as the table handles them. */
type Update = UpdateMessage["payload"];

/** One `subscribe()` call. */
class Listener {
  state: SubscriptionState = "subscribing";
  /** Owed before the live stream; undefined once delivered, or when none was asked. */
  backfill: Backfill | undefined;
  /** Live updates that came while the backfill was on its way (conflated, bounded). */
  readonly held: Update[] = [];
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
    readonly onSnapshot: ((items: object[]) => void) | undefined,
    backfill: Backfill | undefined,
    readonly settle: { resolve: (reply: unknown) => void; reject: (error: MarketcastError) => void },
  ) {
    this.backfill = backfill;
  }

  /** Keep `update` until the backfill came; `family` says which held one it supersedes. */
  hold(family: AnyFamily, update: Update): void {
    const last = this.held.at(-1);
    if (last !== undefined && family.supersedes(last, update)) this.held.pop();
    this.held.push(update);
    if (this.held.length > MAX_HELD) {
      this.held.shift();
      this.overflowed = true;
    }
  }
}

export class TopicEntry {
  readonly listeners = new Set<Listener>();
  /** The route's history rules; undefined for routes without history (quotes). */
  readonly family: AnyFamily | undefined;
  /** Continuity across reconnects (bars by time, trades by id); undefined without history. */
  readonly sequencer: Sequencer<object> | undefined;
  /** True while the current connection carries this subscription (its reply came). */
  confirmed = false;
  /**
   * Updates that arrived before this connection's subscribe reply was handled. The server
   * sends the reply first, but a WebSocket may dispatch several frames in one task, before
   * the promise that handles the reply runs: a live update delivered then would make the
   * sequencer drop the reply's older recovered items (a gap). Flushed after the reply, in
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
    this.family = familyOf(route);
    this.sequencer = this.family?.sequencer();
    this.wireTopic = topic;
  }
}

/** What an entry's subscribe asked for; a resume may be a snapshot too (trades). */
type Kind =
  | { readonly kind: "plain" }
  | { readonly kind: "snapshot"; readonly count: number }
  | { readonly kind: "since"; readonly time: number }
  | { readonly kind: "resume"; readonly count: number };

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
    const family = familyOf(route);
    const wants: AnyOptions = family !== undefined ? (options ?? {}) : {};
    const backfill = backfillOf(route, family, wants);
    const { entry, created } = this.#entry(route, key);
    let settle: Listener["settle"] = { resolve: noop, reject: noop };
    const ready = quiet(
      new Promise<unknown>((resolve, reject) => {
        settle = { resolve, reject };
      }),
    ) as Subscription<R>["ready"];
    const listener = new Listener(
      onUpdate as Listener["onUpdate"],
      wants.onSnapshot as Listener["onSnapshot"],
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
      // The same open bar again: only its newest state matters.
      if (last !== undefined && entry.family?.supersedes(last.payload, message.payload))
        entry.early.pop();
      entry.early.push(message);
      if (entry.early.length > MAX_HELD) {
        entry.early.shift();
        entry.earlyOverflowed = true;
      }
      return;
    }
    if (entry.sequencer?.accept(message.payload) === false) return;
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

  #toAll(entry: TopicEntry, update: Update): void {
    for (const listener of [...entry.listeners]) {
      // Only listeners of a route with history ever wait for a backfill, so have a family.
      if (listener.backfill !== undefined && entry.family !== undefined)
        listener.hold(entry.family, update);
      else this.#conn.call(listener.onUpdate as (u: unknown) => void, update);
    }
  }

  /** Hand `listener` its backfill out of `items`, then what was held; returns what it got. */
  #giveBackfill(entry: TopicEntry, listener: Listener, items: object[]): object[] {
    const wanted = listener.backfill;
    const family = entry.family;
    if (wanted === undefined || family === undefined) return [];
    listener.backfill = undefined;
    const mine =
      "snapshot" in wanted
        ? items.slice(-wanted.snapshot)
        : items.filter((item) => family.since?.(item, wanted.since) ?? true);
    const onUpdate = listener.onUpdate as (u: unknown) => void;
    if (listener.onSnapshot !== undefined) this.#conn.call(listener.onSnapshot, mine);
    else for (const item of mine) this.#conn.call(onUpdate, family.update(entry, item));
    // Held updates the backfill already covers are dropped, as the server does for its holds:
    // a sequencer of this listener's own, started where its backfill ends, tells them apart.
    const sequencer = family.sequencer();
    for (const item of mine) sequencer.accept(item);
    for (const update of listener.held.splice(0))
      if (sequencer.accept(update)) this.#conn.call(onUpdate, update);
    return mine;
  }

  #confirm(
    listener: Listener,
    reply: SubscribeReply,
    event: Omit<SubscribedEvent, "resubscribed">,
  ): void {
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
    const resume = entry.sequencer?.resume();
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
      Object.assign(payload, resume);
      kind = { kind: "resume", count: "snapshot" in resume ? resume.snapshot : 0 };
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
    if (
      listener.backfill === undefined &&
      entry.lastReply !== undefined &&
      !STATEFUL.has(entry.route)
    ) {
      this.#confirm(listener, entry.lastReply, { recovered: true, ...brought(entry, [], undefined) });
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
        const mine = this.#giveBackfill(entry, listener, itemsOf(entry.family, reply));
        const event = { recovered: recoveredOf(reply), ...brought(entry, mine, reply) };
        this.#confirm(listener, reply, event);
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
    entry.lastReply = withoutItems(entry.family, reply);
    entry.wireTopic = reply.payload.topic;
    if (!this.#entries.has(reply.payload.topic)) this.#entries.set(reply.payload.topic, entry);
    const items = itemsOf(entry.family, reply);
    // Early updates dropped for room: some are missing, as when the server cannot fill a gap.
    const complete = recoveredOf(reply) && !entry.earlyOverflowed;
    entry.earlyOverflowed = false;
    let resumed = complete;
    let recoveredItems: object[] = [];
    if (kind.kind === "resume" && entry.sequencer !== undefined && entry.family !== undefined) {
      // Missed while disconnected, continuous with the live stream that follows; whether
      // they reach back to what was delivered is asked before they move the sequencer on.
      const { sequencer, family } = entry;
      resumed = complete && sequencer.joins(items);
      recoveredItems = items.filter((item) => sequencer.accept(item));
      for (const item of recoveredItems) this.#toAll(entry, family.update(entry, item) as Update);
    } else if (kind.kind !== "plain") {
      for (const item of items) entry.sequencer?.accept(item);
    }
    for (const listener of [...entry.listeners]) {
      const wanted = listener.backfill;
      const served =
        wanted === undefined ||
        ((kind.kind === "snapshot" || kind.kind === "resume") &&
          "snapshot" in wanted &&
          wanted.snapshot <= kind.count) ||
        (kind.kind === "since" && "since" in wanted && wanted.since >= kind.time);
      if (!served) {
        void this.#backfillFor(entry, listener); // wants another backfill, or joined late
        continue;
      }
      // A listener still owed its backfill gets it from this reply; the others the renewal.
      if (wanted === undefined) {
        const event = { recovered: resumed, ...brought(entry, recoveredItems, reply) };
        this.#confirm(listener, reply, event);
      } else {
        const mine = this.#giveBackfill(entry, listener, items);
        this.#confirm(listener, reply, { recovered: complete, ...brought(entry, mine, reply) });
      }
    }
    // Then what arrived before this reply was handled, after the items it recovered.
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

/**
 * `items` as the field of `SubscribedEvent` that has them; the other fields are empty. A
 * stateful route's event also carries the state `reply` brought (its `book`).
 */
function brought(
  entry: TopicEntry,
  items: object[],
  reply: SubscribeReply | undefined,
): Pick<SubscribedEvent, "bars" | "trades" | "book"> {
  const event = { bars: [] as Bar[], trades: [] as TradeRecord[] };
  const field = entry.family?.field;
  if (field !== undefined) event[field] = items as Bar[] & TradeRecord[];
  if (reply === undefined || !STATEFUL.has(entry.route)) return event;
  // The server leaves a null book out of the reply: absent means "not joined yet" as well.
  const book: BookSnapshot | null = "book" in reply.payload ? (reply.payload.book ?? null) : null;
  return { ...event, book };
}
