/**
 * The client against a scripted fake server in simulated time (test/support/fake.ts): the
 * close-code policy, tokens, and subscriptions that time out or come back with a gap.
 * Nothing here depends on the wall clock.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  CLOSE_CODES,
  ClosedByServerError,
  type ClientOptions,
  type DisconnectedEvent,
  HandshakeError,
  type MarketcastError,
  MarketcastClient,
  type SubscribedEvent,
  type SubscriptionErrorEvent,
  UnauthorizedError,
} from "../src/index.js";
import {
  BTC_TOPIC,
  bar,
  barUpdate,
  FakeClock,
  FakeServer,
  type Frame,
  MINUTE,
  subscribed,
} from "./support/fake.js";
import { repoPath } from "./support/paths.js";

interface Rig {
  clock: FakeClock;
  server: FakeServer;
  client: MarketcastClient;
  errors: MarketcastError[];
  disconnects: DisconnectedEvent[];
}

function rig(options: ClientOptions = {}): Rig {
  const clock = new FakeClock();
  const server = new FakeServer(clock);
  const errors: MarketcastError[] = [];
  const disconnects: DisconnectedEvent[] = [];
  const client = new MarketcastClient("ws://fake/api/v1/ws", {
    WebSocket: server.WebSocket,
    timers: clock.timers,
    random: () => 0.5,
    pingIntervalMs: 0,
    onError: (error) => errors.push(error),
    onDisconnected: (event) => disconnects.push(event),
    ...options,
  });
  return { clock, server, client, errors, disconnects };
}

/** Answer every subscribe with ok (no bars), every ping with a pong. */
function answerAll(socket: import("./support/fake.js").FakeSocket, frame: Frame): void {
  if (frame.type === "ping") socket.push({ type: "pong", id: frame.id, payload: { time: 0 } });
  else if (frame.type.endsWith(".subscribe")) socket.reply(frame, subscribed(frame));
  else socket.reply(frame, { status: "ok", symbol: frame.payload["symbol"], message: "unsubscribed", topic: BTC_TOPIC });
}

for (const code of [1013, 1008, 4008]) {
  test(`a server that accepts and closes with ${code}: bounded, growing reconnects`, async () => {
    const { clock, server, client, disconnects } = rig();
    server.script.handshake = (socket) => {
      socket.accept();
      socket.serverClose(code, "go away");
    };
    void client.connect();
    await clock.advance(60_000);
    const count = server.attempts.length;
    // Without the policy this was about 195 connections; with full jitter at 0.5 of
    // 500 * 2^n ms (cap 30 s) it is 8 or 9.
    assert.ok(count >= 4 && count <= 12, `${count} connections in 60 s`);
    const gaps = server.attempts.slice(1).map((at, i) => at - (server.attempts[i] ?? 0));
    for (let i = 1; i < gaps.length; i += 1)
      assert.ok((gaps[i] ?? 0) >= (gaps[i - 1] ?? 0), `delays shrank: ${gaps.join(", ")}`);
    assert.ok((gaps.at(-1) ?? 0) >= 10_000, `delays did not grow: ${gaps.join(", ")}`);
    assert.equal(server.opened.length, count);
    assert.ok(disconnects.every((d) => d.code === code && d.willRetry && d.wasOpen));
    assert.notEqual(client.state, "open");
    // A second minute: still bounded by the cap (30 s ceiling, 15 s at 0.5).
    await clock.advance(60_000);
    assert.ok(server.attempts.length - count <= 5, `${server.attempts.length - count} more`);
    client.close();
  });
}

for (const code of [4404, 1009, 1007]) {
  test(`a close with ${code} is not retried: exactly one connection`, async () => {
    // whenOpen() says why the client stopped.
    const { clock, server, client, errors, disconnects } = rig();
    server.script.handshake = (socket) => {
      socket.accept();
      socket.serverClose(code, "not served");
    };
    const opening = client.connect();
    await clock.advance(60_000);
    assert.equal(server.attempts.length, 1);
    assert.equal(client.state, "failed");
    await opening; // it did open, once
    await assert.rejects(client.whenOpen(), ClosedByServerError);
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof ClosedByServerError && errors[0].code === code);
    assert.deepEqual(
      disconnects.map((d) => [d.code, d.willRetry]),
      [[code, false]],
    );
    // connect() starts over.
    server.script.handshake = (socket) => socket.accept();
    const again = client.connect();
    await clock.advance(10);
    await again;
    assert.equal(client.state, "open");
    client.close();
  });
}

test("a planned close (1001, or any close after a notice) reconnects at once", async () => {
  const { clock, server, client, disconnects } = rig();
  void client.connect();
  await clock.advance(100);
  server.last.push({
    type: "notice",
    payload: { code: "shutdown", message: "draining", close_code: 1001, close_in_ms: 5000 },
  });
  server.last.serverClose(1001, "server shutting down");
  await clock.advance(10);
  assert.equal(server.attempts.length, 2);
  // The notice announces the close, whatever drops the socket in the end.
  server.last.push({
    type: "notice",
    payload: { code: "max_lifetime", message: "lifetime", close_code: 1001, close_in_ms: 5000 },
  });
  server.last.serverClose(1006);
  await clock.advance(10);
  assert.equal(server.attempts.length, 3);
  // An ordinary drop after a good connection starts the backoff from the bottom.
  server.last.serverClose(1006);
  await clock.advance(1_000);
  assert.deepEqual(
    disconnects.map((d) => [d.code, d.delayMs]),
    [
      [1001, 0],
      [1006, 0],
      [1006, 250],
    ],
  );
  client.close();
});

test("the attempt counter resets only once renewals are confirmed and uptime has passed", async () => {
  const { clock, server, client, disconnects } = rig({ stableAfterMs: 5_000 });
  server.script.frame = (socket, frame) => answerAll(socket, frame);
  client.subscribe("bars", { symbol: "BTCUSDT", resolution: "1" }, () => {});
  void client.connect();
  await clock.advance(100);
  assert.equal(client.state, "open");
  server.last.serverClose(1013);
  await clock.advance(2_000);
  server.last.serverClose(1013); // up for less than stableAfterMs: the delay grows
  await clock.advance(3_000);
  assert.deepEqual(
    disconnects.map((d) => d.delayMs),
    [250, 500],
  );
  await clock.advance(6_000); // now stable
  server.last.serverClose(1013);
  await clock.advance(10);
  assert.equal(disconnects.at(-1)?.delayMs, 250);
  client.close();
});

test("state is open only once the renewals are confirmed", async () => {
  const { clock, server, client } = rig();
  let answer: (() => void) | undefined;
  server.script.frame = (socket, frame) => {
    answer = () => answerAll(socket, frame);
  };
  client.subscribe("bars", { symbol: "BTCUSDT", resolution: "1" }, () => {});
  void client.connect();
  await clock.advance(100);
  assert.equal(server.opened.length, 1);
  assert.equal(client.state, "connecting");
  answer?.();
  await clock.advance(10);
  assert.equal(client.state, "open");
  client.close();
});

test("a token reaches the server as a subprotocol, fresh from getToken() on every attempt", async () => {
  let n = 0;
  const { clock, server, client } = rig({ getToken: async () => `t${++n}` });
  void client.connect();
  await clock.advance(100);
  assert.deepEqual(server.last.protocols, ["marketcast.v1", "token.t1"]);
  server.last.serverClose(1006);
  await clock.advance(1_000);
  assert.deepEqual(server.last.protocols, ["marketcast.v1", "token.t2"]);
  assert.ok(!server.last.url.includes("t2"), "the token must not be in the URL");
  client.close();

  const plain = rig({ token: "s3cret" });
  void plain.client.connect();
  await plain.clock.advance(100);
  assert.deepEqual(plain.server.last.protocols, ["marketcast.v1", "token.s3cret"]);
  plain.client.close();
  const none = rig();
  void none.client.connect();
  await none.clock.advance(100);
  assert.deepEqual(none.server.last.protocols, ["marketcast.v1"]);
  none.client.close();
});

test("a 403 handshake raises UnauthorizedError once, then waits for a new token", async () => {
  const { clock, server, client, errors } = rig({ token: "expired" });
  server.script.handshake = (socket) => {
    if (socket.protocols.includes("token.good")) socket.accept();
    else socket.refuse("Unexpected server response: 403");
  };
  const opening = client.connect();
  await clock.advance(10 * 60_000);
  assert.equal(server.attempts.length, 1);
  assert.equal(client.state, "failed");
  await assert.rejects(opening, UnauthorizedError);
  assert.equal(errors.filter((e) => e instanceof UnauthorizedError).length, 1);
  assert.equal(errors.length, 1);
  client.setToken("good");
  await clock.advance(10);
  assert.equal(client.state, "open");
  assert.equal(server.attempts.length, 2);
  client.close();
});

test("handshake failures without a status are retried with backoff and reported", async () => {
  const { clock, server, client, errors } = rig();
  server.script.handshake = (socket) => socket.refuse("connect ECONNREFUSED");
  void client.connect();
  await clock.advance(60_000);
  assert.ok(server.attempts.length >= 4 && server.attempts.length <= 12);
  assert.equal(client.state, "connecting");
  const reported = errors.filter((e) => e instanceof HandshakeError) as HandshakeError[];
  assert.equal(reported.length, server.attempts.length - 2);
  assert.equal(reported[0]?.failures, 3);
  client.close();
  assert.equal(client.state, "closed");
});

test("a URL no WebSocket accepts is not retried", async () => {
  const clock = new FakeClock();
  let made = 0;
  const errors: MarketcastError[] = [];
  const client = new MarketcastClient("nonsense", {
    WebSocket: class {
      constructor() {
        made += 1;
        throw new SyntaxError("invalid URL");
      }
    } as unknown as ClientOptions["WebSocket"] & object,
    timers: clock.timers,
    onError: (error) => errors.push(error),
  });
  await assert.rejects(client.connect(), /invalid URL/);
  await clock.advance(60_000);
  assert.equal(made, 1);
  assert.equal(client.state, "failed");
  assert.equal(errors.length, 1);
});

test("a subscribe that times out recycles the socket; later listeners get their updates", async () => {
  const { clock, server, client } = rig({ requestTimeoutMs: 2_000 });
  server.script.frame = (socket, frame) => {
    // The first socket never answers a subscribe: a stuck server.
    if (socket === server.sockets[0] && frame.type === "bars.subscribe") return;
    answerAll(socket, frame);
  };
  void client.connect();
  await clock.advance(10);
  const key = { symbol: "BTCUSDT", resolution: "1" } as const;
  const first: number[] = [];
  const second: number[] = [];
  const timeouts: SubscriptionErrorEvent[] = [];
  const a = client.subscribe("bars", key, (b) => first.push(b.time), {
    onError: (event) => timeouts.push(event),
  });
  await clock.advance(10);
  const b = client.subscribe("bars", key, (u) => second.push(u.time)); // joins while in flight
  assert.equal(a.state, "subscribing");
  await clock.advance(3_000);
  assert.equal(timeouts.length, 1);
  assert.equal(timeouts[0]?.code, "timeout");
  assert.equal(timeouts[0]?.willRetry, true);
  assert.ok(server.sockets.length >= 2, "the stuck socket was not recycled");
  await Promise.all([a.ready, b.ready]);
  assert.equal(a.state, "subscribed");
  assert.equal(b.state, "subscribed");
  for (let minute = 1; minute <= 500; minute += 1) server.last.push(barUpdate(minute, true));
  await clock.advance(10);
  assert.equal(first.length, 500);
  assert.equal(second.length, 500);
  client.close();
});

test("recovered: false arrives on that subscription's subscribed event", async () => {
  const { clock, server, client, errors } = rig();
  server.script.frame = (socket, frame) => {
    if (frame.type !== "bars.subscribe") return answerAll(socket, frame);
    if (frame.payload["since"] === undefined) socket.reply(frame, subscribed(frame));
    else
      socket.reply(
        frame,
        subscribed(frame, [bar(5, true), bar(6, false)], { recovered: false }),
      );
  };
  const events: SubscribedEvent[] = [];
  const bars: number[] = [];
  const other: SubscribedEvent[] = [];
  const sub = client.subscribe("bars", { symbol: "BTCUSDT", resolution: "1" }, (u) => bars.push(u.time), {
    onSubscribed: (event) => events.push(event),
  });
  client.subscribe("quotes", { symbol: "EUR/USD" }, () => {}, {
    onSubscribed: (event) => other.push(event),
  });
  void client.connect();
  await clock.advance(10);
  server.last.push(barUpdate(1, true));
  server.last.push(barUpdate(2, false));
  await clock.advance(10);
  server.last.serverClose(1006);
  await clock.advance(1_000);
  assert.equal(server.opened.length, 2);
  const since = server.last.received.find((f) => f.type === "bars.subscribe")?.payload["since"];
  assert.equal(since, 2 * MINUTE);
  assert.deepEqual(
    events.map((e) => [e.recovered, e.resubscribed, e.bars.map((b) => b.time)]),
    [
      [true, false, []],
      [false, true, [5 * MINUTE, 6 * MINUTE]],
    ],
  );
  assert.deepEqual(
    other.map((e) => e.recovered),
    [true, true],
  );
  assert.deepEqual(bars, [MINUTE, 2 * MINUTE, 5 * MINUTE, 6 * MINUTE]);
  assert.equal(errors.length, 0, "a gap is the subscription's business, not onError's");
  assert.equal(sub.state, "subscribed");
  client.close();
});

test("since joins a backfill to the stream; unsubscribe ends the subscription", async () => {
  const { clock, server, client } = rig();
  server.script.frame = (socket, frame) => {
    if (frame.type !== "bars.subscribe") return answerAll(socket, frame);
    const since = frame.payload["since"] as number;
    socket.reply(frame, subscribed(frame, [bar(since / MINUTE, true), bar(since / MINUTE + 1, false)], { recovered: true }));
    socket.push(barUpdate(since / MINUTE + 1, false)); // already in the reply
    socket.push(barUpdate(since / MINUTE + 1, true));
  };
  void client.connect();
  await clock.advance(10);
  const got: [number, boolean][] = [];
  const snapshots: number[][] = [];
  const ended: string[] = [];
  const sub = client.subscribe(
    "bars",
    { symbol: "BTCUSDT", resolution: "1" },
    (u) => got.push([u.time / MINUTE, u.closed]),
    {
      since: 10 * MINUTE,
      onSnapshot: (bars) => snapshots.push(bars.map((b) => b.time / MINUTE)),
      onUnsubscribed: (event) => ended.push(event.reason),
    },
  );
  await clock.advance(10);
  assert.equal(server.last.received.find((f) => f.type === "bars.subscribe")?.payload["since"], 10 * MINUTE);
  assert.deepEqual(snapshots, [[10, 11]]);
  assert.deepEqual(got, [
    [11, false],
    [11, true],
  ]);
  sub.unsubscribe();
  sub(); // idempotent
  assert.equal(sub.state, "unsubscribed");
  assert.deepEqual(ended, ["client"]);
  await clock.advance(10);
  assert.equal(server.last.received.filter((f) => f.type === "bars.unsubscribe").length, 1);
  assert.throws(
    () => client.subscribe("bars", { symbol: "BTCUSDT", resolution: "1" }, () => {}, { since: 1, snapshot: 2 }),
    /cannot be combined/,
  );
  client.close();
});

test("a refusal ends the subscription with error and unsubscribed events", async () => {
  const { clock, server, client, errors } = rig();
  server.script.frame = (socket, frame) => {
    if (frame.type === "bars.subscribe")
      socket.push({
        type: "error",
        id: frame.id,
        payload: { code: "unknown_symbol", message: "unknown symbol 'NOPE'", request_type: "bars.subscribe" },
      });
    else answerAll(socket, frame);
  };
  void client.connect();
  const seen: string[] = [];
  const sub = client.subscribe("bars", { symbol: "NOPE", resolution: "1" }, () => {});
  sub.on("error", (event) => seen.push(`error ${event.code} ${event.willRetry}`));
  sub.on("unsubscribed", (event) => seen.push(`unsubscribed ${event.reason}`));
  await clock.advance(10);
  await assert.rejects(sub.ready, /unknown_symbol/);
  assert.deepEqual(seen, ["error unknown_symbol false", "unsubscribed refused"]);
  assert.equal(sub.state, "unsubscribed");
  assert.equal(errors.length, 0);
  assert.equal(client.state, "open");
  client.close();
});

test("close() resets the attempt counter", async () => {
  const { clock, server, client, disconnects } = rig();
  server.script.handshake = (socket) => {
    socket.accept();
    socket.serverClose(1013);
  };
  void client.connect();
  await clock.advance(10_000);
  client.close();
  disconnects.length = 0;
  void client.connect();
  await clock.advance(10);
  assert.equal(disconnects[0]?.delayMs, 250);
  client.close();
});

test("the close-code table is the contract's x-close-codes, as the Python client's is", () => {
  const document = JSON.parse(readFileSync(repoPath("docs", "asyncapi.json"), "utf8")) as {
    "x-close-codes": Record<string, unknown>;
  };
  assert.deepEqual({ ...CLOSE_CODES }, document["x-close-codes"]);
  const policy = (code: number) => CLOSE_CODES[code]?.retry;
  assert.deepEqual(
    [4404, 1009, 1007, 1008, 1013, 4008, 1001].map(policy),
    ["never", "never", "never", "growing", "growing", "growing", "immediate"],
  );
});

test("updates held while a backfill is pending are bounded and conflated", async () => {
  const { clock, server, client } = rig();
  let answer: (() => void) | undefined;
  server.script.frame = (socket, frame) => {
    if (frame.type !== "bars.subscribe") return answerAll(socket, frame);
    answer = () => socket.reply(frame, subscribed(frame, [bar(1, true), bar(2, true)]));
  };
  void client.connect();
  await clock.advance(10);
  const got: number[] = [];
  const recovered: boolean[] = [];
  client.subscribe("bars", { symbol: "BTCUSDT", resolution: "1" }, (u) => got.push(u.time / MINUTE), {
    snapshot: 2,
    onSubscribed: (event) => recovered.push(event.recovered),
  });
  await clock.advance(10);
  for (let minute = 3; minute < 3_003; minute += 1) {
    server.last.push(barUpdate(minute, false)); // conflated with the next one
    server.last.push(barUpdate(minute, true));
  }
  await clock.advance(10);
  answer?.();
  await clock.advance(10);
  // The snapshot, then the newest 1000 held closed bars (the oldest were dropped).
  assert.deepEqual(got.slice(0, 2), [1, 2]);
  assert.equal(got.length, 2 + 1_000);
  assert.equal(got.at(-1), 3_002);
  // ... and the subscription says so: bars are missing, reload the history.
  assert.deepEqual(recovered, [false]);
  client.close();
});

test("after a 403, connect() asks getToken() for a new token", async () => {
  const tokens = ["expired", "fresh"];
  const { clock, server, client, errors } = rig({ getToken: () => tokens.shift() ?? "none" });
  server.script.handshake = (socket) => {
    if (socket.protocols.includes("token.fresh")) socket.accept();
    else socket.refuse("Unexpected server response: 403");
  };
  const opening = client.connect();
  await clock.advance(60_000);
  await assert.rejects(opening, UnauthorizedError);
  assert.equal(server.attempts.length, 1);
  assert.equal(errors.length, 1);
  const again = client.connect();
  await clock.advance(10);
  await again;
  assert.equal(client.state, "open");
  assert.deepEqual(server.last.protocols, ["marketcast.v1", "token.fresh"]);
  client.close();
});

test("a live update in the same task as the resume reply does not hide the bars it recovers", async () => {
  // A WebSocket may dispatch several frames in one task, before the promise handling the
  // reply runs (undici's does); pushTogether does the same.
  const { clock, server, client } = rig();
  let resumes = 0;
  server.script.frame = (socket, frame) => {
    if (frame.type !== "bars.subscribe") return answerAll(socket, frame);
    if (frame.payload["since"] === undefined) {
      socket.reply(frame, subscribed(frame));
      socket.push(barUpdate(1, true));
      socket.push(barUpdate(2, false));
      return;
    }
    resumes += 1;
    // Bars 2 and 3 closed while the client was away; bar 4 is live, right behind the reply.
    const recovered = subscribed(frame, [bar(2, true), bar(3, true)]);
    const reply = { type: "bars.subscribe.response", id: frame.id, payload: recovered };
    socket.pushTogether(reply, barUpdate(4, false));
  };
  void client.connect();
  const closed: number[] = [];
  const all: number[] = [];
  client.subscribe("bars", { symbol: "BTCUSDT", resolution: "1" }, (u) => {
    all.push(u.time / MINUTE);
    if (u.closed) closed.push(u.time / MINUTE);
  });
  await clock.advance(10);
  server.last.serverClose(1001, "restart"); // planned: reconnect at once, resume with since
  await clock.advance(10);
  assert.equal(resumes, 1);
  assert.deepEqual(closed, [1, 2, 3]);
  assert.deepEqual(all, [1, 2, 2, 3, 4]);
  client.close();
});
