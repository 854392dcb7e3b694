/**
 * The marketcast front-end package: the WebSocket message types (generated from
 * docs/asyncapi.json), the topic builder shared with the server, and a typed client.
 */

export type * from "./generated/messages.js";
export type * from "./protocol.js";
export { buildTopic, topicParams, type TopicValue } from "./topics.js";
export {
  connect,
  MarketcastClient,
  type ClientOptions,
  type ConnectionState,
  type RequestOptions,
} from "./client.js";
export type {
  BarsSubscribeOptions,
  BaseSubscribeOptions,
  SubscribeOptions,
  Subscription,
} from "./subscriptions.js";
export {
  ConnectionError,
  MarketcastError,
  ProtocolViolation,
  RequestError,
  TimeoutError,
} from "./errors.js";
export { DEFAULT_BACKOFF, fullJitterDelay, type BackoffOptions } from "./backoff.js";
export { BarSequencer } from "./bars.js";
export type { Timers, WebSocketConstructor, WebSocketLike } from "./platform.js";
