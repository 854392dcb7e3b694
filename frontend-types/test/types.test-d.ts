/**
 * Compile-time guarantees: this file is type-checked by `tsc --strict` (npm test) and never run.
 *
 * Each `@ts-expect-error` line is misuse that must not compile. tsc reports an unused directive
 * (TS2578) when the line below it compiles after all, so a clean tsc run proves every expected
 * error occurs. The rest is correct use that must keep compiling.
 */

import {
  type Bar,
  type BarsUpdatePayload,
  type ClientMessage,
  type ErrorCode,
  MarketcastClient,
  type QuotesUpdatePayload,
  RequestError,
  type Resolution,
  type Route,
  type ServerMessage,
  type SnapshotItem,
  type SubscribedEvent,
  type SubscribeOptions,
  type SubscriptionErrorEvent,
  type SubscriptionsListResponsePayload,
  type TopicKey,
  type TradeRecord,
  type TradesSubscribeOptions,
  type TradesUpdatePayload,
} from "../src/index.js";

declare const client: MarketcastClient;
declare const incoming: ServerMessage;

// ---- a listed subscription's params narrow by its route --------------------------------------

export function listedKey(entry: SubscriptionsListResponsePayload["subscriptions"][number]): string {
  if (entry.route === "quotes") {
    // @ts-expect-error a quotes subscription has no resolution
    return entry.params.resolution;
  }
  return entry.route === "bars" ? entry.params.resolution : entry.symbol;
}
export async function listed(): Promise<string[]> {
  return (await client.listSubscriptions()).map((entry) => entry.topic);
}

// ---- the unions are discriminated on `type` ------------------------------------------------

/** Every server message handled; adding a message type to the contract breaks this switch. */
export function describe(message: ServerMessage): string {
  switch (message.type) {
    case "bars.update":
      return `${message.payload.symbol} ${message.payload.resolution} close ${message.payload.close}`;
    case "quotes.update":
      return `${message.payload.symbol} bid ${message.payload.bid} ask ${message.payload.ask}`;
    case "bars.subscribe.response":
      return `${message.payload.topic}: ${message.payload.bars?.length ?? 0} bars`;
    case "bars.unsubscribe.response":
    case "quotes.subscribe.response":
    case "quotes.unsubscribe.response":
      return message.payload.message;
    case "trades.subscribe.response":
      return String(message.payload.trades?.length ?? 0);
    case "trades.unsubscribe.response":
      return message.payload.topic;
    case "trades.update": {
      const side: "buy" | "sell" = message.payload.side;
      return `${message.payload.id} ${side}`;
    }
    case "orderbook.subscribe.response":
      return `${message.payload.topic}: seq ${message.payload.book?.seq ?? "not joined yet"}`;
    case "orderbook.unsubscribe.response":
      return message.payload.topic;
    case "orderbook.update":
      return `${message.payload.mode} ${message.payload.seq}`;
    case "pong":
      return String(message.payload.time);
    case "subscriptions.list.response":
      return message.payload.subscriptions
        .map((entry) => (entry.route === "bars" ? entry.params.resolution : entry.symbol))
        .join(",");
    case "notice":
      return `closing in ${message.payload.close_in_ms} ms with ${message.payload.close_code}`;
    case "error": {
      const code: ErrorCode = message.payload.code;
      return code;
    }
    default: {
      const unreachable: never = message;
      return unreachable;
    }
  }
}

export function clientTypes(message: ClientMessage): string {
  switch (message.type) {
    case "bars.subscribe":
    case "bars.unsubscribe":
      return message.payload.params.resolution;
    case "quotes.subscribe":
    case "quotes.unsubscribe":
      return message.payload.symbol;
    case "trades.subscribe":
      return String(message.payload.snapshot ?? 0);
    case "trades.unsubscribe":
      return message.payload.symbol;
    case "orderbook.subscribe":
    case "orderbook.unsubscribe":
      return message.payload.params?.mode ?? "levels";
    case "ping":
      return "ping";
    case "subscriptions.list":
      return "list";
    default: {
      const unreachable: never = message;
      return unreachable;
    }
  }
}

if (incoming.type === "bars.update") {
  const closed: boolean = incoming.payload.closed;
  // @ts-expect-error narrowed to a candle: it has no bid
  void incoming.payload.bid;
  void closed;
}

// @ts-expect-error a type the contract does not have
export const unknownType: ServerMessage = { type: "bars.explode", payload: {} };

export const mixedUp: ServerMessage = {
  type: "bars.update",
  // @ts-expect-error a quote payload in a candle envelope
  payload: { topic: "t", symbol: "X", time: 1, bid: 1, ask: 2, last: 1 },
};

export const updatesCarryNoId: ServerMessage = {
  type: "quotes.update",
  payload: { topic: "t", symbol: "X", time: 1, bid: 1, ask: 2, last: 1 },
  // @ts-expect-error pushed updates never carry a request id
  id: 3,
};

// ---- resolutions and topic keys ------------------------------------------------------------

export const minute: Resolution = "1";
// @ts-expect-error "7" is no TradingView resolution the contract lists
export const seven: Resolution = "7";

export const routes: Route[] = ["bars", "quotes", "trades"];
// @ts-expect-error no such route
export const ticks: Route = "ticks";

export const barsKey: TopicKey<"bars"> = { symbol: "BTCUSDT", resolution: "D" };
export const quotesKey: TopicKey<"quotes"> = { symbol: "EUR/USD" };

// ---- the client ----------------------------------------------------------------------------

export const stopBars = client.subscribe("bars", { symbol: "BTCUSDT", resolution: "1" }, (bar) => {
  const update: BarsUpdatePayload = bar;
  void update.closed;
});
export const stopQuotes = client.subscribe("quotes", { symbol: "EUR/USD" }, (quote) => {
  const update: QuotesUpdatePayload = quote;
  void update.change_percent;
});
client.subscribe("bars", { symbol: "ETHUSDT", resolution: "5" }, () => {}, {
  snapshot: 100,
  onSnapshot: (bars: Bar[]) => void bars.length,
  onError: (event: SubscriptionErrorEvent) => {
    const code: ErrorCode | "timeout" = event.code;
    void code;
  },
});

// @ts-expect-error wrong resolution
client.subscribe("bars", { symbol: "BTCUSDT", resolution: "7" }, () => {});
// @ts-expect-error candles need a resolution
client.subscribe("bars", { symbol: "BTCUSDT" }, () => {});
// @ts-expect-error wrong field: bars have no depth parameter
client.subscribe("bars", { symbol: "BTCUSDT", resolution: "1", depth: 5 }, () => {});
// @ts-expect-error wrong field: quotes take no resolution
client.subscribe("quotes", { symbol: "BTCUSDT", resolution: "1" }, () => {});
// @ts-expect-error unknown route
client.subscribe("ticks", { symbol: "BTCUSDT" }, () => {});
// @ts-expect-error snapshots exist for candles and trades, not for quotes
client.subscribe("quotes", { symbol: "BTCUSDT" }, () => {}, { snapshot: 10 });
// @ts-expect-error nor does onSnapshot
client.subscribe("quotes", { symbol: "BTCUSDT" }, () => {}, { onSnapshot: () => {} });
// @ts-expect-error the callback gets quotes, which have no close
client.subscribe("quotes", { symbol: "BTCUSDT" }, (quote) => quote.close);
// @ts-expect-error the callback gets candles, which have no bid
client.subscribe("bars", { symbol: "BTCUSDT", resolution: "1" }, (bar) => bar.bid);

export async function requests(): Promise<void> {
  const reply = await client.request("bars.subscribe", {
    symbol: "BTCUSDT",
    params: { resolution: "1" },
    snapshot: 10,
  });
  const type: "bars.subscribe.response" = reply.type;
  const bars: Bar[] | null | undefined = reply.payload.bars;
  void type;
  void bars;
  const pong = await client.ping();
  const time: number = pong.payload.time;
  void time;

  // @ts-expect-error wrong message type: the server would answer unknown_type
  await client.request("bars.explode", {});
  // @ts-expect-error server-to-client types cannot be sent
  await client.request("bars.update", {});
  // @ts-expect-error wrong field in a request payload
  await client.request("ping", { symbol: "BTCUSDT" });
  // @ts-expect-error wrong resolution in a request payload
  await client.request("bars.unsubscribe", { symbol: "BTCUSDT", params: { resolution: "7" } });
  // @ts-expect-error the reply to ping is a pong, not a subscribe response
  const wrong: "bars.subscribe.response" = pong.type;
  void wrong;

  try {
    await client.request("quotes.subscribe", { symbol: "NOPE", params: {} });
  } catch (error) {
    if (error instanceof RequestError) {
      const code: ErrorCode = error.code;
      // @ts-expect-error codes are the contract's, not any string
      const other: typeof code = "teapot";
      void other;
    }
  }
}

// ---- trades ----------------------------------------------------------------------------------

export const tradesSubscribe: ClientMessage = {
  type: "trades.subscribe",
  payload: { symbol: "BTCUSDT", params: {}, snapshot: 50 },
};
export const tradesFieldTypo: ClientMessage = {
  type: "trades.subscribe",
  // @ts-expect-error a typo in a trades message: "snapshots"
  payload: { symbol: "BTCUSDT", params: {}, snapshots: 50 },
};
// @ts-expect-error a typo in a trades message type
export const tradesTypeTypo: ClientMessage = { type: "trades.subscibe", payload: { symbol: "X" } };
export const tradeSideTypo: ServerMessage = {
  type: "trades.update",
  // @ts-expect-error a trade's side is "buy" or "sell"
  payload: { topic: "t", symbol: "X", id: 1, time: 1, price: 1, quantity: 1, side: "bid" },
};

export const tradesKey: TopicKey<"trades"> = { symbol: "BTCUSDT" };
export const tradeItem: SnapshotItem<"trades"> = { id: 1, time: 1, price: 1, quantity: 1, side: "buy" };
export const barItem: SnapshotItem<"bars"> = { time: 1, open: 1, high: 1, low: 1, close: 1, volume: 1, closed: true };
// @ts-expect-error quotes have no snapshot: nothing is a SnapshotItem<"quotes">
export const quoteItem: SnapshotItem<"quotes"> = { time: 1 };

// A trades subscription: updates are trades, the snapshot an array of TradeRecord.
export const stopTrades = client.subscribe(
  "trades",
  { symbol: "BTCUSDT" },
  (trade) => {
    const update: TradesUpdatePayload = trade;
    const side: "buy" | "sell" = update.side;
    void [update.id, update.price, update.quantity, side];
  },
  {
    snapshot: 30,
    onSnapshot: (trades) => {
      const records: TradeRecord[] = trades;
      const newest: number | undefined = records.at(-1)?.id;
      void newest;
    },
    onSubscribed: (event: SubscribedEvent) => {
      const missed: TradeRecord[] = event.trades;
      void [missed, event.recovered];
    },
  },
);
export const tradesOptions: SubscribeOptions<"trades"> = { snapshot: 500 } satisfies TradesSubscribeOptions;
// Without onSnapshot the snapshot's trades come through onUpdate, so a snapshot alone is fine.
client.subscribe("trades", { symbol: "ETHUSDT" }, (trade) => void trade.id, { snapshot: 10 });

// @ts-expect-error trades have no since (only candles do)
client.subscribe("trades", { symbol: "BTCUSDT" }, () => {}, { since: 0 });
// @ts-expect-error onSnapshot of trades gets TradeRecord[], not Bar[]
client.subscribe("trades", { symbol: "BTCUSDT" }, () => {}, { onSnapshot: (bars: Bar[]) => bars });
client.subscribe("trades", { symbol: "BTCUSDT" }, () => {}, {
  // @ts-expect-error a trade record has no close
  onSnapshot: (trades) => trades.map((trade) => trade.close),
});
// @ts-expect-error the callback gets trades, which have no bid
client.subscribe("trades", { symbol: "BTCUSDT" }, (trade) => trade.bid);
// @ts-expect-error wrong field: trades take no resolution
client.subscribe("trades", { symbol: "BTCUSDT", resolution: "1" }, () => {});
// @ts-expect-error a typo in the options: "snapshots"
client.subscribe("trades", { symbol: "BTCUSDT" }, () => {}, { snapshots: 10 });
// @ts-expect-error a typo in the route
client.subscribe("trade", { symbol: "BTCUSDT" }, () => {});
// @ts-expect-error a trade's side is "buy" or "sell", not "ask"
client.subscribe("trades", { symbol: "BTCUSDT" }, (trade) => trade.side === "ask");

export async function tradeRequests(): Promise<void> {
  const reply = await client.request("trades.subscribe", { symbol: "BTCUSDT", params: {}, snapshot: 5 });
  const type: "trades.subscribe.response" = reply.type;
  const trades: TradeRecord[] | null | undefined = reply.payload.trades;
  void [type, trades];
  // @ts-expect-error trades take no topic parameters
  await client.request("trades.subscribe", { symbol: "BTCUSDT", params: { resolution: "1" } });
  // @ts-expect-error a typo in a trades request payload: "symbl"
  await client.request("trades.unsubscribe", { symbl: "BTCUSDT", params: {} });
  // @ts-expect-error the reply to trades.subscribe carries no bars
  void reply.payload.bars;
}
