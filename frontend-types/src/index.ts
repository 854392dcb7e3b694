/**
 * The marketcast front-end package: the WebSocket message types (generated from
 * docs/asyncapi.json), the topic builder shared with the server, and a typed client.
 * Exported here is the documented API (README.md); the rest of `src/` is internal.
 */

export type * from "./generated/messages.js";
export type * from "./protocol.js";
export { buildTopic, topicParams, type TopicValue } from "./topics.js";
export {
  connect,
  MarketcastClient,
  type ClientOptions,
  type ConnectionState,
  type DisconnectedEvent,
  type RequestOptions,
} from "./client.js";
export type {
  BarsSubscribeOptions,
  BaseSubscribeOptions,
  SubscribedEvent,
  SubscribeOptions,
  Subscription,
  SubscriptionErrorEvent,
  SubscriptionEvents,
  SubscriptionState,
  TradesSubscribeOptions,
  UnsubscribedEvent,
} from "./subscription.js";
export {
  BOOK_DEPTHS,
  bookLevels,
  bookUpdate,
  DiffBook,
  diffTopic,
  LevelsBook,
  levelsTopic,
  OrderBook,
  type BookChangeEvent,
  type BookDepth,
  type BookErrorEvent,
  type BookGapEvent,
  type BookLevel,
  type BookLevels,
  type BookResetEvent,
  type BookUpdate,
  type DiffOutcome,
  type DiffUpdate,
  type LevelsBookEvents,
  type LevelsBookOptions,
  type LevelsChangeEvent,
  type LevelsUpdate,
  type OrderBookEvents,
  type OrderBookOptions,
  type OrderBookState,
} from "./orderbook.js";
export {
  ClosedByServerError,
  ConnectionError,
  HandshakeError,
  MarketcastError,
  ProtocolViolation,
  RequestError,
  TimeoutError,
  UnauthorizedError,
} from "./errors.js";
export { CLOSE_CODES, type CloseCodeInfo, type RetryPolicy } from "./closecodes.js";
export type { BackoffOptions } from "./backoff.js";
export type { Timers, WebSocketConstructor, WebSocketLike } from "./platform.js";
