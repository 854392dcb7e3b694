/**
 * A typed marketcast WebSocket client for browsers and Node, with no runtime dependencies.
 *
 * What it adds to a bare WebSocket, and why:
 * - requests carry ids and return promises, so a caller learns which request a refusal was for;
 * - subscriptions outlive connections (`subscriptions.ts`): after a drop the client reconnects
 *   by itself, following the close-code policy (`connection.ts`, `closecodes.ts`), renews
 *   every subscription and asks for what was missed meanwhile (candles `since` the newest one,
 *   the newest trades), delivering it de-duplicated (`history.ts`: `bars.ts`, `trades.ts`), so
 *   the application sees no gap and no repeated closed bar or trade, or is told of a gap;
 * - an observable connection state and `disconnected` events, for "reconnecting..." banners;
 * - the token travels as a subprotocol, never in the URL.
 */

import { Connection, type ConnectionState } from "./connection.js";
import type { ClientOptions, DisconnectedEvent, RequestOptions } from "./options.js";
import type {
  ClientMessageType,
  ReplyMessage,
  RequestPayload,
  Route,
  ServerMessageOf,
  TopicKey,
  UpdateOf,
} from "./protocol.js";
import type { SubscriptionsListResponsePayload } from "./generated/messages.js";
import type { SubscribeOptions, Subscription } from "./subscription.js";
import { Subscriptions } from "./subscriptions.js";

export type { ConnectionState } from "./connection.js";
export type { ClientOptions, DisconnectedEvent, RequestOptions } from "./options.js";

export class MarketcastClient {
  readonly url: string;
  readonly #connection: Connection;
  readonly #subscriptions: Subscriptions;

  constructor(url: string, options: ClientOptions = {}) {
    this.url = url;
    this.#subscriptions = new Subscriptions(() => this.#connection);
    this.#connection = new Connection(url, options, {
      onOpened: () => this.#subscriptions.renewAll(),
      onLost: () => this.#subscriptions.lost(),
      onUpdate: (message) => this.#subscriptions.deliver(message),
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

  /**
   * Call `listener` whenever a socket closes or fails to open, with `{code, reason, willRetry,
   * delayMs, wasOpen}`; returns a function that stops the calls.
   */
  onDisconnected(listener: (event: DisconnectedEvent) => void): () => void {
    return this.#connection.onDisconnected(listener);
  }

  /**
   * Start connecting (and keep reconnecting); resolves once a connection is open and its
   * subscriptions are renewed. After the client stopped (state `failed`), starts over.
   */
  connect(): Promise<void> {
    return this.#connection.connect();
  }

  /**
   * Use `token` from the next connection on (the server's `MARKETCAST_AUTH_TOKENS`), instead
   * of the `token` option or `getToken()`. After an `UnauthorizedError` the client waits for
   * this (or `connect()`, which asks `getToken()` again): it reconnects at once.
   */
  setToken(token: string): void {
    this.#connection.setToken(token);
  }

  /** Resolves when a connection is open (at once if one is); rejects if it stops first. */
  whenOpen(): Promise<void> {
    return this.#connection.whenOpen();
  }

  /** Close for good (until connect() again): pending requests reject, subscriptions stay registered. */
  close(): void {
    this.#connection.close();
  }

  /**
   * Send a request and resolve with the reply (`ping` -> `pong`). Rejects with RequestError
   * when the server refuses it, TimeoutError when no reply comes in time, ConnectionError when
   * the connection drops first. Sent as soon as a connection is open. Subscribe with
   * `subscribe()`, not with a raw `*.subscribe` / `*.unsubscribe` request: only
   * `subscribe()` is renewed after reconnects, and only its `unsubscribe()` ends a renewal.
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
   * What the server holds for this connection now (`subscriptions.list`): each topic, in the
   * order it was subscribed, with its `route`, `symbol` and `params` (narrowed by `route`).
   * Right after a reconnect it lists only what has been renewed so far.
   */
  async listSubscriptions(
    options: RequestOptions = {},
  ): Promise<SubscriptionsListResponsePayload["subscriptions"]> {
    const reply = await this.#connection.request("subscriptions.list", {}, options);
    return reply.payload.subscriptions;
  }

  /**
   * Receive `route`'s updates for `key` (e.g. `"bars"`, `{ symbol: "BTCUSDT", resolution: "1" }`)
   * until the returned subscription is called (or its `unsubscribe()`). Works before
   * `connect()` and across reconnects. For bars, `options.snapshot` asks for the last N bars
   * first (up to 1000), `options.since` for every bar from a time on; for trades,
   * `options.snapshot` asks for the newest N trades (up to 500). They go to
   * `options.onSnapshot` as one array if given, else through `onUpdate` one by one. The
   * subscription has a `state` and `subscribed` / `error` / `unsubscribed` events (`on(...)`).
   */
  subscribe<R extends Route>(
    route: R,
    key: TopicKey<R>,
    onUpdate: (update: UpdateOf<R>) => void,
    options?: SubscribeOptions<R>,
  ): Subscription<R> {
    return this.#subscriptions.subscribe(route, key, onUpdate, options);
  }
}

/** Create a client and start connecting; the same as `new MarketcastClient(url).connect()`. */
export function connect(url: string, options?: ClientOptions): MarketcastClient {
  const client = new MarketcastClient(url, options);
  void client.connect();
  return client;
}
