/**
 * Generated from docs/asyncapi.json by scripts/generate_ws_types.mjs: do not edit.
 * Regenerate with `make generate-ws-types` after the contract changes.
 */

/**
 * Any message on the wire, in either direction.
 */
export type AnyMessage = ServerMessage | ClientMessage;
/**
 * Any message the server sends; `type` tells them apart.
 */
export type ServerMessage =
  | BarsSubscribeResponseMessage
  | BarsUnsubscribeResponseMessage
  | BarsUpdateMessage
  | ErrorMessage
  | NoticeMessage
  | OrderbookSubscribeResponseMessage
  | OrderbookUnsubscribeResponseMessage
  | OrderbookUpdateMessage
  | PongMessage
  | QuotesSubscribeResponseMessage
  | QuotesUnsubscribeResponseMessage
  | QuotesUpdateMessage
  | SubscriptionsListResponseMessage
  | TradesSubscribeResponseMessage
  | TradesUnsubscribeResponseMessage
  | TradesUpdateMessage;
/**
 * The ``code`` of an ``error`` message. Clients switch on these, so they are stable.
 */
export type ErrorCode =
  | "invalid_json"
  | "invalid_message"
  | "unsupported_frame"
  | "unknown_type"
  | "validation_error"
  | "invalid_symbol"
  | "unknown_symbol"
  | "unsupported_resolution"
  | "unsupported_channel"
  | "too_many_subscriptions"
  | "invalid_stream"
  | "rate_limited"
  | "forbidden"
  | "unavailable"
  | "internal_error";
/**
 * Topic parameters of the ``quotes`` route (none today; the object is kept for symmetry).
 */
export type QuotesParams = Record<string, never>;
/**
 * Topic parameters of the ``trades`` route (none: a symbol's trades are one stream).
 */
export type TradesParams = Record<string, never>;
/**
 * Any message the client sends; `type` tells them apart.
 */
export type ClientMessage =
  | BarsSubscribeMessage
  | BarsUnsubscribeMessage
  | OrderbookSubscribeMessage
  | OrderbookUnsubscribeMessage
  | PingMessage
  | QuotesSubscribeMessage
  | QuotesUnsubscribeMessage
  | SubscriptionsListMessage
  | TradesSubscribeMessage
  | TradesUnsubscribeMessage;
/**
 * An application-level ping; browsers cannot see protocol pings, so clients use this.
 */
export type PingPayload = Record<string, never>;
/**
 * List this connection's subscriptions (no fields).
 */
export type SubscriptionsListPayload = Record<string, never>;

/**
 * Reply to bars.subscribe.
 */
export interface BarsSubscribeResponseMessage {
  type: "bars.subscribe.response";
  payload: BarsSubscribeResponsePayload;
  /**
   * The `id` of the `bars.subscribe` request this answers, if it had one.
   */
  id?: string | number;
}
/**
 * Reply to ``bars.subscribe``; ``bars`` holds the snapshot or the bars since ``since``.
 */
export interface BarsSubscribeResponsePayload {
  status: "ok" | "error";
  symbol: string;
  message: string;
  topic: string;
  bars?: Bar[] | null;
  /**
   * Only with `since`: true when `bars` holds every bar since `since` (from the store, filled from the upstream where the store has a hole); false when history does not reach back that far and bars are missing before the first one returned.
   */
  recovered?: boolean | null;
}
/**
 * One candle in a snapshot or history: ``time`` is the bucket's open time, ms UTC.
 */
export interface Bar {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  closed: boolean;
}
/**
 * Reply to bars.unsubscribe.
 */
export interface BarsUnsubscribeResponseMessage {
  type: "bars.unsubscribe.response";
  payload: BarsUnsubscribeResponsePayload;
  /**
   * The `id` of the `bars.unsubscribe` request this answers, if it had one.
   */
  id?: string | number;
}
/**
 * Reply to ``bars.unsubscribe``.
 */
export interface BarsUnsubscribeResponsePayload {
  status: "ok" | "error";
  symbol: string;
  message: string;
  topic: string;
}
/**
 * A candle changed or closed.
 */
export interface BarsUpdateMessage {
  type: "bars.update";
  payload: BarsUpdatePayload;
}
/**
 * A live candle: the open bar changed, or a bar closed (``closed`` = final).
 *
 * It is a ``Bar`` (the same fields as snapshots and history, so clients handle both with one
 * type) plus what routes it: its topic, symbol and resolution.
 */
export interface BarsUpdatePayload {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  closed: boolean;
  topic: string;
  symbol: string;
  resolution: "1" | "3" | "5" | "15" | "30" | "60" | "120" | "240" | "D" | "W" | "M";
  /**
   * Present (true) only on a repeat of the newest bar, sent once when the upstream has been silent for several intervals; it carries no new data (a closed bar it repeats is not a second close). The next update without it means data flows again.
   */
  stale?: boolean;
}
/**
 * A client frame was refused; the connection stays open.
 */
export interface ErrorMessage {
  type: "error";
  payload: ErrorPayload;
  /**
   * The `id` of the refused request, when it could be read.
   */
  id?: string | number;
}
/**
 * Why a client frame was refused; the connection stays open.
 */
export interface ErrorPayload {
  code: ErrorCode;
  message: string;
  /**
   * The `type` of the refused request, when it could be read.
   */
  request_type?: string | null;
}
/**
 * The server will close this connection soon; reconnect to resume.
 */
export interface NoticeMessage {
  type: "notice";
  payload: NoticePayload;
}
/**
 * The server will close this connection soon; reconnect (with ``since``) to resume.
 */
export interface NoticePayload {
  /**
   * `shutdown`: the server is draining; `max_lifetime`: this connection reached its maximum lifetime.
   */
  code: "shutdown" | "max_lifetime";
  message: string;
  /**
   * The WebSocket close code that will follow (1001).
   */
  close_code: number;
  /**
   * Milliseconds until the close; queued updates are still delivered.
   */
  close_in_ms: number;
}
/**
 * Reply to orderbook.subscribe.
 */
export interface OrderbookSubscribeResponseMessage {
  type: "orderbook.subscribe.response";
  payload: OrderbookSubscribeResponsePayload;
  /**
   * The `id` of the `orderbook.subscribe` request this answers, if it had one.
   */
  id?: string | number;
}
/**
 * Reply to ``orderbook.subscribe``; ``book`` is the book at the instant of subscribing
 * (null only while the upstream book is not joined yet: it then comes as a ``reset``).
 */
export interface OrderbookSubscribeResponsePayload {
  status: "ok" | "error";
  symbol: string;
  message: string;
  topic: string;
  book?: BookSnapshot | null;
}
/**
 * The book at ``seq``: every level (``diff``) or the best ``depth`` (``levels``), each
 * side best first.
 */
export interface BookSnapshot {
  /**
   * The upstream update id of the last change in this book.
   */
  seq: number;
  /**
   * Upstream time of that change, ms UTC (absent: unknown).
   */
  time?: number | null;
  /**
   * `[price, quantity]`, highest price first.
   */
  bids: [unknown, unknown][];
  /**
   * `[price, quantity]`, lowest price first.
   */
  asks: [unknown, unknown][];
}
/**
 * Reply to orderbook.unsubscribe.
 */
export interface OrderbookUnsubscribeResponseMessage {
  type: "orderbook.unsubscribe.response";
  payload: OrderbookUnsubscribeResponsePayload;
  /**
   * The `id` of the `orderbook.unsubscribe` request this answers, if it had one.
   */
  id?: string | number;
}
/**
 * Reply to ``orderbook.unsubscribe``.
 */
export interface OrderbookUnsubscribeResponsePayload {
  status: "ok" | "error";
  symbol: string;
  message: string;
  topic: string;
}
/**
 * The book changed.
 */
export interface OrderbookUpdateMessage {
  type: "orderbook.update";
  payload: OrderbookUpdatePayload;
}
/**
 * A change of the book: the best levels (``levels``) or the changed ones (``diff``).
 */
export interface OrderbookUpdatePayload {
  topic: string;
  symbol: string;
  mode: "levels" | "diff";
  /**
   * The upstream update id of the last change included.
   */
  seq: number;
  /**
   * Upstream time of that change, ms UTC (null: unknown).
   */
  time?: number | null;
  bids: [unknown, unknown][];
  asks: [unknown, unknown][];
  /**
   * `levels` only: levels per side.
   */
  depth?: number | null;
  /**
   * `diff` only: the `seq` this diff applies to; null on a `reset`. A client holding another `seq` missed a diff and must resubscribe.
   */
  prev_seq?: number | null;
  /**
   * `diff` only, true: the whole book again after an upstream resync; replace the book held with it.
   */
  reset?: boolean | null;
}
/**
 * Reply to ping.
 */
export interface PongMessage {
  type: "pong";
  payload: PongPayload;
  /**
   * The `id` of the `ping` request this answers, if it had one.
   */
  id?: string | number;
}
/**
 * Reply to ``ping``: the server's clock, ms UTC.
 */
export interface PongPayload {
  time: number;
}
/**
 * Reply to quotes.subscribe.
 */
export interface QuotesSubscribeResponseMessage {
  type: "quotes.subscribe.response";
  payload: QuotesSubscribeResponsePayload;
  /**
   * The `id` of the `quotes.subscribe` request this answers, if it had one.
   */
  id?: string | number;
}
/**
 * Reply to ``quotes.subscribe``.
 */
export interface QuotesSubscribeResponsePayload {
  status: "ok" | "error";
  symbol: string;
  message: string;
  topic: string;
}
/**
 * Reply to quotes.unsubscribe.
 */
export interface QuotesUnsubscribeResponseMessage {
  type: "quotes.unsubscribe.response";
  payload: QuotesUnsubscribeResponsePayload;
  /**
   * The `id` of the `quotes.unsubscribe` request this answers, if it had one.
   */
  id?: string | number;
}
/**
 * Reply to ``quotes.unsubscribe``.
 */
export interface QuotesUnsubscribeResponsePayload {
  status: "ok" | "error";
  symbol: string;
  message: string;
  topic: string;
}
/**
 * A new quote.
 */
export interface QuotesUpdateMessage {
  type: "quotes.update";
  payload: QuotesUpdatePayload;
}
/**
 * A live quote.
 */
export interface QuotesUpdatePayload {
  topic: string;
  symbol: string;
  time: number;
  bid: number;
  ask: number;
  last: number;
  volume?: number | null;
  change?: number | null;
  change_percent?: number | null;
}
/**
 * Reply to subscriptions.list.
 */
export interface SubscriptionsListResponseMessage {
  type: "subscriptions.list.response";
  payload: SubscriptionsListResponsePayload;
  /**
   * The `id` of the `subscriptions.list` request this answers, if it had one.
   */
  id?: string | number;
}
/**
 * Reply to ``subscriptions.list``: every topic this connection receives, in the order it subscribed, each with its route, symbol and params.
 */
export interface SubscriptionsListResponsePayload {
  subscriptions: (
    | BarsListedSubscription
    | QuotesListedSubscription
    | TradesListedSubscription
    | OrderbookListedSubscription
  )[];
}
/**
 * One ``bars`` subscription of this connection.
 */
export interface BarsListedSubscription {
  route: "bars";
  topic: string;
  symbol: string;
  params: BarsParams;
}
/**
 * Topic parameters of the ``bars`` route.
 */
export interface BarsParams {
  /**
   * TradingView resolution; `1D`, `1W`, `1M` are accepted as aliases of `D`, `W`, `M` (TradingView sends both spellings) and written back canonical, in the reply's `topic` and in updates.
   */
  resolution:
    "1" | "3" | "5" | "15" | "30" | "60" | "120" | "240" | "D" | "W" | "M" | "1D" | "1W" | "1M";
}
/**
 * One ``quotes`` subscription of this connection.
 */
export interface QuotesListedSubscription {
  route: "quotes";
  topic: string;
  symbol: string;
  params: QuotesParams;
}
/**
 * One ``trades`` subscription of this connection.
 */
export interface TradesListedSubscription {
  route: "trades";
  topic: string;
  symbol: string;
  params: TradesParams;
}
/**
 * One ``orderbook`` subscription of this connection.
 */
export interface OrderbookListedSubscription {
  route: "orderbook";
  topic: string;
  symbol: string;
  params: OrderbookParams;
}
/**
 * Topic parameters of the ``orderbook`` route.
 */
export interface OrderbookParams {
  /**
   * `levels`: the best `depth` levels, at most every 100 ms, latest wins. `diff`: a full snapshot in the reply, then every change with `prev_seq` and `seq`.
   */
  mode?: "levels" | "diff";
  /**
   * Levels per side in `levels` mode (default 20); not allowed in `diff` mode, which serves the whole book.
   */
  depth?: (5 | 10 | 20 | 50) | null;
}
/**
 * Reply to trades.subscribe.
 */
export interface TradesSubscribeResponseMessage {
  type: "trades.subscribe.response";
  payload: TradesSubscribeResponsePayload;
  /**
   * The `id` of the `trades.subscribe` request this answers, if it had one.
   */
  id?: string | number;
}
/**
 * Reply to ``trades.subscribe``; ``trades`` holds the snapshot, oldest first.
 */
export interface TradesSubscribeResponsePayload {
  status: "ok" | "error";
  symbol: string;
  message: string;
  topic: string;
  trades?: TradeRecord[] | null;
}
/**
 * One trade: ``id`` is the upstream's (strictly increasing per symbol), ``time`` ms UTC,
 * ``side`` the aggressor's (``buy``: the buyer took the offer).
 */
export interface TradeRecord {
  id: number;
  time: number;
  price: number;
  quantity: number;
  side: "buy" | "sell";
}
/**
 * Reply to trades.unsubscribe.
 */
export interface TradesUnsubscribeResponseMessage {
  type: "trades.unsubscribe.response";
  payload: TradesUnsubscribeResponsePayload;
  /**
   * The `id` of the `trades.unsubscribe` request this answers, if it had one.
   */
  id?: string | number;
}
/**
 * Reply to ``trades.unsubscribe``.
 */
export interface TradesUnsubscribeResponsePayload {
  status: "ok" | "error";
  symbol: string;
  message: string;
  topic: string;
}
/**
 * A trade.
 */
export interface TradesUpdateMessage {
  type: "trades.update";
  payload: TradesUpdatePayload;
}
/**
 * A live trade: a ``TradeRecord`` plus what routes it.
 */
export interface TradesUpdatePayload {
  id: number;
  time: number;
  price: number;
  quantity: number;
  side: "buy" | "sell";
  topic: string;
  symbol: string;
}
/**
 * Receive a symbol's candles at one resolution, after a snapshot.
 */
export interface BarsSubscribeMessage {
  type: "bars.subscribe";
  payload: BarsSubscribePayload;
  /**
   * Optional request id; the reply and any `error` for this request echo it.
   */
  id?: string | number;
}
/**
 * Subscribe to a symbol's candles at one resolution, optionally with history first.
 */
export interface BarsSubscribePayload {
  /**
   * Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
   */
  symbol: string;
  params: BarsParams;
  /**
   * Return the last N bars in the response, then stream from there.
   */
  snapshot?: number;
  /**
   * Return every bar whose open time is >= since (ms UTC) in the response; at most the open time of the bar after the newest one.
   */
  since?: number | null;
}
/**
 * Stop receiving candles for a symbol (idempotent).
 */
export interface BarsUnsubscribeMessage {
  type: "bars.unsubscribe";
  payload: BarsUnsubscribePayload;
  /**
   * Optional request id; the reply and any `error` for this request echo it.
   */
  id?: string | number;
}
/**
 * Stop receiving a symbol's candles at one resolution.
 */
export interface BarsUnsubscribePayload {
  /**
   * Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
   */
  symbol: string;
  params: BarsParams;
}
/**
 * Receive a symbol's order book, after the book as it is now.
 */
export interface OrderbookSubscribeMessage {
  type: "orderbook.subscribe";
  payload: OrderbookSubscribePayload;
  /**
   * Optional request id; the reply and any `error` for this request echo it.
   */
  id?: string | number;
}
/**
 * Subscribe to a symbol's order book in one mode; the reply carries the book.
 */
export interface OrderbookSubscribePayload {
  /**
   * Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
   */
  symbol: string;
  params?: OrderbookParams;
}
/**
 * Stop receiving order book updates for a symbol (idempotent).
 */
export interface OrderbookUnsubscribeMessage {
  type: "orderbook.unsubscribe";
  payload: OrderbookUnsubscribePayload;
  /**
   * Optional request id; the reply and any `error` for this request echo it.
   */
  id?: string | number;
}
/**
 * Stop receiving a symbol's order book in one mode.
 */
export interface OrderbookUnsubscribePayload {
  /**
   * Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
   */
  symbol: string;
  params?: OrderbookParams;
}
/**
 * Application-level ping; answered by pong.
 */
export interface PingMessage {
  type: "ping";
  payload: PingPayload;
  /**
   * Optional request id; the reply and any `error` for this request echo it.
   */
  id?: string | number;
}
/**
 * Receive a symbol's quotes.
 */
export interface QuotesSubscribeMessage {
  type: "quotes.subscribe";
  payload: QuotesSubscribePayload;
  /**
   * Optional request id; the reply and any `error` for this request echo it.
   */
  id?: string | number;
}
/**
 * Subscribe to a symbol's quotes.
 */
export interface QuotesSubscribePayload {
  /**
   * Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
   */
  symbol: string;
  params?: QuotesParams;
}
/**
 * Stop receiving quotes for a symbol (idempotent).
 */
export interface QuotesUnsubscribeMessage {
  type: "quotes.unsubscribe";
  payload: QuotesUnsubscribePayload;
  /**
   * Optional request id; the reply and any `error` for this request echo it.
   */
  id?: string | number;
}
/**
 * Stop receiving a symbol's quotes.
 */
export interface QuotesUnsubscribePayload {
  /**
   * Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
   */
  symbol: string;
  params?: QuotesParams;
}
/**
 * List this connection's subscriptions: topic, route, symbol and params of each.
 */
export interface SubscriptionsListMessage {
  type: "subscriptions.list";
  payload: SubscriptionsListPayload;
  /**
   * Optional request id; the reply and any `error` for this request echo it.
   */
  id?: string | number;
}
/**
 * Receive a symbol's trades, after a snapshot of the newest ones.
 */
export interface TradesSubscribeMessage {
  type: "trades.subscribe";
  payload: TradesSubscribePayload;
  /**
   * Optional request id; the reply and any `error` for this request echo it.
   */
  id?: string | number;
}
/**
 * Subscribe to a symbol's trades, optionally with the newest ones first.
 */
export interface TradesSubscribePayload {
  /**
   * Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
   */
  symbol: string;
  params?: TradesParams;
  /**
   * Return the newest N trades (at most 500) in the response, oldest first, then stream from the next one.
   */
  snapshot?: number;
}
/**
 * Stop receiving trades for a symbol (idempotent).
 */
export interface TradesUnsubscribeMessage {
  type: "trades.unsubscribe";
  payload: TradesUnsubscribePayload;
  /**
   * Optional request id; the reply and any `error` for this request echo it.
   */
  id?: string | number;
}
/**
 * Stop receiving a symbol's trades.
 */
export interface TradesUnsubscribePayload {
  /**
   * Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
   */
  symbol: string;
  params?: TradesParams;
}

/**
 * For each request `type`, the `type` of the reply that answers it (from `x-reply-to`).
 */
export interface ReplyTypes {
  "bars.subscribe": "bars.subscribe.response";
  "bars.unsubscribe": "bars.unsubscribe.response";
  "orderbook.subscribe": "orderbook.subscribe.response";
  "orderbook.unsubscribe": "orderbook.unsubscribe.response";
  "ping": "pong";
  "quotes.subscribe": "quotes.subscribe.response";
  "quotes.unsubscribe": "quotes.unsubscribe.response";
  "subscriptions.list": "subscriptions.list.response";
  "trades.subscribe": "trades.subscribe.response";
  "trades.unsubscribe": "trades.unsubscribe.response";
}
