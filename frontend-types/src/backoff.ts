/**
 * Reconnect delays: "full jitter" exponential backoff.
 *
 * Why full jitter: when a server restarts, every client notices at the same moment; a plain
 * exponential delay makes them all come back in synchronized waves. Drawing the delay uniformly
 * from [0, min(cap, base * 2^attempt)) spreads them out while keeping the same expected growth.
 */

export interface BackoffOptions {
  /** The ceiling of the first delay, ms. */
  readonly baseMs: number;
  /** No delay ever exceeds this, ms. */
  readonly capMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ baseMs: 500, capMs: 30_000 });

/**
 * The delay before reconnect attempt number `attempt` (0 for the first retry).
 * `random` returns a number in [0, 1), like `Math.random`; tests inject their own.
 */
export function fullJitterDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number,
): number {
  if (!Number.isInteger(attempt) || attempt < 0) {
    throw new RangeError(`attempt must be a non-negative integer, got ${attempt}`);
  }
  checkBackoff(options);
  // 2 ** attempt overflows to Infinity for huge attempts; min() then yields the cap, as wanted.
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** attempt);
  const draw = random();
  if (!(draw >= 0 && draw < 1)) {
    throw new RangeError(`random() must return a number in [0, 1), got ${draw}`);
  }
  return Math.floor(draw * ceiling);
}

/** Refuse settings that would make reconnecting spin or never happen. */
export function checkBackoff(options: BackoffOptions): void {
  const { baseMs, capMs } = options;
  if (!(Number.isFinite(baseMs) && baseMs > 0)) {
    throw new RangeError(`backoff baseMs must be a positive number of ms, got ${baseMs}`);
  }
  if (!(Number.isFinite(capMs) && capMs >= baseMs)) {
    throw new RangeError(`backoff capMs must be a number >= baseMs (${baseMs}), got ${capMs}`);
  }
}
