/**
 * One logical connection to marketcast, made of successive sockets: it reconnects by itself
 * following the close-code policy (`closecodes.ts`), pings to find dead sockets, offers the
 * token as a subprotocol, and matches replies to requests by `id`.
 *
 * Why reconnect with full jitter: when a server restarts, every client notices at once; random
 * delays spread them out. Why the attempt counter survives an open socket: a server that
 * accepts and then closes (full, draining, shedding a slow consumer) would otherwise be
 * retried every few hundred ms for ever; the counter starts over only once a connection has
 * been stable (its subscriptions renewed and `stableAfterMs` of uptime), when the close was one
 * that asks for a pause (1008, 1013, 4008). Why an
 * application-level ping: browsers cannot send or see protocol pings, and a dead TCP
 * connection can look open for minutes. What the connection does not know about is
 * subscriptions: its owner renews them in `onOpened`.
 */

import { type BackoffOptions, checkBackoff, DEFAULT_BACKOFF, fullJitterDelay } from "./backoff.js";
import { closePolicy } from "./closecodes.js";
import {
  ClosedByServerError,
  ConnectionError,
  HandshakeError,
  MarketcastError,
  ProtocolViolation,
  RequestError,
  TimeoutError,
  UnauthorizedError,
} from "./errors.js";
import type { NoticeMessage, NoticePayload, ServerMessage } from "./generated/messages.js";
import {
  DEFAULT_TIMERS,
  resolveWebSocket,
  type Timers,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./platform.js";
import {
  type ClientOptions,
  type DisconnectedEvent,
  nonNegative,
  positive,
  type RequestOptions,
} from "./options.js";
import type { ClientMessageType, ReplyMessage, RequestPayload } from "./protocol.js";

/**
 * `connecting`: the first connection is being made (retried until it works);
 * `open`: connected, subscriptions renewed; `reconnecting`: the connection was lost and is
 * being re-made; `failed`: the client stopped retrying (an unauthorized handshake, a close
 * code that says retrying cannot help, a URL no WebSocket accepts) until `connect()` or
 * `setToken()`; `closed`: not started, or `close()` was called.
 */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "failed" | "closed";

/** Every `<route>.update` of the contract, whatever channel families it has. */
export type UpdateMessage = Extract<ServerMessage, { type: `${string}.update` }>;

function isUpdate(message: ServerMessage): message is UpdateMessage {
  return message.type.endsWith(".update");
}

/** The subprotocol of this API; the token travels next to it as `token.<T>`. */
export const SUBPROTOCOL = "marketcast.v1";

/** Handshake failures in a row from which each one is reported through `onError`. */
const REPORT_HANDSHAKE_FAILURES_FROM = 3;

/** What the owner of a connection is told about. */
export interface ConnectionEvents {
  /**
   * A socket opened and queued requests went out: renew subscriptions now. The promise
   * settles once every renewal was answered; only then is the connection `open`.
   */
  onOpened(): Promise<unknown>;
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
  readonly #backoff: BackoffOptions;
  readonly #pingIntervalMs: number;
  readonly #pingTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #requestTimeoutMs: number;
  readonly #stableAfterMs: number;
  readonly #random: () => number;
  readonly #timers: Timers;
  readonly #reportError: (error: MarketcastError) => void;
  readonly #onNotice: (notice: NoticePayload) => void;
  #getToken: (() => string | Promise<string>) | undefined;
  #token: string | undefined;

  #state: ConnectionState = "closed";
  /** connect() was called and neither close() nor a stop came since: keep (re)connecting. */
  #started = false;
  /** Some socket was open once: later losses are "reconnecting", not "connecting". */
  #wasOpen = false;
  #socket: WebSocketLike | undefined;
  /** Counts connection attempts; work scheduled for one attempt checks it is still current. */
  #generation = 0;
  /** True between a socket's open and its loss; requests are sent only then. */
  #connected = false;
  /** The current socket's handshake failed with a 403, as far as the platform shows it. */
  #refused = false;
  /** Attempts since the last stable connection, for the backoff. */
  #attempt = 0;
  /** Handshakes failed in a row. */
  #handshakeFailures = 0;
  /** What the current socket still lacks to count as stable. */
  #unstable = { renewed: false, uptime: false };
  /** The current (or just closed) socket became stable. */
  #stable = false;
  /** The last close asked for a pause (1008, 1013, 4008): the counter keeps growing. */
  #penalised = false;
  /** The server announced the current socket's close with a `notice`. */
  #noticed = false;
  /** Why the client stopped (state `failed`), for whenOpen(). */
  #failure: ConnectionError | undefined;
  #retryTimer: unknown;
  #connectTimer: unknown;
  #pingTimer: unknown;
  #stableTimer: unknown;
  #nextId = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #stateListeners = new Set<(state: ConnectionState) => void>();
  readonly #disconnectListeners = new Set<(event: DisconnectedEvent) => void>();
  readonly #openWaiters = new Set<{
    resolve: () => void;
    reject: (error: ConnectionError) => void;
  }>();

  constructor(url: string, options: ClientOptions, events: ConnectionEvents) {
    this.#url = url;
    this.#events = events;
    this.#WebSocket = resolveWebSocket(options.WebSocket);
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    checkBackoff(this.#backoff);
    this.#pingIntervalMs = nonNegative("pingIntervalMs", options.pingIntervalMs ?? 15_000);
    this.#pingTimeoutMs = positive("pingTimeoutMs", options.pingTimeoutMs ?? 5_000);
    this.#connectTimeoutMs = positive("connectTimeoutMs", options.connectTimeoutMs ?? 10_000);
    this.#requestTimeoutMs = positive("requestTimeoutMs", options.requestTimeoutMs ?? 10_000);
    this.#stableAfterMs = nonNegative("stableAfterMs", options.stableAfterMs ?? 30_000);
    this.#random = options.random ?? Math.random;
    this.#timers = options.timers ?? DEFAULT_TIMERS;
    this.#reportError = options.onError ?? noop;
    this.#onNotice = options.onNotice ?? noop;
    this.#getToken = options.getToken;
    this.#token = options.token;
    if (options.onDisconnected !== undefined)
      this.#disconnectListeners.add(options.onDisconnected);
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

  onDisconnected(listener: (event: DisconnectedEvent) => void): () => void {
    this.#disconnectListeners.add(listener);
    return () => this.#disconnectListeners.delete(listener);
  }

  connect(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      this.#failure = undefined;
      this.#open();
    }
    return this.whenOpen();
  }

  /**
   * Use `token` from the next attempt on (instead of `getToken()` too); reconnects at once
   * when the client had stopped.
   */
  setToken(token: string): void {
    this.#token = token;
    this.#getToken = undefined;
    if (this.#state === "failed") void this.connect();
  }

  whenOpen(): Promise<void> {
    if (this.#state === "open") return Promise.resolve();
    if (this.#state === "failed" && this.#failure !== undefined)
      return quiet(Promise.reject(this.#failure));
    if (!this.#started)
      return quiet(Promise.reject(new ConnectionError("client is not connecting: call connect()")));
    return quiet(new Promise((resolve, reject) => this.#openWaiters.add({ resolve, reject })));
  }

  close(): void {
    const socket = this.#socket;
    const wasConnected = this.#connected;
    if (socket !== undefined) this.#detach(socket, 1000, "client closed");
    this.#stop(new ConnectionError("client closed"), "closed");
    if (socket !== undefined)
      this.#disconnected({
        code: 1000,
        reason: "client closed",
        willRetry: false,
        delayMs: undefined,
        wasOpen: wasConnected,
      });
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
      const timer = this.#timers.setTimeout(() => {
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
      this.#timers.setTimeout(() => {
        throw error;
      }, 0);
    }
  }

  /** Report an error no caller awaits (the `onError` option). */
  report(error: MarketcastError): void {
    this.call(this.#reportError, error);
  }

  /** Run `callback` after `ms` on the injected timers. */
  after(ms: number, callback: () => void): unknown {
    return this.#timers.setTimeout(callback, ms);
  }

  cancel(handle: unknown): void {
    this.#timers.clearTimeout(handle);
  }

  /** A full-jitter delay for retry number `attempt` (0 first), from the client's backoff. */
  backoffDelay(attempt: number): number {
    return fullJitterDelay(attempt, this.#backoff, this.#random);
  }

  /** Drop socket `generation` (when still current) and reconnect, as for a dead socket. */
  recycle(generation: number, reason: string): void {
    const socket = this.#socket;
    if (socket !== undefined && this.#connected && generation === this.#generation)
      this.#abandon(socket, reason);
  }

  // -- sockets --------------------------------------------------------------------------------

  #open(): void {
    this.#retryTimer = undefined;
    this.#setState(this.#wasOpen ? "reconnecting" : "connecting");
    const generation = ++this.#generation;
    let token: string | Promise<string> | undefined;
    try {
      token = this.#getToken !== undefined ? this.#getToken() : this.#token;
    } catch (error) {
      token = Promise.reject(error);
    }
    if (typeof token === "object") {
      token.then(
        (value) => {
          if (this.#started && generation === this.#generation) this.#openSocket(value);
        },
        (error: unknown) => {
          if (!this.#started || generation !== this.#generation) return;
          this.report(new ConnectionError(`getToken() failed: ${String(error)}`));
          this.#retryLater({ code: 1006, reason: "no token", wasOpen: false }, "backoff");
        },
      );
    } else {
      this.#openSocket(token);
    }
  }

  #openSocket(token: string | undefined): void {
    const protocols = token === undefined ? [SUBPROTOCOL] : [SUBPROTOCOL, `token.${token}`];
    let socket: WebSocketLike;
    try {
      socket = new this.#WebSocket(this.#url, protocols);
    } catch (error) {
      // A URL (or token) no WebSocket accepts: retrying the same one cannot help.
      this.#stop(new ConnectionError(`cannot open ${this.#url}: ${String(error)}`), "failed");
      return;
    }
    this.#socket = socket;
    this.#refused = false;
    socket.onopen = () => this.#onOpen(socket);
    socket.onmessage = (event) => this.#onMessage(socket, event.data);
    socket.onclose = (event) => {
      if (socket === this.#socket) this.#onClose(event.code, event.reason);
    };
    // The close event that follows an error is what the connection acts on; the error only
    // tells a refused handshake apart where the platform shows the status (the `ws` package
    // does: "Unexpected server response: 403"; browsers do not).
    socket.onerror = (event) => {
      if (socket === this.#socket && !this.#connected && mentions403(event)) this.#refused = true;
    };
    this.#connectTimer = this.#timers.setTimeout(() => {
      if (socket === this.#socket && !this.#connected) this.#abandon(socket, "connect timeout");
    }, this.#connectTimeoutMs);
  }

  #onOpen(socket: WebSocketLike): void {
    if (socket !== this.#socket) return;
    this.#timers.clearTimeout(this.#connectTimer);
    this.#connected = true;
    this.#wasOpen = true;
    this.#handshakeFailures = 0;
    const generation = this.#generation;
    this.#unstable = { renewed: false, uptime: false };
    this.#stable = false;
    this.#noticed = false;
    this.#stableTimer = this.#timers.setTimeout(() => {
      if (generation !== this.#generation) return;
      this.#unstable.uptime = true;
      this.#checkStable();
    }, this.#stableAfterMs);
    for (const pending of this.#pending.values()) if (!pending.sent) this.#send(pending);
    this.#schedulePing(socket);
    this.#events.onOpened().then(
      () => {
        if (generation !== this.#generation || !this.#connected) return;
        this.#unstable.renewed = true;
        this.#checkStable();
        this.#setState("open");
        for (const waiter of this.#openWaiters) waiter.resolve();
        this.#openWaiters.clear();
      },
      (error: unknown) => {
        if (error instanceof MarketcastError) this.report(error);
      },
    );
  }

  #checkStable(): void {
    if (this.#unstable.renewed && this.#unstable.uptime) this.#stable = true;
  }

  #onClose(code: number, reason: string): void {
    const wasOpen = this.#connected;
    this.#lost(`closed by the server (${code}${reason ? ` ${reason}` : ""})`);
    if (!wasOpen) {
      this.#handshakeFailed(code, reason);
      return;
    }
    this.#afterClose(code, reason);
  }

  /**
   * An open socket closed with `code`: the policy of `closecodes.ts`, the same as the Python
   * client's. The attempt counter starts over unless the close before asked for a pause and
   * this connection did not become stable since; a planned close (1001, or any close after a
   * `notice`) reconnects at once.
   */
  #afterClose(code: number, reason: string): void {
    const closed = { code, reason, wasOpen: true };
    const policy = closePolicy(code);
    if (policy === "never") {
      this.#stop(new ClosedByServerError(code, reason), "failed", closed);
      return;
    }
    if (!this.#penalised || this.#stable) this.#attempt = 0;
    const planned = policy === "immediate" || this.#noticed;
    this.#penalised = !planned && policy === "growing";
    this.#retryLater(closed, planned ? "immediate" : policy);
  }

  #handshakeFailed(code: number, reason: string): void {
    if (this.#refused) {
      this.#stop(
        new UnauthorizedError(
          "the server refused the handshake (HTTP 403): the token is missing, unknown or " +
            "expired; supply a new one with setToken()",
        ),
        "failed",
        { code, reason, wasOpen: false },
      );
      return;
    }
    this.#handshakeFailures += 1;
    if (this.#handshakeFailures >= REPORT_HANDSHAKE_FAILURES_FROM) {
      this.report(
        new HandshakeError(
          `${this.#handshakeFailures} connection attempts to ${this.#url} failed in a row ` +
            "(server down or unreachable, or the handshake refused: a wrong token or origin)",
          this.#handshakeFailures,
        ),
      );
    }
    this.#retryLater({ code, reason, wasOpen: false }, "backoff");
  }

  /** Give up on `socket` (dead or stuck) and reconnect. */
  #abandon(socket: WebSocketLike, reason: string): void {
    const wasOpen = this.#connected;
    this.#detach(socket, 4000, reason);
    this.#lost(reason);
    if (wasOpen) this.#afterClose(1006, reason);
    else this.#handshakeFailed(1006, reason);
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
    this.#timers.clearTimeout(this.#connectTimer);
    this.#timers.clearTimeout(this.#pingTimer);
    this.#timers.clearTimeout(this.#stableTimer);
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

  /**
   * Stop (re)connecting: `close()` (state `closed`) or a close that retrying cannot fix
   * (state `failed`, reported through `onError`). Requests fail; subscriptions stay.
   */
  #stop(
    error: ConnectionError,
    state: "closed" | "failed",
    closed?: { code: number; reason: string; wasOpen: boolean },
  ): void {
    this.#started = false;
    this.#failure = state === "failed" ? error : undefined;
    this.#attempt = 0;
    this.#penalised = false;
    this.#handshakeFailures = 0;
    this.#generation += 1; // anything still scheduled for the last attempt is void
    this.#lost(error.message);
    for (const pending of this.#pending.values()) this.#fail(pending, error);
    this.#pending.clear();
    this.#timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#setState(state);
    for (const waiter of this.#openWaiters) waiter.reject(error);
    this.#openWaiters.clear();
    if (state === "failed") this.report(error);
    if (closed !== undefined)
      this.#disconnected({ ...closed, willRetry: false, delayMs: undefined });
  }

  #retryLater(
    closed: { code: number; reason: string; wasOpen: boolean },
    policy: "immediate" | "growing" | "backoff",
  ): void {
    if (!this.#started) return;
    this.#setState(this.#wasOpen ? "reconnecting" : "connecting");
    let delay = 0;
    if (policy !== "immediate") {
      delay = fullJitterDelay(this.#attempt, this.#backoff, this.#random);
      this.#attempt += 1;
    }
    this.#disconnected({ ...closed, willRetry: true, delayMs: delay });
    if (!this.#started) return; // a listener called close()
    this.#timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = this.#timers.setTimeout(() => this.#open(), delay);
  }

  #disconnected(event: DisconnectedEvent): void {
    for (const listener of [...this.#disconnectListeners]) this.call(listener, event);
  }

  #schedulePing(socket: WebSocketLike): void {
    if (this.#pingIntervalMs === 0) return;
    this.#pingTimer = this.#timers.setTimeout(() => {
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
    this.#timers.clearTimeout(pending.timer);
    pending.reject(error);
  }

  #onMessage(socket: WebSocketLike, data: unknown): void {
    if (socket !== this.#socket) return;
    const message = parse(data);
    if (message instanceof ProtocolViolation) {
      this.report(message);
      return;
    }
    if (isUpdate(message)) {
      this.#events.onUpdate(message);
      return;
    }
    switch (message.type) {
      case "notice":
        this.#noticed = true;
        this.call(this.#onNotice, message.payload);
        return;
      default:
        this.#answer(message);
    }
  }

  #answer(message: Exclude<ServerMessage, UpdateMessage | NoticeMessage>): void {
    const pending = typeof message.id === "number" ? this.#pending.get(message.id) : undefined;
    if (pending === undefined || typeof message.id !== "number") {
      if (message.type === "error") this.report(new RequestError(message.payload));
      return;
    }
    this.#pending.delete(message.id);
    this.#timers.clearTimeout(pending.timer);
    if (message.type === "error") pending.reject(new RequestError(message.payload));
    else pending.resolve(message);
  }
}

/** Whether an error event says the handshake got a 403 (where the platform tells at all). */
function mentions403(event: unknown): boolean {
  const texts: unknown[] = [];
  if (typeof event === "object" && event !== null) {
    const { message, error } = event as { message?: unknown; error?: unknown };
    texts.push(message);
    if (typeof error === "object" && error !== null) texts.push((error as Error).message);
  }
  return texts.some((text) => typeof text === "string" && /\b403\b/.test(text));
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
