/**
 * Compile-time guarantees of the order book helpers (`src/orderbook.ts`) and the `orderbook`
 * route: type-checked by `tsc --strict` (npm test), never run. Each `@ts-expect-error` line is
 * misuse that must not compile (an unused directive is itself an error, TS2578).
 */

import {
  type BookDepth,
  type BookLevel,
  type BookUpdate,
  bookUpdate,
  type DiffUpdate,
  LevelsBook,
  type LevelsUpdate,
  MarketcastClient,
  OrderBook,
  type OrderbookUpdatePayload,
  type OrderBookState,
  type Route,
  type TopicKey,
} from "../src/index.js";

declare const client: MarketcastClient;
declare const payload: OrderbookUpdatePayload;

// ---- updates narrow by mode ------------------------------------------------------------------

export function describeUpdate(update: BookUpdate): string {
  if (update.mode === "diff") {
    const prev: number | null = update.prev_seq;
    const reset: boolean = update.reset;
    // @ts-expect-error a diff carries no depth (diff mode serves the whole book)
    void update.depth;
    return `${prev ?? "reset"} -> ${update.seq} ${reset}`;
  }
  const depth: number = update.depth;
  // @ts-expect-error a levels update has no prev_seq
  void update.prev_seq;
  // @ts-expect-error nor a reset flag
  void update.reset;
  return `${depth} levels at ${update.seq}`;
}

export const narrowed: BookUpdate = bookUpdate(payload);
export const level: BookLevel = [91288.5, 0.412];
// @ts-expect-error a level is [price, quantity], numbers
export const stringLevel: BookLevel = ["91288.5", "0.412"];
// @ts-expect-error a level is exactly two numbers
export const longLevel: BookLevel = [1, 2, 3];

export function levelsAreReadOnly(update: LevelsUpdate, diff: DiffUpdate): void {
  // @ts-expect-error levels as received are read-only
  update.bids.push([1, 1]);
  const best = diff.bids[0];
  // @ts-expect-error and so is each level
  if (best !== undefined) best[1] = 0;
}

// ---- the route through the client ------------------------------------------------------------

export const orderbookRoute: Route = "orderbook";
export const diffKey: TopicKey<"orderbook"> = { symbol: "BTCUSDT", mode: "diff" };
export const levelsKey: TopicKey<"orderbook"> = { symbol: "BTCUSDT", mode: "levels", depth: 10 };
// @ts-expect-error no such mode
export const ladderKey: TopicKey<"orderbook"> = { symbol: "BTCUSDT", mode: "ladder" };
// @ts-expect-error depths are 5, 10, 20 or 50
export const oddDepth: TopicKey<"orderbook"> = { symbol: "BTCUSDT", depth: 7 };

client.subscribe(
  "orderbook",
  { symbol: "BTCUSDT", mode: "diff" },
  (update) => {
    const seq: number = update.seq;
    const prev: number | null | undefined = update.prev_seq;
    void [seq, prev];
  },
  {
    onSubscribed: (event) => {
      // The reply's book, on every (re)subscribe: levels untyped on the wire, checked by the helpers.
      const seq: number | undefined = event.book?.seq;
      void seq;
    },
  },
);
// @ts-expect-error order books have no snapshot option: the reply always carries the book
client.subscribe("orderbook", { symbol: "BTCUSDT", mode: "diff" }, () => {}, { snapshot: 10 });
// @ts-expect-error an order book update has no close
client.subscribe("orderbook", { symbol: "BTCUSDT" }, (update) => update.close);

export async function orderbookRequests(): Promise<void> {
  const reply = await client.request("orderbook.subscribe", {
    symbol: "BTCUSDT",
    params: { mode: "levels", depth: 5 },
  });
  const type: "orderbook.subscribe.response" = reply.type;
  void [type, reply.payload.book?.bids];
  // @ts-expect-error no such mode in a request
  await client.request("orderbook.subscribe", { symbol: "BTCUSDT", params: { mode: "full" } });
}

// ---- OrderBook and LevelsBook ----------------------------------------------------------------

export const book = new OrderBook(client, "BTCUSDT", {
  onChange: (change) => {
    const kind: "diff" | "reset" = change.kind;
    const bids: readonly BookLevel[] = change.bids;
    void [kind, bids];
  },
  onGap: (gap) => void [gap.heldSeq, gap.prevSeq, gap.seq, gap.attempt, gap.willResync],
  onReset: (reset) => {
    const reason: "subscribed" | "resynced" | "reconnected" | "upstream" = reset.reason;
    void reason;
  },
  onError: (error) => void [error.code === "too_many_gaps", error.willRetry],
  maxResyncs: 3,
});
export const best: BookLevel | undefined = book.bids(1)[0];
export const seq: number | undefined = book.seq;
export const state: OrderBookState = book.state;
book.on("gap", (gap) => void gap.delayMs);
// @ts-expect-error no such event
book.on("trade", () => {});
// @ts-expect-error a gap event has no book levels
book.on("gap", (gap) => gap.bids);
// @ts-expect-error OrderBook is diff mode: it takes no depth
new OrderBook(client, "BTCUSDT", { depth: 10 });
// @ts-expect-error a symbol is needed
new OrderBook(client);

export const ladder = new LevelsBook(client, "ETHUSDT", {
  depth: 10,
  onChange: (levels) => void [levels.seq, levels.bids.length, levels.asks[0]?.[0]],
});
export const depth: BookDepth = ladder.depth;
// @ts-expect-error depths are 5, 10, 20 or 50
new LevelsBook(client, "ETHUSDT", { depth: 15 });
// @ts-expect-error a levels book has no gaps to report
ladder.on("gap", () => {});
// @ts-expect-error seq is read-only state of the book
book.seq = 3;
