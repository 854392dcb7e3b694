/**
 * What the client needs from its platform: a WebSocket constructor and timers.
 *
 * Both are described structurally and injectable, so the client runs unchanged in browsers
 * (the global `WebSocket`), in Node (22+ has a global one; 20 has it behind
 * `--experimental-websocket`, or pass the `ws` package's class), and in tests that control
 * time. No DOM or Node type is referenced, so the package compiles with either lib or neither.
 */

/**
 * A handler property type that accepts both the DOM's `(ev: MessageEvent) => any` and a plain
 * `(ev: { data: unknown }) => void`: a method signature's parameters are compared bivariantly,
 * which is what lets `typeof WebSocket` from any library be passed as a `WebSocketConstructor`.
 */
type Handler<E> = { bivarianceHack(event: E): void }["bivarianceHack"];

export interface MessageEventLike {
  readonly data: unknown;
}

export interface CloseEventLike {
  readonly code: number;
  readonly reason: string;
}

/** The subset of the WHATWG WebSocket interface the client uses. */
export interface WebSocketLike {
  onopen: Handler<unknown> | null;
  onmessage: Handler<MessageEventLike> | null;
  onclose: Handler<CloseEventLike> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/**
 * A WebSocket class: the client passes the subprotocols it offers (`marketcast.v1`, and
 * `token.<T>` when it has a token) as the second argument, as `new WebSocket(url, protocols)`.
 */
export type WebSocketConstructor = new (url: string, protocols?: string[]) => WebSocketLike;

/** Timers as `setTimeout`/`clearTimeout` provide them; the handle is opaque. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

interface PlatformGlobals {
  WebSocket?: WebSocketConstructor;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

// Read through a structural view of globalThis: the lib this is compiled with need not
// declare either (an ES-only lib declares neither; DOM and Node declare them differently).
const platform = globalThis as unknown as PlatformGlobals;

export const DEFAULT_TIMERS: Timers = Object.freeze<Timers>({
  setTimeout: (callback, ms) => platform.setTimeout(callback, ms),
  clearTimeout: (handle) => platform.clearTimeout(handle),
});

/** The injected constructor, else the platform's, else an error that says what to do. */
export function resolveWebSocket(injected: WebSocketConstructor | undefined): WebSocketConstructor {
  const found = injected ?? platform.WebSocket;
  if (found === undefined) {
    throw new TypeError(
      "no WebSocket implementation: this platform has no global WebSocket (Node 20 needs " +
        "--experimental-websocket); pass one as the `WebSocket` option, e.g. the `ws` package's",
    );
  }
  return found;
}
