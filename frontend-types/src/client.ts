/**
 * A typed marketcast WebSocket client for browsers and Node, with no runtime dependencies.
 *
 * What it adds to a bare WebSocket, and why:
 * - requests carry ids and return promises, so a caller learns which request a refusal was for;
 * - subscriptions outlive connections: after a drop the client reconnects by itself
 *   (`connection.ts`), renews every subscription and asks for the candles missed meanwhile
 *   (`since`), delivering them de-duplicated (`bars.ts`), so the application sees no gap and
 *   no repeated closed bar;
 * - an observable connection state, for "reconnecting..." banners.
 */

import { fullJitterDelay } from "./backoff.js";
import { Connection, type ConnectionState, noop, quiet, type UpdateMessage } from "./connection.js";
import { ConnectionError, MarketcastError, RequestError, TimeoutError } from "./errors.js";
import type { Bar } from "./generated/messages.js";
import type { ClientOptions, RequestOptions } from "./options.js";
import type {
  ClientMessageType,
  ReplyMessage,
  RequestPayload,
  Route,
  ServerMessageOf,
  TopicKey,
  UpdateOf,
} from "./protocol.js";
import {
  barUpdate,
  type BarsSubscribeOptions,
  type Listener,
  type SubscribeOptions,
  type Subscription,
  SubscriptionTable,
  type TopicEntry,
} from "./subscriptions.js";

export type { ConnectionState } from "./connection.js";
export type { ClientOptions, RequestOptions } from "./options.js";

type SubscribeReply = ReplyMessage<`${Route}.subscribe`>;

/** What a subscribe asked for: nothing more, the last `count` bars, or the bars since a time. */
type SubscribeKind = { kind: "plain" } | { kind: "snapshot"; count: number } | { kind: "since" };

/** Refusals that say "not now" rather than "no": the request is retried after a delay. */
const TRANSIENT_CODES: ReadonlySet<string> = new Set(["rate_limited", "internal_error"]);

export class MarketcastClient {
  readonly url: string;
  readonly #connection: Connection;
  readonly #subscriptions = new SubscriptionTable();

  constructor(url: string, options: ClientOptions = {}) {
    this.url = url;
    this.#connection = new Connection(url, options, {
      onOpened: () => {
        for (const entry of this.#subscriptions.all()) this.#renew(entry);
      },
      onLost: () => {
        for (const entry of this.#subscriptions.all()) entry.confirmed = false;
      },
      onUpdate: (message) => this.#deliver(message),
    });
  }

  /** The connection state now; see `onStateChange` to follow it. */
  get state(): ConnectionState {
    return this.#connection.state;
  }

  /** Call `listener` on every state change; returns a function that stops the calls. */
  onStateChange(listener: (state: ConnectionState) => void): () => void {
    return this.#connection.onStateChange(listener);
  }

  /** Start connecting (and keep reconnecting); resolves once a connection is open. */
  connect(): Promise<void> {
    return this.#connection.connect();
  }

  /** Resolves when a connection is open (at once if one is); rejects if close() comes first. */
  whenOpen(): Promise<void> {
    return this.#connection.whenOpen();
  }

  /** Close for good (until connect() again): pending requests reject, subscriptions stay registered. */
  close(): void {
    this.#connection.close();
  }

  /**
   * Send a request and resolve with the reply (`bars.subscribe` -> `bars.subscribe.response`).
   * Rejects with RequestError when the server refuses it, TimeoutError when no reply comes in
   * time, ConnectionError when the connection drops first. Sent as soon as a connection is
   * open. Prefer `subscribe()` for subscriptions: it renews them after reconnects.
   */
  request<T extends ClientMessageType>(
    type: T,
    payload: RequestPayload<T>,
    options: RequestOptions = {},
  ): Promise<ReplyMessage<T>> {
    return this.#connection.request(type, payload, options);
  }

  /** An application-level ping; resolves with the server's pong (its clock, ms UTC). */
  ping(options: RequestOptions = {}): Promise<ServerMessageOf<"pong">> {
    return this.#connection.request("ping", {}, options);
  }

  /**
   * Receive `route`'s updates for `key` (e.g. `"bars"`, `{ symbol: "BTCUSDT", resolution: "1" }`)
   * until the returned function is called. Works before `connect()` and across reconnects.
   * For bars, `options.snapshot` asks for the last N bars first: they go to
   * `options.onSnapshot` as one array if given, else through `onUpdate` one by one.
   */
  subscribe<R extends Route>(
    route: R,
    key: TopicKey<R>,
    onUpdate: (update: UpdateOf<R>) => void,
    options?: SubscribeOptions<R>,
  ): Subscription<R> {
    const barsOptions: BarsSubscribeOptions = options ?? {};
    const snapshot = route === "bars" ? (barsOptions.snapshot ?? 0) : 0;
    if (!Number.isInteger(snapshot) || snapshot < 0 || snapshot > 1000) {
      throw new RangeError(`snapshot must be an integer from 0 to 1000, got ${snapshot}`);
    }
    const { entry, created } = this.#subscriptions.entry(route, key);
    let settle: Listener["settle"] = { resolve: noop, reject: noop };
    const ready = quiet(
      new Promise<unknown>((resolve, reject) => {
        settle = { resolve, reject };
      }),
    ) as Subscription<R>["ready"];
    const listener: Listener = {
      onUpdate: onUpdate as Listener["onUpdate"],
      onError: barsOptions.onError,
      onSnapshot: barsOptions.onSnapshot,
      snapshot,
      held: [],
      settle,
      settled: false,
    };
    entry.listeners.add(listener);
    if (this.#connection.connected) {
      if (created) this.#renew(entry);
      else if (entry.confirmed) this.#join(entry, listener);
      // else: the entry's subscribe is in flight; its reply settles this listener too.
    }
    const unsubscribe = () => this.#leave(entry, listener);
    return Object.assign(unsubscribe, { topic: entry.topic, ready });
  }

  // -- delivery -------------------------------------------------------------------------------

  #deliver(message: UpdateMessage): void {
    const entry = this.#subscriptions.get(message.payload.topic);
    if (entry === undefined) return; // unsubscribed meanwhile
    if (message.type === "bars.update" && entry.sequencer?.accept(message.payload) === false)
      return;
    this.#toAll(entry, message.payload);
  }

  #toAll(entry: TopicEntry, update: UpdateMessage["payload"]): void {
    for (const listener of [...entry.listeners]) {
      // Only candle listeners ever wait for a snapshot, so only candles are ever held.
      if (listener.snapshot > 0) listener.held.push(update as UpdateOf<"bars">);
      else this.#connection.call(listener.onUpdate as (u: unknown) => void, update);
    }
  }

  // -- subscribing ----------------------------------------------------------------------------

  /** Subscribe `entry` on the current connection: `since` after a drop, else a snapshot if owed. */
  #renew(entry: TopicEntry): void {
    const payload: Record<string, unknown> = { symbol: entry.symbol, params: entry.params };
    let kind: SubscribeKind = { kind: "plain" };
    const resume = entry.sequencer?.resumeFrom;
    if (resume !== undefined) {
      payload["since"] = resume;
      kind = { kind: "since" };
    } else if (entry.snapshotWanted > 0) {
      payload["snapshot"] = entry.snapshotWanted;
      kind = { kind: "snapshot", count: entry.snapshotWanted };
    }
    this.#subscribeRequest(entry, payload).then(
      (reply) => this.#subscribed(entry, reply, kind),
      (error: unknown) =>
        this.#refused(entry, [...entry.listeners], error, () => this.#renew(entry)),
    );
  }

  /** A listener joins a topic already subscribed on this connection. */
  #join(entry: TopicEntry, listener: Listener): void {
    if (listener.snapshot === 0 && entry.lastReply !== undefined) {
      this.#settle(listener, entry.lastReply);
      return;
    }
    this.#snapshotFor(entry, listener);
  }

  /** Ask the server again for `listener`'s snapshot ("already subscribed" still answers it). */
  #snapshotFor(entry: TopicEntry, listener: Listener): void {
    const payload = { symbol: entry.symbol, params: entry.params, snapshot: listener.snapshot };
    this.#subscribeRequest(entry, payload).then(
      (reply) => {
        if (!entry.listeners.has(listener)) return;
        this.#giveSnapshot(entry, listener, barsOf(reply));
        this.#settle(listener, reply);
      },
      (error: unknown) =>
        this.#refused(entry, [listener], error, () => this.#snapshotFor(entry, listener)),
    );
  }

  #subscribeRequest(entry: TopicEntry, payload: Record<string, unknown>): Promise<SubscribeReply> {
    const type = `${entry.route}.subscribe` as const;
    // The payload is built from the entry, whose key was typed by subscribe()'s signature.
    return this.#connection.request(type, payload as unknown as RequestPayload<typeof type>);
  }

  #subscribed(entry: TopicEntry, reply: SubscribeReply, kind: SubscribeKind): void {
    if (this.#subscriptions.get(entry.topic) !== entry) return; // every listener left meanwhile
    entry.confirmed = true;
    entry.retries = 0;
    entry.lastReply = withoutBars(reply);
    entry.wireTopic = reply.payload.topic;
    this.#subscriptions.alias(reply.payload.topic, entry);
    const bars = barsOf(reply);
    if (kind.kind === "since") {
      if ("recovered" in reply.payload && reply.payload.recovered === false) {
        const first = bars[0]?.time;
        this.#connection.reportError(
          new MarketcastError(
            `${entry.topic}: the server's history does not reach back to the last bar received; ` +
              `bars are missing before ${first === undefined ? "the next one" : new Date(first).toISOString()}`,
          ),
        );
      }
      // Bars missed while disconnected, continuous with the live stream that follows.
      for (const bar of bars) {
        if (entry.sequencer?.accept(bar) === true) this.#toAll(entry, barUpdate(entry, bar));
      }
    } else if (kind.kind === "snapshot") {
      for (const bar of bars) entry.sequencer?.accept(bar);
      for (const listener of [...entry.listeners]) {
        // A listener that joined meanwhile wanting more than was asked gets its own request.
        if (listener.snapshot <= kind.count) this.#giveSnapshot(entry, listener, bars);
      }
    }
    for (const listener of [...entry.listeners]) {
      if (listener.snapshot > 0)
        this.#snapshotFor(entry, listener); // joined after the request left
      else this.#settle(listener, reply);
    }
  }

  #giveSnapshot(entry: TopicEntry, listener: Listener, bars: Bar[]): void {
    if (listener.snapshot === 0) return;
    const mine = bars.slice(-listener.snapshot);
    listener.snapshot = 0;
    const onUpdate = listener.onUpdate as (u: unknown) => void;
    if (listener.onSnapshot !== undefined) this.#connection.call(listener.onSnapshot, mine);
    else for (const bar of mine) this.#connection.call(onUpdate, barUpdate(entry, bar));
    // Held updates the snapshot already covers are dropped, as the server does for its holds.
    const last = mine.at(-1);
    for (const update of listener.held.splice(0)) {
      const newer = last === undefined || update.time > last.time;
      if (newer || (update.time === last.time && !last.closed))
        this.#connection.call(onUpdate, update);
    }
  }

  #settle(listener: Listener, reply: unknown): void {
    if (listener.settled) return;
    listener.settled = true;
    listener.settle.resolve(reply);
  }

  /**
   * A subscribe failed. A refusal ends the listeners; a transient refusal (rate limited, a
   * server fault) is retried after a backoff delay; a lost connection waits for the renewal
   * every new connection does anyway.
   */
  #refused(entry: TopicEntry, listeners: Listener[], error: unknown, retry: () => void): void {
    const connection = this.#connection;
    if (!(error instanceof RequestError)) {
      if (error instanceof TimeoutError) connection.reportError(error);
      return;
    }
    if (TRANSIENT_CODES.has(error.code)) {
      connection.reportError(error);
      const generation = connection.generation;
      const delay = fullJitterDelay(
        Math.min(entry.retries, 8),
        connection.backoff,
        connection.random,
      );
      entry.retries += 1;
      connection.timers.setTimeout(() => {
        const wanted = listeners.some((listener) => entry.listeners.has(listener));
        if (connection.connected && connection.generation === generation && wanted) retry();
      }, delay);
      return;
    }
    for (const listener of listeners) {
      if (!entry.listeners.delete(listener)) continue;
      listener.settled = true;
      listener.settle.reject(error);
      if (listener.onError !== undefined) connection.call(listener.onError, error);
      else connection.reportError(error);
    }
    if (entry.listeners.size === 0) this.#subscriptions.delete(entry);
  }

  #leave(entry: TopicEntry, listener: Listener): void {
    if (!entry.listeners.delete(listener)) return;
    if (!listener.settled) {
      listener.settled = true;
      listener.settle.reject(
        new ConnectionError(`unsubscribed from ${entry.topic} before the reply`),
      );
    }
    if (entry.listeners.size > 0) return;
    this.#subscriptions.delete(entry);
    if (!this.#connection.connected) return;
    const type = `${entry.route}.unsubscribe` as const;
    const payload = { symbol: entry.symbol, params: entry.params } as RequestPayload<typeof type>;
    this.#connection.request(type, payload).catch((error: unknown) => {
      if (error instanceof RequestError) this.#connection.reportError(error);
    });
  }
}

/** Create a client and start connecting; the same as `new MarketcastClient(url).connect()`. */
export function connect(url: string, options?: ClientOptions): MarketcastClient {
  const client = new MarketcastClient(url, options);
  void client.connect();
  return client;
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
