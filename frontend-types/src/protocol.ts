/**
 * Types derived from the generated message types, so that the client's API follows the
 * contract without restating it: a new route or field in docs/asyncapi.json shows up here
 * after `make generate-ws-types`, and a removed one fails to compile where it is used.
 */

import type { BarsParams, ClientMessage, ReplyTypes, ServerMessage } from "./generated/messages.js";

/** Every `type` a client may send. */
export type ClientMessageType = ClientMessage["type"];

/** Every `type` the server may send. */
export type ServerMessageType = ServerMessage["type"];

/** The server envelope whose `type` is `T`. */
export type ServerMessageOf<T extends ServerMessageType> = Extract<ServerMessage, { type: T }>;

/** The client envelope whose `type` is `T`. */
export type ClientMessageOf<T extends ClientMessageType> = Extract<ClientMessage, { type: T }>;

/** The payload a request of type `T` carries. */
export type RequestPayload<T extends ClientMessageType> = ClientMessageOf<T>["payload"];

/** The envelope that answers a request of type `T` (`bars.subscribe` -> `bars.subscribe.response`). */
export type ReplyMessage<T extends ClientMessageType> = ServerMessageOf<ReplyTypes[T]>;

/** TradingView resolutions in their canonical spelling. */
export type Resolution = BarsParams["resolution"];

/** The routes one can subscribe to: every `<route>.subscribe` request names one. */
export type Route = ClientMessageType extends infer T
  ? T extends `${infer R}.subscribe`
    ? R
    : never
  : never;

type SubscribeType<R extends Route> = Extract<ClientMessageType, `${R}.subscribe`>;
type UnsubscribeType<R extends Route> = Extract<ClientMessageType, `${R}.unsubscribe`>;

/** What `<route>.update` delivers: the payload of the route's update message. */
export type UpdateOf<R extends Route> = ServerMessageOf<
  Extract<ServerMessageType, `${R}.update`>
>["payload"];

/** The reply to `<route>.subscribe`. */
export type SubscribeReplyOf<R extends Route> = ReplyMessage<SubscribeType<R>>;

type ArrayItem<T> = NonNullable<T> extends readonly (infer I)[] ? I : never;

/**
 * What one element of a route's snapshot is: the item type of the array its subscribe reply
 * carries (`Bar` for bars, `TradeRecord` for trades); `never` for a route without history
 * (quotes).
 */
export type SnapshotItem<R extends Route> = R extends Route
  ? {
      [K in keyof SubscribeReplyOf<R>["payload"]]-?: ArrayItem<SubscribeReplyOf<R>["payload"][K]>;
    }[keyof SubscribeReplyOf<R>["payload"]]
  : never;

/** The routes whose subscribe reply may carry a snapshot (`bars`, `trades`). */
export type HistoryRoute = {
  [R in Route]: [SnapshotItem<R>] extends [never] ? never : R;
}[Route];

type ParamsOf<R extends Route> = NonNullable<RequestPayload<SubscribeType<R>>["params"]>;

/**
 * What names a stream of route `R`: its symbol plus the route's topic parameters, flat
 * (`{ symbol: "BTCUSDT", resolution: "1" }`). A route without parameters takes the symbol only;
 * intersecting with its `Record<string, never>` would make `symbol` itself `never`.
 */
export type TopicKey<R extends Route> =
  ParamsOf<R> extends Record<string, never> ? { symbol: string } : { symbol: string } & ParamsOf<R>;

/** The request types the client uses for route `R`, checked to exist in the contract. */
export interface RouteTypes<R extends Route> {
  subscribe: SubscribeType<R>;
  unsubscribe: UnsubscribeType<R>;
}
