/**
 * One logical connection to marketcast, made of successive sockets: it reconnects by itself,
 * pings to find dead sockets, and matches replies to requests by `id`.
 *
 * Why reconnect with full jitter: when a server restarts, every client notices at once; random
 * delays spread them out. Why an application-level ping: browsers cannot send or see protocol
 * pings, and a dead TCP connection can look open for minutes. What the connection does not
 * know about is subscriptions: `MarketcastClient` renews them in `onOpened`.
 */

import { type BackoffOptions, checkBackoff, DEFAULT_BACKOFF, fullJitterDelay } from "./backoff.js";
import {
  ConnectionError,
  type MarketcastError,
  ProtocolViolation,
  RequestError,
  TimeoutError,
} from "./errors.js";
import type {
  BarsUpdateMessage,
  NoticeMessage,
  NoticePayload,
  QuotesUpdateMessage,
  ServerMessage,
} from "./generated/messages.js";
import {
  DEFAULT_TIMERS,
  resolveWebSocket,
  type Timers,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./platform.js";
import { type ClientOptions, nonNegative, positive, type RequestOptions } from "./options.js";
import type { ClientMessageType, ReplyMessage, RequestPayload } from "./protocol.js";

/**
 * `connecting`: the first connection is being made (retried until it works);
 * `open`: connected, subscriptions renewed; `reconnecting`: the connection was lost and is
 * being re-made; `closed`: not started, or `close()` was called.
 */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

export type UpdateMessage = BarsUpdateMessage | QuotesUpdateMessage;

/** What the owner of a connection is told about. */
export interface ConnectionEvents {
  /** A socket opened and queued requests went out: renew subscriptions now. */
  onOpened(): void;
  /** The socket was lost (or closed); nothing sent on it will be answered. */
  onLost(): void;
  onUpdate(message: UpdateMessage): void;
}

interface Pending {
  readonly type: ClientMessageType;
  readonly frame: string;
  sent: boolean;
  readonly resolve: (message: ServerMessage) => void;
  readonly reject: (error: MarketcastError) => void;
  readonly timer: unknown;
}

export const noop = (): void => {};

/** A promise whose rejection is not reported as unhandled when the caller ignores it. */
export function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(noop);
  return promise;
}

export class Connection {
  readonly #url: string;
  readonly #events: ConnectionEvents;
  readonly #WebSocket: WebSocketConstructor;
  readonly backoff: BackoffOptions;
  readonly #pingIntervalMs: number;
  readonly #pingTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #requestTimeoutMs: number;
  readonly random: () => number;
  readonly timers: Timers;
  readonly reportError: (error: MarketcastError) => void;
  readonly #onNotice: (notice: NoticePayload) => void;

  #state: ConnectionState = "closed";
  /** connect() was called and close() was not, since: keep (re)connecting. */
  #started = false;
  /** Some socket was open once: later losses are "reconnecting", not "connecting". */
  #wasOpen = false;
  #socket: WebSocketLike | undefined;
  /** Counts opened sockets; work scheduled for one socket checks it is still current. */
  #generation = 0;
  /** True between a socket's open and its loss; requests are sent only then. */
  #connected = false;
  /** Consecutive failed attempts, for the backoff; reset by an open socket. */
  #attempt = 0;
  #retryTimer: unknown;
  #connectTimer: unknown;
  #pingTimer: unknown;
  #nextId = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #stateListeners = new Set<(state: ConnectionState) => void>();
  readonly #openWaiters = new Set<{
    resolve: () => void;
    reject: (error: ConnectionError) => void;
  }>();

  constructor(url: string, options: ClientOptions, events: ConnectionEvents) {
    this.#url = url;
    this.#events = events;
    this.#WebSocket = resolveWebSocket(options.WebSocket);
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    checkBackoff(this.backoff);
    this.#pingIntervalMs = nonNegative("pingIntervalMs", options.pingIntervalMs ?? 15_000);
    this.#pingTimeoutMs = positive("pingTimeoutMs", options.pingTimeoutMs ?? 5_000);
    this.#connectTimeoutMs = positive("connectTimeoutMs", options.connectTimeoutMs ?? 10_000);
    this.#requestTimeoutMs = positive("requestTimeoutMs", options.requestTimeoutMs ?? 10_000);
    this.random = options.random ?? Math.random;
    this.timers = options.timers ?? DEFAULT_TIMERS;
    this.reportError = options.onError ?? noop;
    this.#onNotice = options.onNotice ?? noop;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** True while a socket is open: requests go out at once. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Identifies the current socket; a later socket has a larger number. */
  get generation(): number {
    return this.#generation;
  }

  onStateChange(listener: (state: ConnectionState) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  connect(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      this.#open();
    }
    return this.whenOpen();
  }

  whenOpen(): Promise<void> {
    if (this.#connected) return Promise.resolve();
    if (!this.#started)
      return quiet(Promise.reject(new ConnectionError("client is not connecting: call connect()")));
    return quiet(new Promise((resolve, reject) => this.#openWaiters.add({ resolve, reject })));
  }

  close(): void {
    this.#started = false;
    const socket = this.#socket;
    if (socket !== undefined) this.#detach(socket, 1000, "client closed");
    this.#lost("client closed");
    for (const pending of this.#pending.values())
      this.#fail(pending, new ConnectionError("client closed"));
    this.#pending.clear();
    this.timers.clearTimeout(this.#retryTimer);
    this.#setState("closed");
    for (const waiter of this.#openWaiters) waiter.reject(new ConnectionError("client closed"));
    this.#openWaiters.clear();
  }

  request<T extends ClientMessageType>(
    type: T,
    payload: RequestPayload<T>,
    options: RequestOptions = {},
  ): Promise<ReplyMessage<T>> {
    const timeoutMs = positive("timeoutMs", options.timeoutMs ?? this.#requestTimeoutMs);
    if (!this.#started) {
      return Promise.reject(new ConnectionError(`cannot send ${type}: call connect() first`));
    }
    const id = ++this.#nextId;
    const frame = JSON.stringify({ type, payload, id });
    return new Promise<ReplyMessage<T>>((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        if (this.#pending.delete(id)) {
          reject(new TimeoutError(`no reply to ${type} (id ${id}) within ${timeoutMs} ms`));
        }
      }, timeoutMs);
      const pending: Pending = {
        type,
        frame,
        sent: false,
        resolve: resolve as (message: ServerMessage) => void,
        reject,
        timer,
      };
      this.#pending.set(id, pending);
      if (this.#connected) this.#send(pending);
    });
  }

  /** Run an application callback; its exception is reported, not allowed to stop delivery. */
  call<A>(callback: (arg: A) => void, arg: A): void {
    try {
      callback(arg);
    } catch (error) {
      // Like EventTarget: report asynchronously (uncaught), carry on with the next listener.
      this.timers.setTimeout(() => {
        throw error;
      }, 0);
    }
  }

  // -- sockets --------------------------------------------------------------------------------

  #open(): void {
    this.#retryTimer = undefined;
    this.#setState(this.#wasOpen ? "reconnecting" : "connecting");
    let socket: WebSocketLike;
    try {
      socket = new this.#WebSocket(this.#url);
    } catch (error) {
      this.reportError(new ConnectionError(`cannot open ${this.#url}: ${String(error)}`));
      this.#retryLater();
      return;
    }
    this.#socket = socket;
    socket.onopen = () => this.#onOpen(socket);
    socket.onmessage = (event) => this.#onMessage(socket, event.data);
    socket.onclose = (event) => {
      if (socket !== this.#socket) return;
      this.#lost(`closed by the server (${event.code}${event.reason ? ` ${event.reason}` : ""})`);
      this.#retryLater();
    };
    // The close event that follows an error is what the connection acts on.
    socket.onerror = noop;
    this.#connectTimer = this.timers.setTimeout(() => {
      if (socket === this.#socket && !this.#connected) this.#abandon(socket, "connect timeout");
    }, this.#connectTimeoutMs);
  }

  #onOpen(socket: WebSocketLike): void {
    if (socket !== this.#socket) return;
    this.timers.clearTimeout(this.#connectTimer);
    this.#connected = true;
    this.#wasOpen = true;
    this.#generation += 1;
    this.#attempt = 0;
    for (const pending of this.#pending.values()) if (!pending.sent) this.#send(pending);
    this.#events.onOpened();
    this.#schedulePing(socket);
    this.#setState("open");
    for (const waiter of this.#openWaiters) waiter.resolve();
    this.#openWaiters.clear();
  }

  /** Give up on `socket` (dead or stuck) and reconnect. */
  #abandon(socket: WebSocketLike, reason: string): void {
    this.#detach(socket, 4000, reason);
    this.#lost(reason);
    this.#retryLater();
  }

  /** Stop listening to `socket` and close it; its late events must not reach this client. */
  #detach(socket: WebSocketLike, code: number, reason: string): void {
    socket.onopen = noop;
    socket.onmessage = noop;
    socket.onclose = noop;
    socket.onerror = noop; // some implementations throw on an error event nobody handles
    try {
      socket.close(code, reason);
    } catch {
      // Already closing or closed: nothing left to release.
    }
  }

  /** Forget the current socket: requests sent on it fail, the owner renews later. */
  #lost(reason: string): void {
    const wasConnected = this.#connected;
    this.#socket = undefined;
    this.#connected = false;
    this.timers.clearTimeout(this.#connectTimer);
    this.timers.clearTimeout(this.#pingTimer);
    for (const [id, pending] of this.#pending) {
      if (!pending.sent) continue;
      this.#pending.delete(id);
      this.#fail(
        pending,
        new ConnectionError(`connection lost before the reply to ${pending.type}: ${reason}`),
      );
    }
    if (wasConnected) this.#events.onLost();
  }

  #retryLater(): void {
    if (!this.#started) return;
    this.#setState(this.#wasOpen ? "reconnecting" : "connecting");
    const delay = fullJitterDelay(this.#attempt, this.backoff, this.random);
    this.#attempt += 1;
    this.#retryTimer = this.timers.setTimeout(() => this.#open(), delay);
  }

  #schedulePing(socket: WebSocketLike): void {
    if (this.#pingIntervalMs === 0) return;
    this.#pingTimer = this.timers.setTimeout(() => {
      if (socket !== this.#socket) return;
      this.request("ping", {}, { timeoutMs: this.#pingTimeoutMs }).then(
        () => {
          if (socket === this.#socket) this.#schedulePing(socket);
        },
        (error: unknown) => {
          if (socket === this.#socket && error instanceof TimeoutError)
            this.#abandon(socket, "ping timeout");
        },
      );
    }, this.#pingIntervalMs);
  }

  #setState(state: ConnectionState): void {
    if (state === this.#state) return;
    this.#state = state;
    for (const listener of [...this.#stateListeners]) this.call(listener, state);
  }

  // -- frames ---------------------------------------------------------------------------------

  #send(pending: Pending): void {
    pending.sent = true;
    this.#socket?.send(pending.frame);
  }

  #fail(pending: Pending, error: MarketcastError): void {
    this.timers.clearTimeout(pending.timer);
    pending.reject(error);
  }

  #onMessage(socket: WebSocketLike, data: unknown): void {
    if (socket !== this.#socket) return;
    const message = parse(data);
    if (message instanceof ProtocolViolation) {
      this.reportError(message);
      return;
    }
    switch (message.type) {
      case "bars.update":
      case "quotes.update":
        this.#events.onUpdate(message);
        return;
      case "notice":
        this.call(this.#onNotice, message.payload);
        return;
      default:
        this.#answer(message);
    }
  }

  #answer(message: Exclude<ServerMessage, UpdateMessage | NoticeMessage>): void {
    const pending = typeof message.id === "number" ? this.#pending.get(message.id) : undefined;
    if (pending === undefined || typeof message.id !== "number") {
      if (message.type === "error") this.reportError(new RequestError(message.payload));
      return;
    }
    this.#pending.delete(message.id);
    this.timers.clearTimeout(pending.timer);
    if (message.type === "error") pending.reject(new RequestError(message.payload));
    else pending.resolve(message);
  }
}

/** A server frame as a message, or a ProtocolViolation saying why it is not one. */
function parse(data: unknown): ServerMessage | ProtocolViolation {
  if (typeof data !== "string")
    return new ProtocolViolation("expected a text frame, got binary data");
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return new ProtocolViolation(`expected a JSON frame, got ${JSON.stringify(data.slice(0, 80))}`);
  }
  if (
    typeof value !== "object" ||
    value === null ||
    typeof (value as { type?: unknown }).type !== "string"
  ) {
    return new ProtocolViolation(`expected an object with a string type, got ${data.slice(0, 80)}`);
  }
  // The contract is the server's promise; checking every field here would need a validator
  // (a runtime dependency). The Python and Node tests check the server against the contract.
  return value as ServerMessage;
}
