/**
 * The client's options, and the checks that refuse nonsense values up front: a zero timeout
 * or a negative interval would otherwise surface much later as a spinning or silent client.
 */

import type { BackoffOptions } from "./backoff.js";
import type { NoticePayload } from "./generated/messages.js";
import type { MarketcastError } from "./errors.js";
import type { Timers, WebSocketConstructor } from "./platform.js";

export interface ClientOptions {
  /** The WebSocket class to use; defaults to the platform's global `WebSocket`. */
  readonly WebSocket?: WebSocketConstructor;
  /** Reconnect delays: full jitter over min(capMs, baseMs * 2^attempt). Default 500 / 30000. */
  readonly backoff?: Partial<BackoffOptions>;
  /** Ms between two pings on an open connection; 0 disables pinging. Default 15000. */
  readonly pingIntervalMs?: number;
  /** Ms a ping may wait for its pong before the connection counts as dead. Default 5000. */
  readonly pingTimeoutMs?: number;
  /** Ms an opening handshake may take before it is abandoned and retried. Default 10000. */
  readonly connectTimeoutMs?: number;
  /**
   * Ms a connection must stay up, with its subscriptions renewed, before the reconnect
   * backoff starts over. Until then closes keep growing the delay. Default 30000.
   */
  readonly stableAfterMs?: number;
  /**
   * The token the server expects (`MARKETCAST_AUTH_TOKENS`), offered as the subprotocol
   * `token.<T>` next to `marketcast.v1`. Never put it in the URL.
   */
  readonly token?: string;
  /**
   * Called before every connection attempt for a fresh token (wins over `token`); may be
   * async. A rejection is reported through `onError` and the attempt is retried with backoff.
   */
  readonly getToken?: () => string | Promise<string>;
  /** Ms a request waits for its reply (including any wait for a connection). Default 10000. */
  readonly requestTimeoutMs?: number;
  /** Uniform random numbers in [0, 1) for the backoff; defaults to Math.random. */
  readonly random?: () => number;
  /** Timer functions; defaults to the platform's setTimeout/clearTimeout. */
  readonly timers?: Timers;
  /**
   * Errors no caller awaits: `error` frames that answer nothing, frames that are not
   * marketcast messages, a renewed subscription that failed. Defaults to ignoring them.
   */
  readonly onError?: (error: MarketcastError) => void;
  /**
   * The server announced that it will close this connection soon (draining, or the
   * connection's maximum lifetime). Nothing to do: the client reconnects and resumes by
   * itself when the close comes; this is for logs and banners.
   */
  readonly onNotice?: (notice: NoticePayload) => void;
  /** Every socket that closed or failed to open; the same as `client.onDisconnected`. */
  readonly onDisconnected?: (event: DisconnectedEvent) => void;
}

/** A socket closed (or its handshake failed), and what the client does about it. */
export interface DisconnectedEvent {
  /** The close code; 1006 when there was no close frame (a drop or a refused handshake). */
  readonly code: number;
  readonly reason: string;
  /** False when the client stopped: `close()`, 4404/1009/1007, or an unauthorized handshake. */
  readonly willRetry: boolean;
  /** Ms until the next attempt when `willRetry`. */
  readonly delayMs: number | undefined;
  /** False when the socket never opened (the handshake failed). */
  readonly wasOpen: boolean;
}

export interface RequestOptions {
  /** Overrides the client's `requestTimeoutMs` for this request. */
  readonly timeoutMs?: number;
}

export function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0))
    throw new RangeError(`${name} must be a positive number of ms, got ${value}`);
  return value;
}

export function nonNegative(name: string, value: number): number {
  if (!(Number.isFinite(value) && value >= 0))
    throw new RangeError(`${name} must be 0 or a positive number of ms, got ${value}`);
  return value;
}
