/**
 * The errors the client rejects promises with. They are classes so callers can tell them apart
 * with `instanceof`: a refused request is worth showing to the user, a lost connection is worth
 * retrying, a timeout may be either.
 */

import type { ErrorCode, ErrorPayload } from "./generated/messages.js";

/** Base of every error this package throws or rejects with. */
export class MarketcastError extends Error {
  override name = "MarketcastError";
}

/** The server refused a request with an `error` message; `code` says why. */
export class RequestError extends MarketcastError {
  override name = "RequestError";
  /** The machine-readable reason, stable across releases (see ErrorCode). */
  readonly code: ErrorCode;
  /** The `type` of the refused request, as the server read it. */
  readonly requestType: string | undefined;
  /** The whole `error` payload, as received. */
  readonly payload: ErrorPayload;

  constructor(payload: ErrorPayload) {
    super(`${payload.code}: ${payload.message}`);
    this.code = payload.code;
    this.requestType = payload.request_type ?? undefined;
    this.payload = payload;
  }
}

/** No reply came within the request's timeout; the connection may still be fine. */
export class TimeoutError extends MarketcastError {
  override name = "TimeoutError";
}

/**
 * The connection closed before the reply came (the server may or may not have acted on the
 * request), or the client was closed. Subscriptions are not affected: they are renewed on the
 * next connection by themselves.
 */
export class ConnectionError extends MarketcastError {
  override name = "ConnectionError";
}

/** The server sent something that is not a marketcast message (not JSON, no `type`...). */
export class ProtocolViolation extends MarketcastError {
  override name = "ProtocolViolation";
}

/**
 * The server refused the handshake as unauthorized (HTTP 403: a missing, unknown or expired
 * token). The client stops retrying until the application supplies a new token with
 * `setToken()` (or calls `connect()` again, which asks `getToken()` anew).
 */
export class UnauthorizedError extends ConnectionError {
  override name = "UnauthorizedError";
}

/**
 * Opening handshakes keep failing (`failures` in a row): the server is down, unreachable, or
 * refuses the handshake in a way the platform does not show (browsers hide the HTTP status of
 * a refused WebSocket handshake). The client keeps retrying with backoff.
 */
export class HandshakeError extends ConnectionError {
  override name = "HandshakeError";
  constructor(
    message: string,
    readonly failures: number,
  ) {
    super(message);
  }
}

/**
 * The server closed with a code that says retrying cannot help (4404, 1009, 1007): the client
 * stopped (state `failed`) until the application calls `connect()` again.
 */
export class ClosedByServerError extends ConnectionError {
  override name = "ClosedByServerError";
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`the server closed the connection with ${code}${reason ? ` (${reason})` : ""}: not retried`);
  }
}
