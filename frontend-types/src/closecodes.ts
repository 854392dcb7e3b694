/**
 * The close-code policy (docs/websocket.md, "Closes"), which the Python client follows too.
 * The table itself is generated from the contract's `x-close-codes` (`generated/codes.ts`):
 *
 * - `never`: the request or the client is wrong; reconnecting would only repeat the close.
 *   The client stops (state `failed`) until the application calls `connect()` again.
 * - `immediate`: a planned close (1001, announced by a `notice`; any close after a `notice`
 *   counts as planned): reconnect at once and resume with `since`.
 * - `growing`: "you, or the server, need a pause": full-jitter backoff whose attempt counter
 *   keeps growing across closes until a connection has been stable (its subscriptions renewed
 *   and `stableAfterMs` of uptime); it does not start over when a socket opens.
 * - `backoff`: a lost connection: full-jitter backoff, starting from the bottom after a
 *   connection that opened (unless the close before asked for a pause), and growing while
 *   attempts fail.
 *
 * Codes the table does not list (1006: no close frame, a drop or a refused handshake) are a
 * lost connection.
 */

import { CLOSE_CODES, ERROR_CODE_RETRY, type RetryPolicy } from "./generated/codes.js";

export { CLOSE_CODES, type CloseCodeInfo, type RetryPolicy } from "./generated/codes.js";

/** The policy for `code`. */
export function closePolicy(code: number): RetryPolicy {
  return CLOSE_CODES[code]?.retry ?? "backoff";
}

/** True for error codes that say "not now" rather than "no": the request may be retried. */
export function retryLater(code: string): boolean {
  return (ERROR_CODE_RETRY as Readonly<Record<string, string>>)[code] === "later";
}
