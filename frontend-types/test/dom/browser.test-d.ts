/**
 * Compiled with the DOM lib and no Node types (tsconfig.dom.json): the package needs nothing
 * from Node, and the browser's own WebSocket class is accepted where the client takes one.
 */

import { MarketcastClient, type WebSocketConstructor } from "../../src/index.js";

export const browserSocket: WebSocketConstructor = WebSocket;
export const client = new MarketcastClient("wss://example.invalid/api/v1/ws", {
  WebSocket,
  timers: {
    setTimeout: (callback, ms) => window.setTimeout(callback, ms),
    clearTimeout: (handle) => window.clearTimeout(handle as number),
  },
});
