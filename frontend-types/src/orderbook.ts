/**
 * Order books on the `orderbook` route, on top of the client's subscriptions.
 *
 * - `OrderBook` holds a symbol's whole book in `diff` mode: the subscribe reply's book, then
 *   every diff applied in order. Each diff names the `seq` it applies to (`prev_seq`); a diff
 *   that does not continue the `seq` held means one was missed (a gap), and no later diff can
 *   repair that: the helper unsubscribes and subscribes again for a fresh book, at once the
 *   first time, then after full-jitter delays (the client's backoff, `backoff.ts`), and gives
 *   up after `maxResyncs` gaps in a row (state `failed`; `resync()` starts over).
 * - `LevelsBook` shows the best `depth` levels in `levels` mode: each update replaces them.
 * - `DiffBook` is the pure state `OrderBook` keeps (no I/O): feed it a book and diffs by hand.
 *
 * Why a reply's book always replaces the one held: the client renews subscriptions after a
 * reconnect by itself, and the renewal's reply (the `book` of its `subscribed` event) is the
 * book at that instant, continuous with the updates that follow; whatever was held before
 * may have missed diffs while disconnected, and a restarted server numbers a new book anew.
 * A `reset: true` update replaces it as well (the server rejoined its upstream).
 *
 * Why a diff at or below the `seq` held is skipped, not a gap: after a reply (a listener
 * joining a topic already subscribed gets one of its own) diffs already sent before it may
 * still arrive; the reply's book contains them.
 *
 * Prices and quantities are kept as the JSON numbers the server sent (the upstream's
 * decimals): stored, compared and sorted, never computed with.
 */

import { type BackoffOptions, checkBackoff, DEFAULT_BACKOFF, fullJitterDelay } from "./backoff.js";
import type { MarketcastClient } from "./client.js";
import { quiet } from "./connection.js";
import { type MarketcastError, ProtocolViolation } from "./errors.js";
import type {
  BookSnapshot,
  ErrorCode,
  OrderbookParams,
  OrderbookUpdatePayload,
} from "./generated/messages.js";
import { nonNegative } from "./options.js";
import { DEFAULT_TIMERS, type Timers } from "./platform.js";
import type { SubscribedEvent, Subscription, SubscriptionErrorEvent } from "./subscription.js";
import { buildTopic } from "./topics.js";

// ---- wire types, narrowed by mode ------------------------------------------------------------

/** `[price, quantity]`, as the server sent them; in a diff, quantity 0 removes the price. */
export type BookLevel = readonly [price: number, quantity: number];

/** The depths a `levels` subscription may ask for. */
export type BookDepth = NonNullable<OrderbookParams["depth"]>;

/** The depths a `levels` subscription may ask for, smallest first. */
export const BOOK_DEPTHS: readonly BookDepth[] = [5, 10, 20, 50];

/** The fields every `orderbook.update` has, whatever its mode. */
type UpdateFields = Omit<
  OrderbookUpdatePayload,
  "mode" | "bids" | "asks" | "depth" | "prev_seq" | "reset"
>;

/** An update of a `levels` topic: the best `depth` levels of each side, replacing the ones held. */
export interface LevelsUpdate extends UpdateFields {
  readonly mode: "levels";
  /** Levels per side the topic serves (a side may have fewer). */
  readonly depth: number;
  /** Highest price first. */
  readonly bids: readonly BookLevel[];
  /** Lowest price first. */
  readonly asks: readonly BookLevel[];
}

/** An update of a `diff` topic: the levels that changed from `prev_seq` to `seq`, or a reset. */
export interface DiffUpdate extends UpdateFields {
  readonly mode: "diff";
  /** The `seq` this diff applies to; null on a reset. */
  readonly prev_seq: number | null;
  /** True: the whole book again (the server rejoined its upstream); replace the one held. */
  readonly reset: boolean;
  readonly bids: readonly BookLevel[];
  readonly asks: readonly BookLevel[];
}

/** An `orderbook.update`, narrowed by its `mode`. */
export type BookUpdate = LevelsUpdate | DiffUpdate;

/** A book at one `seq`: a subscribe reply's `book`, checked, or a reset update's levels. */
export interface BookLevels {
  readonly seq: number;
  readonly time: number | undefined;
  /** Highest price first. */
  readonly bids: readonly BookLevel[];
  /** Lowest price first. */
  readonly asks: readonly BookLevel[];
}

/**
 * `payload` (an `orderbook.update` as the generated types describe it, levels untyped) checked
 * and narrowed by its mode; throws ProtocolViolation for a frame the contract does not allow.
 */
export function bookUpdate(payload: OrderbookUpdatePayload): BookUpdate {
  const { mode, bids, asks, depth, prev_seq: prevSeq, reset, ...fields } = payload;
  const what = `orderbook.update of ${payload.topic}`;
  if (!isSeq(payload.seq)) throw new ProtocolViolation(`${what}: no valid seq`);
  const sides = { bids: levelsOf(bids, `${what}: bids`), asks: levelsOf(asks, `${what}: asks`) };
  if (mode === "levels") {
    if (typeof depth !== "number") throw new ProtocolViolation(`${what}: levels without depth`);
    return { ...fields, mode, depth, ...sides };
  }
  if (mode !== "diff") throw new ProtocolViolation(`${what}: unknown mode ${String(mode)}`);
  if (reset === true) return { ...fields, mode, prev_seq: null, reset: true, ...sides };
  if (!isSeq(prevSeq)) throw new ProtocolViolation(`${what}: a diff without prev_seq`);
  return { ...fields, mode, prev_seq: prevSeq, reset: false, ...sides };
}

/** A subscribe reply's `book`, checked; throws ProtocolViolation when it is malformed. */
export function bookLevels(book: BookSnapshot): BookLevels {
  if (!isSeq(book.seq)) throw new ProtocolViolation("orderbook book: no valid seq");
  return {
    seq: book.seq,
    time: book.time ?? undefined,
    bids: levelsOf(book.bids, "orderbook book: bids"),
    asks: levelsOf(book.asks, "orderbook book: asks"),
  };
}

function isSeq(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function levelsOf(raw: unknown, what: string): BookLevel[] {
  if (!Array.isArray(raw)) throw new ProtocolViolation(`${what} is not a list`);
  return raw.map((level: unknown, i) => {
    if (!Array.isArray(level) || level.length !== 2)
      throw new ProtocolViolation(`${what}[${i}] is not [price, quantity]`);
    const [price, quantity]: unknown[] = level;
    if (typeof price !== "number" || !Number.isFinite(price) || price < 0)
      throw new ProtocolViolation(`${what}[${i}]: price ${String(price)} is not a number >= 0`);
    if (typeof quantity !== "number" || !Number.isFinite(quantity) || quantity < 0)
      throw new ProtocolViolation(`${what}[${i}]: quantity ${String(quantity)} is not a number >= 0`);
    return [price, quantity] as const;
  });
}

// ---- the pure book ---------------------------------------------------------------------------

/** One side of a book: prices kept sorted best first, quantities by price. */
class Side {
  /** Best first: descending for bids, ascending for asks. */
  readonly #prices: number[] = [];
  readonly #quantities = new Map<number, number>();

  constructor(readonly descending: boolean) {}

  get size(): number {
    return this.#prices.length;
  }

  /** Set `price`'s quantity; 0 removes the price. */
  set(price: number, quantity: number): void {
    if (quantity === 0) {
      if (this.#quantities.delete(price)) this.#prices.splice(this.#find(price), 1);
      return;
    }
    if (!this.#quantities.has(price)) this.#prices.splice(this.#find(price), 0, price);
    this.#quantities.set(price, quantity);
  }

  clear(): void {
    this.#prices.length = 0;
    this.#quantities.clear();
  }

  /** The best `n` levels, best first. */
  top(n: number): BookLevel[] {
    const count = Math.min(Math.max(0, Math.floor(n)), this.#prices.length);
    const levels: BookLevel[] = [];
    for (let i = 0; i < count; i += 1) {
      const price = this.#prices[i] as number;
      levels.push([price, this.#quantities.get(price) as number]);
    }
    return levels;
  }

  /** Where `price` is or goes: the first index whose price does not rank before it. */
  #find(price: number): number {
    let [low, high] = [0, this.#prices.length];
    while (low < high) {
      const middle = (low + high) >>> 1;
      const at = this.#prices[middle] as number;
      const before = this.descending ? at > price : at < price;
      if (before) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}

/**
 * What applying a diff did: `applied`; `reset` (the update carried the whole book, which
 * replaced the one held); `stale` (its `seq` is not above the one held: already in the book,
 * skipped); `gap` (it does not continue the `seq` held, or no book is held: nothing changed,
 * a fresh book is needed).
 */
export type DiffOutcome = "applied" | "reset" | "stale" | "gap";

/** A book held from a snapshot and kept by diffs; pure, no I/O. */
export class DiffBook {
  readonly #bids = new Side(true);
  readonly #asks = new Side(false);
  #seq: number | undefined;
  #time: number | undefined;

  /** The `seq` of the book held; undefined while none is (before a snapshot, after clear()). */
  get seq(): number | undefined {
    return this.#seq;
  }

  /** Upstream time (ms UTC) of the last change held, when the server knows it. */
  get time(): number | undefined {
    return this.#time;
  }

  /** Levels held per side. */
  get size(): { readonly bids: number; readonly asks: number } {
    return { bids: this.#bids.size, asks: this.#asks.size };
  }

  /** Hold `book` instead of whatever was held. */
  replace(book: BookLevels): void {
    this.#bids.clear();
    this.#asks.clear();
    for (const [price, quantity] of book.bids) this.#bids.set(price, quantity);
    for (const [price, quantity] of book.asks) this.#asks.set(price, quantity);
    this.#seq = book.seq;
    this.#time = book.time;
  }

  /** Hold nothing (until the next replace() or reset). */
  clear(): void {
    this.#bids.clear();
    this.#asks.clear();
    this.#seq = undefined;
    this.#time = undefined;
  }

  /** Apply `update` if it continues the book held (see `DiffOutcome`). */
  apply(update: DiffUpdate): DiffOutcome {
    if (update.reset) {
      this.replace(levelsOfReset(update));
      return "reset";
    }
    const held = this.#seq;
    if (held === undefined) return "gap";
    if (update.seq <= held) return "stale";
    if (update.prev_seq !== held) return "gap";
    for (const [price, quantity] of update.bids) this.#bids.set(price, quantity);
    for (const [price, quantity] of update.asks) this.#asks.set(price, quantity);
    this.#seq = update.seq;
    this.#time = update.time ?? this.#time;
    return "applied";
  }

  /** The best `n` bids (all when omitted), highest price first. */
  bids(n = Infinity): BookLevel[] {
    return this.#bids.top(n);
  }

  /** The best `n` asks (all when omitted), lowest price first. */
  asks(n = Infinity): BookLevel[] {
    return this.#asks.top(n);
  }
}

// ---- events ------------------------------------------------------------------------------

/** The book changed. */
export interface BookChangeEvent {
  /** `diff`: the levels below changed; `reset`: the whole book was replaced by them. */
  readonly kind: "diff" | "reset";
  readonly seq: number;
  readonly time: number | undefined;
  /** `diff`: the bids that changed (quantity 0: removed); `reset`: every bid, best first. */
  readonly bids: readonly BookLevel[];
  /** `diff`: the asks that changed (quantity 0: removed); `reset`: every ask, best first. */
  readonly asks: readonly BookLevel[];
}

/**
 * The whole book was replaced: `subscribed` (the first book), `resynced` (the fresh book after
 * a gap, or after `resync()`), `reconnected` (the client renewed the subscription on a new
 * connection), `upstream` (a `reset` update: the server rejoined its upstream).
 */
export interface BookResetEvent {
  readonly reason: "subscribed" | "resynced" | "reconnected" | "upstream";
  readonly seq: number;
}

/** A diff did not continue the book held: one was missed. */
export interface BookGapEvent {
  /** The `seq` held (undefined when no book was). */
  readonly heldSeq: number | undefined;
  /** The diff's `prev_seq`, and its `seq`. */
  readonly prevSeq: number | null;
  readonly seq: number;
  /** Gaps in a row, this one included (since a fresh book stayed continuous `stableAfterMs`). */
  readonly attempt: number;
  /** True: the helper resubscribes in `delayMs`; false: it gave up (state `failed`). */
  readonly willResync: boolean;
  readonly delayMs: number | undefined;
}

/**
 * `code`: the server's, when it refused or failed the subscribe; `timeout`: no reply in time
 * (the client recycles the socket and renews); `too_many_gaps`: `maxResyncs` gaps in a row, the
 * helper stopped; `invalid_book`: a frame the contract does not allow (the helper resyncs).
 */
export interface BookErrorEvent {
  readonly code: ErrorCode | "timeout" | "too_many_gaps" | "invalid_book";
  readonly message: string;
  /** False when the helper stopped (state `failed`): `resync()` starts over. */
  readonly willRetry: boolean;
  readonly error: MarketcastError | undefined;
}

export interface OrderBookEvents {
  change: (event: BookChangeEvent) => void;
  reset: (event: BookResetEvent) => void;
  gap: (event: BookGapEvent) => void;
  error: (event: BookErrorEvent) => void;
}

/**
 * `syncing`: waiting for a book (the first one, a fresh one after a gap, or the renewal after a
 * reconnect; `bids()`/`asks()` show the last book held meanwhile); `live`: the book held is
 * continuous with the stream; `failed`: refused, or too many gaps (`resync()` starts over);
 * `closed`: `close()` was called.
 */
export type OrderBookState = "syncing" | "live" | "failed" | "closed";

export interface OrderBookOptions {
  /** The same as `on("change", ...)`, registered before anything happens. */
  readonly onChange?: OrderBookEvents["change"];
  /** The same as `on("reset", ...)`. */
  readonly onReset?: OrderBookEvents["reset"];
  /** The same as `on("gap", ...)`. */
  readonly onGap?: OrderBookEvents["gap"];
  /**
   * The same as `on("error", ...)`. A subscribe error is forwarded here instead of the
   * client's `onError` while the helper has an error listener.
   */
  readonly onError?: OrderBookEvents["error"];
  /** Gaps in a row the helper resubscribes after before it gives up; default 5. */
  readonly maxResyncs?: number;
  /** Ms a fresh book must stay continuous before gaps count from zero again; default 30000. */
  readonly stableAfterMs?: number;
  /**
   * Delays before the 2nd, 3rd... resubscribe in a row (the first is immediate): full jitter
   * over min(capMs, baseMs * 2^n), the client's defaults (500 / 30000) unless given.
   */
  readonly backoff?: Partial<BackoffOptions>;
  /** Uniform random numbers in [0, 1) for the delays; defaults to Math.random. */
  readonly random?: () => number;
  /** Timer functions; defaults to the platform's setTimeout/clearTimeout. */
  readonly timers?: Timers;
}

/** Diffs kept while a reply is awaited: at most this many (the oldest are dropped first). */
const MAX_PENDING = 1_000;

/** Listeners of each event, called so that one that throws does not stop the others. */
class Emitter<Events extends { [E in keyof Events]: (event: never) => void }> {
  readonly #listeners = new Map<keyof Events, Set<(event: never) => void>>();

  constructor(readonly timers: Timers) {}

  on<E extends keyof Events>(event: E, listener: Events[E]): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, (set = new Set()));
    const added = set;
    added.add(listener);
    return () => void added.delete(listener);
  }

  has(event: keyof Events): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0;
  }

  emit<E extends keyof Events>(event: E, value: Parameters<Events[E]>[0]): void {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        (listener as (value: Parameters<Events[E]>[0]) => void)(value);
      } catch (error) {
        // Like EventTarget: report asynchronously (uncaught), carry on with the next listener.
        this.timers.setTimeout(() => {
          throw error;
        }, 0);
      }
    }
  }
}

/** A promise settled once, at the first book (or the helper's end); never reported unhandled. */
function firstBook(): {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
} {
  let settled = false;
  let resolve: () => void = () => undefined;
  let reject: (error: Error) => void = () => undefined;
  const promise = quiet(
    new Promise<void>((yes, no) => {
      resolve = () => {
        if (!settled) yes();
        settled = true;
      };
      reject = (error) => {
        if (!settled) no(error);
        settled = true;
      };
    }),
  );
  return { promise, resolve, reject };
}

/** The topic of `symbol`'s book in `diff` mode, as the server names it. */
export function diffTopic(symbol: string): string {
  return buildTopic("orderbook", { symbol, mode: "diff" });
}

/** The topic of `symbol`'s best `depth` levels, as the server names it. */
export function levelsTopic(symbol: string, depth: BookDepth): string {
  return buildTopic("orderbook", { symbol, mode: "levels", depth });
}

// ---- OrderBook (diff mode) ---------------------------------------------------------------

/**
 * `symbol`'s whole order book, kept continuous in `diff` mode (see the module comment).
 *
 * ```ts
 * const book = new OrderBook(client, "BTCUSDT", { onChange: () => draw(book.bids(10), book.asks(10)) });
 * await book.ready;
 * book.close();
 * ```
 */
export class OrderBook {
  readonly symbol: string;
  /** `orderbook:{"mode":"diff","symbol":...}` */
  readonly topic: string;
  /** Resolves once the first book is held; rejects if the helper fails or closes first. */
  readonly ready: Promise<void>;

  readonly #client: MarketcastClient;
  readonly #book = new DiffBook();
  readonly #events: Emitter<OrderBookEvents>;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #backoff: BackoffOptions;
  readonly #maxResyncs: number;
  readonly #stableAfterMs: number;
  readonly #settle: { resolve: () => void; reject: (error: Error) => void };

  #subscription: Subscription<"orderbook"> | undefined;
  /** The subscription whose errors are forwarded to this helper's `error` listeners. */
  #forwarding: Subscription<"orderbook"> | undefined;
  /** Counts subscriptions: callbacks of an older one (or after a gap) are ignored. */
  #generation = 0;
  /** The current subscription's reply is awaited: its diffs wait in `#pending`. */
  #awaiting = false;
  readonly #pending: DiffUpdate[] = [];
  /** Why the next book held replaces the last one, when it comes as a reset update. */
  #nextReason: BookResetEvent["reason"] | undefined;
  /** Gaps in a row. */
  #gaps = 0;
  #resyncTimer: unknown;
  #stableTimer: unknown;
  #failed = false;
  #closed = false;

  constructor(client: MarketcastClient, symbol: string, options: OrderBookOptions = {}) {
    if (typeof symbol !== "string" || symbol === "")
      throw new TypeError(`OrderBook needs a non-empty symbol, got ${JSON.stringify(symbol)}`);
    const maxResyncs = options.maxResyncs ?? 5;
    if (!Number.isInteger(maxResyncs) || maxResyncs < 0)
      throw new RangeError(`maxResyncs must be an integer >= 0, got ${maxResyncs}`);
    this.#client = client;
    this.symbol = symbol;
    this.topic = diffTopic(symbol);
    this.#timers = options.timers ?? DEFAULT_TIMERS;
    this.#random = options.random ?? Math.random;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    checkBackoff(this.#backoff);
    this.#maxResyncs = maxResyncs;
    this.#stableAfterMs = nonNegative("stableAfterMs", options.stableAfterMs ?? 30_000);
    this.#events = new Emitter(this.#timers);
    if (options.onChange) this.#events.on("change", options.onChange);
    if (options.onReset) this.#events.on("reset", options.onReset);
    if (options.onGap) this.#events.on("gap", options.onGap);
    if (options.onError) this.#events.on("error", options.onError);
    const settle = firstBook();
    this.ready = settle.promise;
    this.#settle = settle;
    this.#subscribe("subscribed");
  }

  /** The `seq` of the book held; undefined while none is. */
  get seq(): number | undefined {
    return this.#book.seq;
  }

  /** Upstream time (ms UTC) of the last change held, when the server knows it. */
  get time(): number | undefined {
    return this.#book.time;
  }

  get state(): OrderBookState {
    if (this.#closed) return "closed";
    if (this.#failed) return "failed";
    const live =
      this.#book.seq !== undefined &&
      !this.#awaiting &&
      this.#resyncTimer === undefined &&
      this.#subscription?.state === "subscribed";
    return live ? "live" : "syncing";
  }

  /** The best `n` bids (all when omitted), highest price first: `[price, quantity]`. */
  bids(n?: number): BookLevel[] {
    return this.#book.bids(n);
  }

  /** The best `n` asks (all when omitted), lowest price first: `[price, quantity]`. */
  asks(n?: number): BookLevel[] {
    return this.#book.asks(n);
  }

  /** Levels held per side. */
  get size(): { readonly bids: number; readonly asks: number } {
    return this.#book.size;
  }

  /** Call `listener` on every such event; returns a function that stops the calls. */
  on<E extends keyof OrderBookEvents>(event: E, listener: OrderBookEvents[E]): () => void {
    const off = this.#events.on(event, listener);
    if (event === "error") this.#forwardErrors();
    return off;
  }

  /**
   * Unsubscribe and subscribe again for a fresh book now; after `failed`, starts over (gaps
   * count from zero again). Nothing after `close()`.
   */
  resync(): void {
    if (this.#closed) return;
    this.#failed = false;
    this.#gaps = 0;
    this.#drop();
    this.#subscribe("resynced");
  }

  /** Unsubscribe for good; `ready` rejects if no book came yet. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#drop();
    this.#settle.reject(new Error(`the order book of ${this.symbol} was closed`));
  }

  // -- subscribing ---------------------------------------------------------------------------

  #subscribe(reason: BookResetEvent["reason"]): void {
    const generation = ++this.#generation;
    const mine = () => generation === this.#generation;
    this.#awaiting = true;
    this.#pending.length = 0;
    this.#subscription = this.#client.subscribe(
      "orderbook",
      { symbol: this.symbol, mode: "diff" },
      (update) => {
        if (mine()) this.#onUpdate(update);
      },
      {
        onSubscribed: (event) => {
          if (mine()) this.#onSubscribed(event, event.resubscribed ? "reconnected" : reason);
        },
        onUnsubscribed: (event) => {
          if (!mine() || event.reason !== "refused") return;
          this.#failed = true;
          this.#stop();
          this.#settle.reject(event.error ?? new Error(`${this.topic} was refused`));
        },
      },
    );
    this.#forwardErrors();
  }

  /** Forward the current subscription's errors while this helper has error listeners; without
   * any, they go to the client's `onError` as other subscriptions' do. */
  #forwardErrors(): void {
    const subscription = this.#subscription;
    if (subscription === undefined || this.#forwarding === subscription) return;
    if (!this.#events.has("error")) return;
    this.#forwarding = subscription;
    const generation = this.#generation;
    subscription.on("error", (event: SubscriptionErrorEvent) => {
      if (generation !== this.#generation) return;
      const { code, message, willRetry, error } = event;
      this.#events.emit("error", { code, message, willRetry, error });
    });
  }

  /** Stop the current subscription and any scheduled resubscribe. */
  #drop(): void {
    this.#generation += 1; // the old subscription's callbacks are void from now on
    this.#awaiting = false;
    this.#pending.length = 0;
    this.#subscription?.unsubscribe();
    this.#subscription = undefined;
    this.#stop();
  }

  #stop(): void {
    this.#timers.clearTimeout(this.#resyncTimer);
    this.#resyncTimer = undefined;
    this.#timers.clearTimeout(this.#stableTimer);
    this.#stableTimer = undefined;
  }

  // -- books and diffs ---------------------------------------------------------------------

  /** A reply came (the first, after a resync, or the renewal after a reconnect): its book
   * replaces the one held, then the diffs that came before it are applied. */
  #onSubscribed(event: SubscribedEvent, reason: BookResetEvent["reason"]): void {
    this.#awaiting = false;
    const pending = this.#pending.splice(0);
    let book: BookLevels | undefined;
    try {
      book = event.book === undefined || event.book === null ? undefined : bookLevels(event.book);
    } catch (error) {
      this.#invalid(error);
      return;
    }
    if (book === undefined) {
      // Not joined upstream yet: the book comes as a reset update.
      this.#book.clear();
      this.#nextReason = reason;
    } else {
      this.#book.replace(book);
      this.#nextReason = undefined;
      this.#replaced(reason, book);
    }
    const generation = this.#generation;
    for (const update of pending) {
      if (generation !== this.#generation) break; // a gap (or close()) dropped this subscription
      this.#apply(update);
    }
  }

  #onUpdate(payload: OrderbookUpdatePayload): void {
    let update: BookUpdate;
    try {
      update = bookUpdate(payload);
    } catch (error) {
      this.#invalid(error);
      return;
    }
    if (update.mode !== "diff") return; // not this topic's (cannot happen: topics differ)
    if (this.#awaiting) {
      this.#pending.push(update);
      if (this.#pending.length > MAX_PENDING) this.#pending.shift();
      return;
    }
    this.#apply(update);
  }

  #apply(update: DiffUpdate): void {
    const heldSeq = this.#book.seq;
    switch (this.#book.apply(update)) {
      case "stale":
        return;
      case "gap":
        this.#gap({ heldSeq, prevSeq: update.prev_seq, seq: update.seq });
        return;
      case "reset": {
        const reason = this.#nextReason ?? "upstream";
        this.#nextReason = undefined;
        this.#replaced(reason, levelsOfReset(update));
        return;
      }
      case "applied":
        this.#events.emit("change", {
          kind: "diff",
          seq: update.seq,
          time: this.#book.time,
          bids: update.bids,
          asks: update.asks,
        });
    }
  }

  /** The whole book was replaced by `book`. */
  #replaced(reason: BookResetEvent["reason"], book: BookLevels): void {
    this.#settle.resolve();
    // A fresh book that stays continuous this long: the gaps before it are forgotten.
    this.#timers.clearTimeout(this.#stableTimer);
    this.#stableTimer = this.#timers.setTimeout(() => {
      this.#stableTimer = undefined;
      this.#gaps = 0;
    }, this.#stableAfterMs);
    this.#events.emit("reset", { reason, seq: book.seq });
    this.#events.emit("change", {
      kind: "reset",
      seq: book.seq,
      time: book.time,
      bids: this.#book.bids(),
      asks: this.#book.asks(),
    });
  }

  /** A frame the contract does not allow: said, then handled as a gap (a fresh book). */
  #invalid(error: unknown): void {
    const violation =
      error instanceof ProtocolViolation ? error : new ProtocolViolation(String(error));
    this.#events.emit("error", {
      code: "invalid_book",
      message: violation.message,
      willRetry: this.#gaps < this.#maxResyncs,
      error: violation,
    });
    this.#gap({ heldSeq: this.#book.seq, prevSeq: null, seq: this.#book.seq ?? 0 });
  }

  /** A diff was missed: unsubscribe now, subscribe again after a delay (or give up). */
  #gap(at: { heldSeq: number | undefined; prevSeq: number | null; seq: number }): void {
    this.#drop();
    this.#gaps += 1;
    const attempt = this.#gaps;
    if (attempt > this.#maxResyncs) {
      this.#failed = true;
      this.#events.emit("gap", { ...at, attempt, willResync: false, delayMs: undefined });
      const message =
        `${this.topic}: ${attempt} gaps in a row (maxResyncs ${this.#maxResyncs}); ` +
        "stopped: resync() starts over";
      this.#events.emit("error", {
        code: "too_many_gaps",
        message,
        willRetry: false,
        error: undefined,
      });
      this.#settle.reject(new Error(message));
      return;
    }
    // The first resubscribe goes out at once; repeated ones back off as reconnects do.
    const delayMs = attempt === 1 ? 0 : fullJitterDelay(attempt - 2, this.#backoff, this.#random);
    this.#resyncTimer = this.#timers.setTimeout(() => {
      this.#resyncTimer = undefined;
      this.#subscribe("resynced");
    }, delayMs);
    this.#events.emit("gap", { ...at, attempt, willResync: true, delayMs });
  }
}

// ---- LevelsBook (levels mode) ------------------------------------------------------------

/** The levels shown changed. */
export interface LevelsChangeEvent {
  readonly seq: number;
  readonly time: number | undefined;
  /** The best bids, highest price first (at most `depth`). */
  readonly bids: readonly BookLevel[];
  /** The best asks, lowest price first (at most `depth`). */
  readonly asks: readonly BookLevel[];
}

export interface LevelsBookEvents {
  change: (event: LevelsChangeEvent) => void;
  error: (event: BookErrorEvent) => void;
}

export interface LevelsBookOptions {
  /** Levels per side: 5, 10, 20 (the default) or 50. */
  readonly depth?: BookDepth;
  /** The same as `on("change", ...)`, registered before anything happens. */
  readonly onChange?: LevelsBookEvents["change"];
  /** The same as `on("error", ...)`; forwarded instead of reaching the client's `onError`. */
  readonly onError?: LevelsBookEvents["error"];
  /** Timer functions (for reporting a listener's exception); defaults to the platform's. */
  readonly timers?: Timers;
}

/**
 * `symbol`'s best `depth` levels in `levels` mode (for a ladder): the reply's, then each
 * update's, at most every 100 ms (the server's throttle, latest wins). Updates that came
 * before the reply and are older than its book are skipped; after that the newest frame wins.
 */
export class LevelsBook {
  readonly symbol: string;
  readonly depth: BookDepth;
  /** `orderbook:{"depth":...,"mode":"levels","symbol":...}` */
  readonly topic: string;
  /** Resolves once levels are held; rejects if the subscribe is refused or closed first. */
  readonly ready: Promise<void>;

  readonly #subscription: Subscription<"orderbook">;
  readonly #events: Emitter<LevelsBookEvents>;
  readonly #settle: { resolve: () => void; reject: (error: Error) => void };
  #levels: LevelsChangeEvent | undefined;
  /** The reply is awaited; the newest update meanwhile waits here. */
  #awaiting = true;
  #pending: LevelsUpdate | undefined;
  /** The subscription's errors go to this helper's `error` listeners. */
  #forwarded = false;
  #failed = false;
  #closed = false;

  constructor(client: MarketcastClient, symbol: string, options: LevelsBookOptions = {}) {
    const depth = options.depth ?? 20;
    if (!BOOK_DEPTHS.includes(depth))
      throw new RangeError(`depth must be one of ${BOOK_DEPTHS.join(", ")}, got ${depth}`);
    this.symbol = symbol;
    this.depth = depth;
    this.topic = levelsTopic(symbol, depth);
    this.#events = new Emitter(options.timers ?? DEFAULT_TIMERS);
    if (options.onChange) this.#events.on("change", options.onChange);
    if (options.onError) this.#events.on("error", options.onError);
    const settle = firstBook();
    this.ready = settle.promise;
    this.#settle = settle;
    this.#subscription = client.subscribe(
      "orderbook",
      { symbol, mode: "levels", depth },
      (payload) => this.#onUpdate(payload),
      {
        onSubscribed: (event) => this.#onSubscribed(event),
        onUnsubscribed: (event) => {
          if (event.reason !== "refused") return;
          this.#failed = true;
          settle.reject(event.error ?? new Error(`${this.topic} was refused`));
        },
      },
    );
    if (this.#events.has("error")) this.#forwardErrors();
  }

  /** The `seq` of the levels held; undefined while none are. */
  get seq(): number | undefined {
    return this.#levels?.seq;
  }

  get time(): number | undefined {
    return this.#levels?.time;
  }

  /** `syncing` (before the first levels, and while the client reconnects), `live`, `failed`
   * (the subscribe was refused), `closed`. */
  get state(): OrderBookState {
    if (this.#closed) return "closed";
    if (this.#failed) return "failed";
    return this.#levels !== undefined && this.#subscription.state === "subscribed"
      ? "live"
      : "syncing";
  }

  /** The best `n` bids held (all of them, at most `depth`, when omitted), highest first. */
  bids(n = Infinity): BookLevel[] {
    return (this.#levels?.bids ?? []).slice(0, Math.max(0, n));
  }

  /** The best `n` asks held (all of them, at most `depth`, when omitted), lowest first. */
  asks(n = Infinity): BookLevel[] {
    return (this.#levels?.asks ?? []).slice(0, Math.max(0, n));
  }

  on<E extends keyof LevelsBookEvents>(event: E, listener: LevelsBookEvents[E]): () => void {
    const off = this.#events.on(event, listener);
    if (event === "error") this.#forwardErrors();
    return off;
  }

  /** Unsubscribe for good. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscription.unsubscribe();
    this.#settle.reject(new Error(`the levels of ${this.symbol} were closed`));
  }

  #forwardErrors(): void {
    if (this.#forwarded) return;
    this.#forwarded = true;
    this.#subscription.on("error", ({ code, message, willRetry, error }) =>
      this.#events.emit("error", { code, message, willRetry, error }),
    );
  }

  #onSubscribed(event: SubscribedEvent): void {
    this.#awaiting = false;
    const pending = this.#pending;
    this.#pending = undefined;
    // The reply's levels replace whatever was held (after a reconnect, too); none while the
    // server's book is not joined yet: the next update brings them.
    this.#levels = undefined;
    if (event.book !== undefined && event.book !== null) {
      try {
        this.#show(bookLevels(event.book));
      } catch (error) {
        this.#invalid(error);
      }
    }
    // (Read through the getter: the narrowing of #levels above does not see #show() set it.)
    const held = this.seq;
    if (pending !== undefined && (held === undefined || pending.seq > held))
      this.#show(levelsOfUpdate(pending));
  }

  #onUpdate(payload: OrderbookUpdatePayload): void {
    let update: BookUpdate;
    try {
      update = bookUpdate(payload);
    } catch (error) {
      this.#invalid(error);
      return;
    }
    if (update.mode !== "levels") return;
    if (this.#awaiting) this.#pending = update; // latest wins
    else this.#show(levelsOfUpdate(update));
  }

  #show(levels: LevelsChangeEvent): void {
    this.#levels = levels;
    this.#settle.resolve();
    this.#events.emit("change", levels);
  }

  #invalid(error: unknown): void {
    const violation =
      error instanceof ProtocolViolation ? error : new ProtocolViolation(String(error));
    // The next update replaces the levels anyway: nothing to repair.
    this.#events.emit("error", {
      code: "invalid_book",
      message: violation.message,
      willRetry: true,
      error: violation,
    });
  }
}

/** A reset update's book. */
function levelsOfReset(update: DiffUpdate): BookLevels {
  return { seq: update.seq, time: update.time ?? undefined, bids: update.bids, asks: update.asks };
}

function levelsOfUpdate(update: LevelsUpdate): LevelsChangeEvent {
  return { seq: update.seq, time: update.time ?? undefined, bids: update.bids, asks: update.asks };
}
