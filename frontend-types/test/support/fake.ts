/**
 * A simulated clock and a scripted fake WebSocket server, so that reconnect and subscription
 * behaviour is tested in simulated time: nothing here waits for the wall clock.
 *
 * Every socket event (open, message, close) is delivered through the clock 1 simulated ms
 * after the server acts, as a real WebSocket delivers events as separate tasks.
 */

import type { Timers, WebSocketLike } from "../../src/index.js";

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

/** Let promise callbacks (and what they schedule) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class FakeClock {
  now = 0;
  #seq = 0;
  readonly #timers = new Map<number, Timer>();

  readonly timers: Timers = {
    setTimeout: (callback, ms) => {
      const seq = ++this.#seq;
      this.#timers.set(seq, { at: this.now + Math.max(0, ms), seq, callback });
      return seq;
    },
    clearTimeout: (handle) => {
      if (typeof handle === "number") this.#timers.delete(handle);
    },
  };

  /** Run every timer due within `ms` from now, in order, letting promises settle in between. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    await settle();
    for (;;) {
      let next: Timer | undefined;
      for (const timer of this.#timers.values()) {
        if (timer.at > end) continue;
        if (next === undefined || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))
          next = timer;
      }
      if (next === undefined) break;
      this.#timers.delete(next.seq);
      this.now = next.at;
      next.callback();
      await settle();
    }
    this.now = end;
  }
}

export type Frame = { type: string; id?: number | string; payload: Record<string, unknown> };

/** What the scripted server does with a new socket and with each frame it receives. */
export interface Script {
  /** Called when a client socket is created (the handshake arrives). Default: accept. */
  handshake?(socket: FakeSocket): void;
  /** Called for every frame the client sends on an open socket. Default: answer pings. */
  frame?(socket: FakeSocket, frame: Frame): void;
}

export class FakeServer {
  readonly sockets: FakeSocket[] = [];
  /** Connection attempts, as simulated times. */
  readonly attempts: number[] = [];
  script: Script = {};

  constructor(readonly clock: FakeClock) {}

  /** The class to pass as the client's `WebSocket` option. */
  get WebSocket(): new (url: string, protocols?: string[]) => WebSocketLike {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const server = this;
    return class extends FakeSocket {
      constructor(url: string, protocols?: string[]) {
        super(server, url, protocols ?? []);
        server.sockets.push(this);
        server.attempts.push(server.clock.now);
        const handshake = server.script.handshake ?? ((socket: FakeSocket) => socket.accept());
        handshake(this);
      }
    };
  }

  /** Sockets that opened. */
  get opened(): FakeSocket[] {
    return this.sockets.filter((socket) => socket.wasOpened);
  }

  get last(): FakeSocket {
    const socket = this.sockets.at(-1);
    if (socket === undefined) throw new Error("no socket yet");
    return socket;
  }
}

export class FakeSocket implements WebSocketLike {
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly received: Frame[] = [];
  wasOpened = false;
  closed = false;
  closedByClient: { code: number | undefined; reason: string | undefined } | undefined;

  constructor(
    readonly server: FakeServer,
    readonly url: string,
    readonly protocols: string[],
  ) {}

  #later(action: () => void): void {
    this.server.clock.timers.setTimeout(action, 1);
  }

  /** Complete the handshake. */
  accept(): void {
    this.#later(() => {
      if (this.closed) return;
      this.wasOpened = true;
      this.onopen?.({});
    });
  }

  /** Refuse the handshake: an error event (with `message`, as the `ws` package gives), then 1006. */
  refuse(message = "Unexpected server response: 503"): void {
    this.#later(() => {
      if (this.closed) return;
      this.closed = true;
      this.onerror?.({ message });
      this.onclose?.({ code: 1006, reason: "" });
    });
  }

  /** The server closes with `code`. */
  close(code?: number, reason?: string): void {
    // Called by the client: record it, no event back (the client detached its handlers).
    this.closedByClient = { code, reason };
    this.closed = true;
  }

  serverClose(code: number, reason = ""): void {
    this.#later(() => {
      if (this.closed) return;
      this.closed = true;
      this.onclose?.({ code, reason });
    });
  }

  /** The server sends `message`. */
  push(message: unknown): void {
    this.#later(() => {
      if (!this.closed) this.onmessage?.({ data: JSON.stringify(message) });
    });
  }

  /** The server sends `messages` that arrive together: dispatched one after the other in
   * one task, as a WebSocket does with frames read in one chunk (no microtask between). */
  pushTogether(...messages: unknown[]): void {
    this.#later(() => {
      for (const message of messages) {
        if (!this.closed) this.onmessage?.({ data: JSON.stringify(message) });
      }
    });
  }

  /** The server answers `frame` with `payload` as `<type>.response`. */
  reply(frame: Frame, payload: Record<string, unknown>): void {
    this.push({ type: `${frame.type}.response`, id: frame.id, payload });
  }

  send(data: string): void {
    if (this.closed) return;
    const frame = JSON.parse(data) as Frame;
    this.received.push(frame);
    const handle =
      this.server.script.frame ??
      ((socket: FakeSocket, f: Frame) => {
        if (f.type === "ping") socket.push({ type: "pong", id: f.id, payload: { time: 0 } });
      });
    handle(this, frame);
  }
}

export const MINUTE = 60_000;

export function bar(minute: number, closed: boolean) {
  return { time: minute * MINUTE, open: 1, high: 2, low: 0.5, close: 1.5, volume: 3, closed };
}

export const BTC_TOPIC = 'bars:{"resolution":"1","symbol":"BTCUSDT"}';

/** A `bars.update` of BTCUSDT at resolution 1. */
export function barUpdate(minute: number, closed: boolean) {
  return {
    type: "bars.update",
    payload: { topic: BTC_TOPIC, symbol: "BTCUSDT", resolution: "1", ...bar(minute, closed) },
  };
}

/** A subscribe reply for `frame` (a bars.subscribe), with `bars` and `extra` fields. */
export function subscribed(frame: Frame, bars?: unknown[], extra: Record<string, unknown> = {}) {
  return {
    status: "ok",
    symbol: frame.payload["symbol"],
    message: "subscribed",
    topic: BTC_TOPIC,
    ...(bars === undefined ? {} : { bars }),
    ...extra,
  };
}

export const BTC_TRADES_TOPIC = 'trades:{"symbol":"BTCUSDT"}';

/** A trade record with id `id` (its time and price follow from the id). */
export function trade(id: number) {
  return {
    id,
    time: 1_763_683_200_000 + id,
    price: 100 + id / 100,
    quantity: 0.5,
    side: id % 2 === 0 ? "buy" : "sell",
  } as const;
}

/** A `trades.update` of BTCUSDT. */
export function tradeUpdate(id: number) {
  return { type: "trades.update", payload: { topic: BTC_TRADES_TOPIC, symbol: "BTCUSDT", ...trade(id) } };
}

/** A `trades.subscribe.response` to `frame` with the trades `ids` as its snapshot. */
export function tradesReply(frame: Frame, ids?: readonly number[]) {
  const payload = {
    status: "ok",
    symbol: "BTCUSDT",
    message: "subscribed",
    topic: BTC_TRADES_TOPIC,
    ...(ids === undefined ? {} : { trades: ids.map(trade) }),
  };
  return { type: "trades.subscribe.response", id: frame.id, payload };
}

/** `count` consecutive ids from `first`. */
export function ids(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => first + i);
}
