/**
 * Generated from docs/asyncapi.json by scripts/generate_ws_types.mjs: do not edit.
 * Regenerate with `make generate-ws-types` after the contract changes.
 */

import type { ErrorCode } from "./messages.js";

/**
 * What a client does after a close: `never` retry, reconnect `immediate`ly, `growing`
 * back-off (reset only once a later connection is stable), or plain `backoff`.
 */
export type RetryPolicy = "never" | "immediate" | "growing" | "backoff";

export interface CloseCodeInfo {
  /** What the server means by it. */
  readonly meaning: string;
  /** What the client does next. */
  readonly retry: RetryPolicy;
}

/** Every close code the server sends (`x-close-codes`). */
export const CLOSE_CODES: Readonly<Record<number, CloseCodeInfo>> = Object.freeze({
  1000: {
    meaning: "normal closure",
    retry: "backoff",
  },
  1001: {
    meaning: "going away: the server drains or the connection reached its lifetime",
    retry: "immediate",
  },
  1007: {
    meaning: "a text frame that is not valid UTF-8",
    retry: "never",
  },
  1008: {
    meaning: "the client kept sending over its rate limit",
    retry: "growing",
  },
  1009: {
    meaning: "a client frame larger than the server's limit",
    retry: "never",
  },
  1011: {
    meaning: "a protocol ping was not answered in time",
    retry: "backoff",
  },
  1012: {
    meaning: "the server stopped without draining",
    retry: "backoff",
  },
  1013: {
    meaning: "the worker is at its connection cap, or shutting down",
    retry: "growing",
  },
  4008: {
    meaning: "slow consumer: the client did not read fast enough",
    retry: "growing",
  },
  4404: {
    meaning: "a raw stream that cannot be served to this client",
    retry: "never",
  },
});

/**
 * For each error code, whether the same request may be sent again after a delay
 * (`later`) or not (`never`) (`x-error-codes`).
 */
export const ERROR_CODE_RETRY: Readonly<Record<ErrorCode, "never" | "later">> =
  Object.freeze({
    invalid_json: "never",
    invalid_message: "never",
    unsupported_frame: "never",
    unknown_type: "never",
    validation_error: "never",
    invalid_symbol: "never",
    unknown_symbol: "never",
    unsupported_resolution: "never",
    unsupported_channel: "never",
    too_many_subscriptions: "never",
    invalid_stream: "never",
    rate_limited: "later",
    forbidden: "never",
    unavailable: "later",
    internal_error: "later",
  });
