/**
 * Order books (`src/orderbook.ts`).
 *
 * First by hand: the pure `DiffBook` fed snapshots and diffs, `bookUpdate`'s checks, and
 * `OrderBook` / `LevelsBook` through the real client against a scripted fake server in simulated
 * time (test/support/fake.ts): the reply's book then diffs, a stale diff skipped, a gap reported
 * and resubscribed (unsubscribe, then subscribe) with backoff and a bound, resets, diffs that
 * arrive before the reply, a reconnect's renewal taken as a reset, a second book on one client.
 *
 * Then against a real `marketcast serve` (the simulator's books): a diff-mode book stays
 * continuous and equals, at the same `seq`, the book a second connection (and a second book on
 * the same connection) got as its snapshot; levels mode delivers `depth` levels, sorted; after
 * a server restart the renewal's book replaces the one held and the book goes on continuous.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  type BookChangeEvent,
  type BookErrorEvent,
  type BookGapEvent,
  type BookLevel,
  type BookResetEvent,
  bookUpdate,
  type ClientOptions,
  DiffBook,
  type DiffUpdate,
  LevelsBook,
  type LevelsChangeEvent,
  MarketcastClient,
  OrderBook,
  type OrderBookOptions,
  type OrderbookUpdatePayload,
  ProtocolViolation,
} from "../src/index.js";
import { FakeClock, FakeServer, type FakeSocket, type Frame } from "./support/fake.js";
import { FAST, type Server, startServer, waitFor } from "./support/server.js";

const SYMBOL = "BTCUSDT";
const DIFF_TOPIC = 'orderbook:{"mode":"diff","symbol":"BTCUSDT"}';
const LEVELS_TOPIC = 'orderbook:{"depth":10,"mode":"levels","symbol":"BTCUSDT"}';

type Levels = [number, number][];

/** An `orderbook.update` payload of the diff topic, from `prev` to `seq`. */
function diffPayload(prev: number, seq: number, bids: Levels = [], asks: Levels = []) {
  return { topic: DIFF_TOPIC, symbol: SYMBOL, mode: "diff", seq, prev_seq: prev, time: seq, bids, asks } as const;
}

function diff(prev: number, seq: number, bids: Levels = [], asks: Levels = []) {
  return { type: "orderbook.update", payload: diffPayload(prev, seq, bids, asks) };
}

/** A reset update: the whole book at `seq`. */
function reset(seq: number, bids: Levels, asks: Levels) {
  return {
    type: "orderbook.update",
    payload: { topic: DIFF_TOPIC, symbol: SYMBOL, mode: "diff", seq, prev_seq: null, reset: true, bids, asks } as const,
  };
}

/** A book of `count` levels a side around 100, its quantities marked with `seq`. */
function book(seq: number, count = 3): { seq: number; bids: Levels; asks: Levels } {
  return {
    seq,
    bids: Array.from({ length: count }, (_, i): [number, number] => [100 - i, seq + i]),
    asks: Array.from({ length: count }, (_, i): [number, number] => [101 + i, seq + i]),
  };
}

/** The reply to `frame` (an orderbook.subscribe) carrying `snapshot` (none when null). */
function bookReply(
  frame: Frame,
  snapshot: { seq: number; bids: readonly BookLevel[]; asks: readonly BookLevel[] } | null,
) {
  const topic = frame.payload["params"] !== undefined &&
    (frame.payload["params"] as { mode?: string }).mode === "levels" ? LEVELS_TOPIC : DIFF_TOPIC;
  return {
    type: "orderbook.subscribe.response",
    id: frame.id,
    payload: {
      status: "ok",
      symbol: SYMBOL,
      message: "subscribed",
      topic,
      ...(snapshot === null ? {} : { book: snapshot }),
    },
  };
}

/** The client against a fake server whose subscribes go to `subscribe` (pings and unsubscribes
 * are answered). */
function rig(subscribe: (socket: FakeSocket, frame: Frame) => void, options: ClientOptions = {}) {
  const clock = new FakeClock();
  const server = new FakeServer(clock);
  server.script.frame = (socket, frame) => {
    if (frame.type === "ping") socket.push({ type: "pong", id: frame.id, payload: { time: 0 } });
    else if (frame.type === "orderbook.subscribe") subscribe(socket, frame);
    else if (frame.type === "orderbook.unsubscribe")
      socket.reply(frame, { status: "ok", symbol: SYMBOL, message: "unsubscribed", topic: DIFF_TOPIC });
  };
  const client = new MarketcastClient("ws://fake/api/v1/ws", {
    WebSocket: server.WebSocket,
    timers: clock.timers,
    random: () => 0.5,
    pingIntervalMs: 0,
    ...options,
  });
  return { clock, server, client };
}

/** Everything an OrderBook reports; its options run it on `clock` when given. */
class Recorder {
  readonly changes: BookChangeEvent[] = [];
  readonly resets: BookResetEvent[] = [];
  readonly gaps: BookGapEvent[] = [];
  readonly errors: BookErrorEvent[] = [];
  readonly options: OrderBookOptions;

  constructor(clock?: FakeClock) {
    this.options = {
      onChange: (event) => void this.changes.push(event),
      onReset: (event) => void this.resets.push(event),
      onGap: (event) => void this.gaps.push(event),
      onError: (event) => void this.errors.push(event),
      random: () => 0.5,
      ...(clock === undefined ? {} : { timers: clock.timers }),
    };
  }
}

/** The frame types `socket` received, pings left out. */
function sent(socket: FakeSocket): string[] {
  return socket.received.filter((frame) => frame.type !== "ping").map((frame) => frame.type);
}

// ---- by hand -------------------------------------------------------------------------------

/** `diffPayload` as the narrowed type `DiffBook.apply` takes. */
function diffUpdate(prev: number, seq: number, bids: Levels = [], asks: Levels = []): DiffUpdate {
  const update = bookUpdate(diffPayload(prev, seq, bids, asks));
  assert.equal(update.mode, "diff");
  return update;
}

test("DiffBook: applies diffs, skips a stale one, detects a gap, and a reset replaces the book", () => {
  const held = new DiffBook();
  assert.equal(held.seq, undefined);
  assert.equal(held.apply(diffUpdate(1, 2)), "gap", "no book held: nothing to apply a diff to");
  held.replace({ seq: 10, time: 1, bids: [[100, 1], [99, 2]], asks: [[101, 1], [102, 3]] });
  assert.equal(held.seq, 10);

  // Quantity 0 removes a price; a new price goes in its place; an existing one changes.
  const outcome = held.apply(diffUpdate(10, 11, [[100, 0], [98.5, 4], [99, 2.5]], [[101.5, 1]]));
  assert.equal(outcome, "applied");
  assert.equal(held.seq, 11);
  assert.equal(held.time, 11);
  assert.deepEqual(held.bids(), [[99, 2.5], [98.5, 4]]);
  assert.deepEqual(held.asks(), [[101, 1], [101.5, 1], [102, 3]]);
  assert.deepEqual(held.bids(1), [[99, 2.5]]);
  assert.deepEqual(held.asks(2), [[101, 1], [101.5, 1]]);
  assert.deepEqual(held.size, { bids: 2, asks: 3 });
  const before = { bids: held.bids(), asks: held.asks() };

  // Already in the book (a repeat, or older): skipped, nothing changes.
  assert.equal(held.apply(diffUpdate(10, 11, [[50, 1]])), "stale");
  assert.equal(held.apply(diffUpdate(9, 10, [[50, 1]])), "stale");
  // Does not continue seq 11: a gap; nothing changes either.
  assert.equal(held.apply(diffUpdate(12, 13, [[50, 1]])), "gap");
  assert.deepEqual({ bids: held.bids(), asks: held.asks() }, before);
  assert.equal(held.seq, 11);

  // A reset replaces the whole book, whatever its seq (a rejoined upstream may number anew).
  const update = bookUpdate(reset(5, [[90, 1]], [[91, 2]]).payload);
  assert.ok(update.mode === "diff" && update.reset);
  assert.equal(held.apply(update), "reset");
  assert.equal(held.seq, 5);
  assert.deepEqual([held.bids(), held.asks()], [[[90, 1]], [[91, 2]]]);
  assert.equal(held.apply(diffUpdate(5, 6, [[89, 1]])), "applied");

  held.clear();
  assert.equal(held.seq, undefined);
  assert.deepEqual(held.bids(), []);
});

test("DiffBook keeps each side best first, whatever order levels come in", () => {
  const held = new DiffBook();
  held.replace({ seq: 0, time: undefined, bids: [], asks: [] });
  let state = 7;
  const next = () => (state = (state * 48_271) % 2_147_483_647);
  const expected = { bids: new Map<number, number>(), asks: new Map<number, number>() };
  for (let seq = 1; seq <= 300; seq += 1) {
    const bids: Levels = [];
    const asks: Levels = [];
    for (let i = 0; i < 5; i += 1) {
      const quantity = next() % 4; // 0 removes
      const bid: [number, number] = [1000 - (next() % 200) / 4, quantity];
      const ask: [number, number] = [1001 + (next() % 200) / 4, (quantity + 1) % 4];
      bids.push(bid);
      asks.push(ask);
    }
    assert.equal(held.apply(diffUpdate(seq - 1, seq, bids, asks)), "applied");
    for (const [side, levels] of [["bids", bids], ["asks", asks]] as const) {
      for (const [price, quantity] of levels) {
        if (quantity === 0) expected[side].delete(price);
        else expected[side].set(price, quantity);
      }
    }
  }
  const sorted = (side: Map<number, number>, descending: boolean) =>
    [...side].sort(([a], [b]) => (descending ? b - a : a - b));
  assert.deepEqual(held.bids(), sorted(expected.bids, true));
  assert.deepEqual(held.asks(), sorted(expected.asks, false));
  assert.ok(held.size.bids > 20 && held.size.asks > 20, JSON.stringify(held.size));
});

test("bookUpdate narrows by mode and refuses frames the contract does not allow", () => {
  const levels = bookUpdate({
    topic: LEVELS_TOPIC, symbol: SYMBOL, mode: "levels", depth: 10, seq: 3, bids: [[1, 2]], asks: [[3, 4]],
  });
  assert.ok(levels.mode === "levels");
  assert.equal(levels.depth, 10);
  assert.equal("prev_seq" in levels, false);
  const resetUpdate = bookUpdate(reset(4, [], []).payload);
  assert.ok(resetUpdate.mode === "diff");
  assert.deepEqual([resetUpdate.prev_seq, resetUpdate.reset], [null, true]);

  const bad: OrderbookUpdatePayload[] = [
    { ...diffPayload(1, 2), bids: [["1", 2]] }, // a price as a string
    { ...diffPayload(1, 2), asks: [[1]] as unknown as [unknown, unknown][] },
    { ...diffPayload(1, 2), bids: [[1, -2]] },
    { ...diffPayload(1, 2), prev_seq: null }, // a diff that is no reset names its prev_seq
    { topic: LEVELS_TOPIC, symbol: SYMBOL, mode: "levels", seq: 3, bids: [], asks: [] }, // no depth
  ];
  for (const payload of bad) assert.throws(() => bookUpdate(payload), ProtocolViolation, JSON.stringify(payload));
});

// ---- OrderBook and LevelsBook against a scripted server ------------------------------------

test("OrderBook: subscribes in diff mode, holds the reply's book, applies diffs, skips a stale one", async () => {
  const { clock, server, client } = rig((socket, frame) => {
    socket.push(bookReply(frame, book(100)));
    socket.push(diff(100, 101, [[100, 0], [99.5, 7]]));
    socket.push(diff(99, 100, [[1, 1]])); // already in the reply's book
    socket.push(diff(101, 102, [], [[101, 9]]));
  });
  void client.connect();
  const seen = new Recorder(clock);
  const ob = new OrderBook(client, SYMBOL, seen.options);
  assert.equal(ob.state, "syncing");
  assert.equal(ob.topic, DIFF_TOPIC);
  await clock.advance(20);
  await ob.ready;

  const [subscribe] = server.last.received.filter((frame) => frame.type === "orderbook.subscribe");
  assert.deepEqual(subscribe?.payload, { symbol: SYMBOL, params: { mode: "diff" } });
  assert.equal(ob.state, "live");
  assert.equal(ob.seq, 102);
  assert.deepEqual(ob.bids(), [[99.5, 7], [99, 101], [98, 102]]);
  assert.deepEqual(ob.asks(2), [[101, 9], [102, 101]]);
  assert.deepEqual(seen.resets, [{ reason: "subscribed", seq: 100 }]);
  assert.deepEqual(
    seen.changes.map((change) => [change.kind, change.seq]),
    [["reset", 100], ["diff", 101], ["diff", 102]],
  );
  assert.deepEqual(seen.changes[1]?.bids, [[100, 0], [99.5, 7]], "a diff's change is its levels");
  assert.deepEqual([seen.gaps, seen.errors], [[], []]);

  ob.close();
  ob.close(); // idempotent
  assert.equal(ob.state, "closed");
  await clock.advance(10);
  assert.deepEqual(sent(server.last), ["orderbook.subscribe", "orderbook.unsubscribe"]);
});

test("a gap is reported and resubscribed at once (unsubscribe, subscribe); the fresh book replaces the old", async () => {
  let subscribes = 0;
  const { clock, server, client } = rig((socket, frame) => {
    subscribes += 1;
    if (subscribes === 1) {
      socket.push(bookReply(frame, book(100)));
      socket.push(diff(100, 101));
      socket.push(diff(105, 106, [[1, 1]])); // 101..105 missed
      socket.push(diff(106, 107, [[2, 2]])); // continues the gap, not the book: ignored
    } else {
      socket.push(bookReply(frame, book(200)));
      socket.push(diff(200, 201, [[99, 0]]));
    }
  });
  void client.connect();
  const seen = new Recorder(clock);
  const ob = new OrderBook(client, SYMBOL, seen.options);
  await clock.advance(20);

  assert.deepEqual(seen.gaps, [
    { heldSeq: 101, prevSeq: 105, seq: 106, attempt: 1, willResync: true, delayMs: 0 },
  ]);
  assert.deepEqual(sent(server.last), [
    "orderbook.subscribe",
    "orderbook.unsubscribe",
    "orderbook.subscribe",
  ]);
  assert.deepEqual(seen.resets, [
    { reason: "subscribed", seq: 100 },
    { reason: "resynced", seq: 200 },
  ]);
  assert.equal(ob.seq, 201);
  assert.deepEqual(ob.bids(), [[100, 200], [98, 202]]);
  assert.equal(ob.state, "live");
  assert.ok(!ob.bids().some(([price]) => price < 50), "a level of the stream after the gap");
  ob.close();
});

test("gaps in a row back off with the client's full jitter and give up after maxResyncs", async () => {
  const times: number[] = [];
  const { clock, server, client } = rig((socket, frame) => {
    times.push(clock.now);
    socket.push(bookReply(frame, book(100)));
    socket.push(diff(300, 301)); // never continues the book
  });
  void client.connect();
  const seen = new Recorder(clock);
  const ob = new OrderBook(client, SYMBOL, {
    ...seen.options,
    maxResyncs: 2,
    backoff: { baseMs: 1_000, capMs: 8_000 },
  });
  await clock.advance(5_000);

  assert.deepEqual(
    seen.gaps.map((gap) => [gap.attempt, gap.willResync, gap.delayMs]),
    [[1, true, 0], [2, true, 500], [3, false, undefined]],
  );
  assert.equal(times.length, 3, "the first subscribe and two resubscribes");
  assert.ok((times[2] ?? 0) - (times[1] ?? 0) >= 500, `resubscribed too soon: ${times.join(",")}`);
  assert.equal(ob.state, "failed");
  assert.deepEqual(seen.errors.map((error) => [error.code, error.willRetry]), [["too_many_gaps", false]]);
  assert.equal(sent(server.last).at(-1), "orderbook.unsubscribe", "a failed book stays unsubscribed");

  ob.resync(); // starts over, gaps counted from zero: the first resubscribe is immediate again
  assert.equal(ob.state, "syncing");
  await clock.advance(10);
  assert.equal(times.length, 5);
  assert.deepEqual(
    seen.gaps.slice(3).map((gap) => [gap.attempt, gap.willResync, gap.delayMs]),
    [[1, true, 0], [2, true, 500]],
  );
  ob.close();
});

test("gaps count from zero again once a fresh book stayed continuous for stableAfterMs", async () => {
  let subscribes = 0;
  const { clock, server, client } = rig((socket, frame) => {
    subscribes += 1;
    socket.push(bookReply(frame, book(100 * subscribes)));
  });
  void client.connect();
  const seen = new Recorder(clock);
  const ob = new OrderBook(client, SYMBOL, {
    ...seen.options,
    maxResyncs: 1,
    stableAfterMs: 1_000,
  });
  await clock.advance(20);
  server.last.push(diff(500, 501)); // a gap: the one resync allowed
  await clock.advance(20);
  assert.equal(ob.seq, 200);
  await clock.advance(1_500); // the fresh book stayed continuous: the gap is forgotten
  server.last.push(diff(900, 901));
  await clock.advance(20);
  assert.equal(ob.seq, 300);
  assert.equal(ob.state, "live");
  server.last.push(diff(900, 901)); // right after a resync: counted, and over the bound
  await clock.advance(20);
  assert.deepEqual(
    seen.gaps.map((gap) => [gap.attempt, gap.willResync]),
    [[1, true], [1, true], [2, false]],
  );
  assert.equal(ob.state, "failed");
  ob.close();
});

test("a null book waits for the reset update; a later reset replaces the book (upstream)", async () => {
  const { clock, server, client } = rig((socket, frame) => socket.push(bookReply(frame, null)));
  void client.connect();
  const seen = new Recorder(clock);
  const ob = new OrderBook(client, SYMBOL, seen.options);
  let ready = false;
  void ob.ready.then(() => (ready = true));
  await clock.advance(20);
  assert.deepEqual([ob.seq, ob.state, ready, seen.changes.length], [undefined, "syncing", false, 0]);

  server.last.push(reset(50, [[10, 1]], [[11, 1]]));
  server.last.push(diff(50, 51, [[9, 2]]));
  await clock.advance(20);
  assert.deepEqual([ob.seq, ob.state, ready], [51, "live", true]);
  assert.deepEqual(ob.bids(), [[10, 1], [9, 2]]);
  server.last.push(reset(10, [[20, 1]], [[21, 1]]));
  await clock.advance(20);
  assert.deepEqual(seen.resets, [
    { reason: "subscribed", seq: 50 },
    { reason: "upstream", seq: 10 },
  ]);
  assert.deepEqual([ob.bids(), ob.asks(), ob.seq], [[[20, 1]], [[21, 1]], 10]);
  assert.deepEqual(seen.gaps, []);
  ob.close();
});

test("a malformed diff is reported (invalid_book) and handled like a gap", async () => {
  let subscribes = 0;
  const { clock, client } = rig((socket, frame) => {
    subscribes += 1;
    socket.push(bookReply(frame, book(100 * subscribes)));
    if (subscribes === 1) socket.push(diff(100, 101, [["x", 1] as unknown as [number, number]]));
  });
  void client.connect();
  const seen = new Recorder(clock);
  const ob = new OrderBook(client, SYMBOL, seen.options);
  await clock.advance(20);
  assert.deepEqual(seen.errors.map((error) => [error.code, error.willRetry]), [["invalid_book", true]]);
  assert.ok(seen.errors[0]?.error instanceof ProtocolViolation);
  assert.equal(seen.gaps.length, 1);
  assert.deepEqual([ob.seq, ob.state], [200, "live"]);
  ob.close();
});

test("after a reconnect the renewal's book replaces the one held, even with a lower seq", async () => {
  let subscribes = 0;
  const { clock, server, client } = rig((socket, frame) => {
    subscribes += 1;
    if (subscribes === 1) {
      socket.push(bookReply(frame, book(100)));
      socket.push(diff(100, 101, [[1, 1]]));
    } else {
      // A restarted server: a new book, numbered anew.
      socket.push(bookReply(frame, book(7)));
      socket.push(diff(7, 8, [[98, 0]]));
    }
  });
  void client.connect();
  const seen = new Recorder(clock);
  const ob = new OrderBook(client, SYMBOL, seen.options);
  await clock.advance(20);
  assert.equal(ob.seq, 101);

  server.last.serverClose(1012);
  await clock.advance(5);
  assert.equal(client.state, "reconnecting");
  assert.equal(ob.state, "syncing", "a book that may be missing diffs is not live");
  assert.equal(ob.seq, 101, "the last book stays readable meanwhile");
  await clock.advance(1_000);

  assert.equal(server.opened.length, 2);
  assert.deepEqual(seen.resets, [
    { reason: "subscribed", seq: 100 },
    { reason: "reconnected", seq: 7 },
  ]);
  assert.deepEqual([ob.seq, ob.state], [8, "live"]);
  assert.deepEqual(ob.bids(), [[100, 7], [99, 8]]);
  assert.deepEqual(seen.gaps, []);
  assert.deepEqual(sent(server.last), ["orderbook.subscribe"], "renewed by the client, not by the book");
  ob.close();
});

test("diffs that arrive before a reply are applied after its book, the ones it contains skipped", async () => {
  // The book of the script below at each seq: 100 as book(100), then one change per diff.
  const diffs: Record<number, { bids: Levels; asks: Levels }> = {
    101: { bids: [[97, 5]], asks: [] },
    102: { bids: [], asks: [[101, 0]] },
    103: { bids: [[100, 1]], asks: [] },
    104: { bids: [], asks: [[104, 4]] },
  };
  const at = (seq: number) => {
    const held = new DiffBook();
    held.replace({ ...book(100), time: undefined });
    for (let s = 101; s <= seq; s += 1) held.apply(diffUpdate(s - 1, s, diffs[s]?.bids, diffs[s]?.asks));
    return { seq, time: seq, bids: held.bids(), asks: held.asks() };
  };
  const push = (socket: FakeSocket, seq: number) =>
    socket.push(diff(seq - 1, seq, diffs[seq]?.bids, diffs[seq]?.asks));
  let subscribes = 0;
  const { clock, server, client } = rig((socket, frame) => {
    subscribes += 1;
    if (subscribes === 1) {
      // Frames read in one chunk with the reply: the client handles the reply first.
      socket.pushTogether(bookReply(frame, book(100)), diff(99, 100), diff(100, 101, diffs[101]?.bids, []));
    } else {
      // A second book on the same client joins the topic: the live diffs reach it before its
      // own reply (the book at 102), which the server sends after them.
      push(socket, 102);
      push(socket, 103);
      socket.push(bookReply(frame, at(102)));
      push(socket, 104);
    }
  });
  void client.connect();
  const first = new Recorder(clock);
  const one = new OrderBook(client, SYMBOL, first.options);
  await clock.advance(20);
  assert.equal(one.seq, 101);
  const second = new Recorder(clock);
  const two = new OrderBook(client, SYMBOL, second.options);
  await clock.advance(20);
  await two.ready;

  assert.deepEqual(
    server.last.received.filter((frame) => frame.type === "orderbook.subscribe").length,
    2,
    "the second book asked for a book of its own, not the first reply's",
  );
  const expected = at(104);
  for (const ob of [one, two]) {
    assert.deepEqual([ob.seq, ob.bids(), ob.asks()], [104, expected.bids, expected.asks]);
    assert.equal(ob.state, "live");
  }
  assert.deepEqual(second.resets, [{ reason: "subscribed", seq: 102 }]);
  assert.deepEqual(second.changes.map((change) => change.seq), [102, 103, 104]);
  assert.deepEqual(first.changes.map((change) => change.seq), [100, 101, 102, 103, 104]);
  assert.deepEqual([first.gaps, second.gaps], [[], []]);

  // The first book leaving keeps the topic subscribed for the second.
  one.close();
  await clock.advance(10);
  assert.ok(!sent(server.last).includes("orderbook.unsubscribe"));
  push(server.last, 105);
  await clock.advance(10);
  assert.equal(two.seq, 105);
  two.close();
});

test("LevelsBook: subscribes in levels mode; the reply's levels, then each update's", async () => {
  const levels = (seq: number) => ({
    type: "orderbook.update",
    payload: { topic: LEVELS_TOPIC, symbol: SYMBOL, mode: "levels", depth: 10, ...book(seq, 10) },
  });
  const { clock, server, client } = rig((socket, frame) => {
    socket.push(bookReply(frame, book(100, 10)));
    socket.push(levels(101));
  });
  void client.connect();
  const changes: LevelsChangeEvent[] = [];
  const ladder = new LevelsBook(client, SYMBOL, { depth: 10, onChange: (event) => void changes.push(event) });
  assert.equal(ladder.topic, LEVELS_TOPIC);
  await clock.advance(20);
  await ladder.ready;
  const [subscribe] = server.last.received.filter((frame) => frame.type === "orderbook.subscribe");
  assert.deepEqual(subscribe?.payload, { symbol: SYMBOL, params: { mode: "levels", depth: 10 } });
  assert.deepEqual(changes.map((change) => change.seq), [100, 101]);
  assert.deepEqual([ladder.seq, ladder.state, ladder.depth], [101, "live", 10]);
  assert.deepEqual(ladder.bids(2), [[100, 101], [99, 102]]);
  assert.deepEqual(ladder.asks().length, 10);
  assert.throws(() => new LevelsBook(client, SYMBOL, { depth: 7 as 5 }), RangeError);
  ladder.close();
  assert.equal(ladder.state, "closed");
});

// ---- against a real server -----------------------------------------------------------------

/** The simulator's books move on every tick: 20 ticks a simulated second at 60x. */
const SETTINGS = { sim_speed: "60", sim_tick_interval: "0.05", stream_grace_period: "0.5" };

interface Seen {
  readonly bids: BookLevel[];
  readonly asks: BookLevel[];
}

/** An OrderBook that remembers its whole book at every seq it held, and checks each diff. */
class Watched {
  readonly book: OrderBook;
  readonly seen = new Recorder();
  readonly at = new Map<number, Seen>();
  readonly seqs: number[] = [];
  diffs = 0;

  constructor(client: MarketcastClient, symbol: string) {
    this.book = new OrderBook(client, symbol, {
      ...this.seen.options,
      onChange: (change) => {
        this.seen.changes.push(change);
        if (change.kind === "diff") {
          this.diffs += 1;
          assert.ok(change.seq > (this.seqs.at(-1) ?? -Infinity), "a diff that went back");
        }
        this.seqs.push(change.seq);
        this.at.set(change.seq, { bids: this.book.bids(), asks: this.book.asks() });
      },
    });
  }

  /** The book held now is sorted best first on both sides, and not crossed. */
  assertSane(): void {
    const [bids, asks] = [this.book.bids(), this.book.asks()];
    assert.ok(bids.length > 0 && asks.length > 0, "an empty side");
    for (let i = 1; i < bids.length; i += 1) assert.ok((bids[i]?.[0] ?? 0) < (bids[i - 1]?.[0] ?? 0));
    for (let i = 1; i < asks.length; i += 1) assert.ok((asks[i]?.[0] ?? 0) > (asks[i - 1]?.[0] ?? 0));
    assert.ok([...bids, ...asks].every(([, quantity]) => quantity > 0));
    assert.ok((bids[0]?.[0] ?? 0) < (asks[0]?.[0] ?? 0), "a crossed book");
  }
}

test("order books against one running server", async (t) => {
  const server = await startServer(SETTINGS);
  t.after(() => server.stop());

  await t.test("a diff-mode book stays continuous and equals a later snapshot at its seq", async () => {
    const first = new MarketcastClient(server.url, FAST);
    const second = new MarketcastClient(server.url, FAST);
    try {
      await first.connect();
      const a = new Watched(first, SYMBOL);
      await a.book.ready;
      assert.equal(a.book.state, "live");
      await waitFor(() => a.diffs >= 30, 20_000, "30 diffs");
      a.assertSane();

      // A second connection: its snapshot is the book at some seq the first one held too.
      await second.connect();
      const b = new Watched(second, SYMBOL);
      await b.book.ready;
      const theirs = b.seen.resets[0]?.seq ?? -1;
      const snapshot = b.at.get(theirs);
      assert.ok(snapshot !== undefined && theirs > (a.seen.resets[0]?.seq ?? Infinity));
      await waitFor(() => (a.book.seq ?? 0) >= theirs, 10_000, "the first book to reach the snapshot");
      assert.deepEqual(a.at.get(theirs), snapshot, `the two books differ at seq ${theirs}`);

      // A second book on the first connection asks for a book of its own ("already
      // subscribed"): the same again.
      const c = new Watched(first, SYMBOL);
      await c.book.ready;
      const joined = c.seen.resets[0]?.seq ?? -1;
      await waitFor(() => (a.book.seq ?? 0) >= joined, 10_000, "the first book to reach the join");
      assert.deepEqual(a.at.get(joined), c.at.get(joined), `the joined book differs at seq ${joined}`);

      // All three go on, continuous, and agree at every seq they all held.
      const target = (a.book.seq ?? 0) + 1;
      await waitFor(
        () => [a, b, c].every((w) => (w.book.seq ?? 0) > target + 10 && w.diffs >= 30),
        20_000,
        "more diffs on every book",
      );
      let compared = 0;
      for (const seq of b.seqs) {
        if (seq <= theirs || !a.at.has(seq)) continue;
        assert.deepEqual(a.at.get(seq), b.at.get(seq), `the books differ at seq ${seq}`);
        if (c.at.has(seq)) assert.deepEqual(c.at.get(seq), b.at.get(seq));
        compared += 1;
      }
      assert.ok(compared >= 10, `only ${compared} seqs compared`);
      for (const w of [a, b, c]) {
        assert.deepEqual(w.seen.gaps, [], "a gap");
        assert.deepEqual(w.seen.errors, []);
        assert.deepEqual(w.seen.resets.map((r) => r.reason), ["subscribed"]);
        assert.equal(w.book.state, "live");
        w.assertSane();
      }
      for (const w of [a, b, c]) w.book.close();
    } finally {
      first.close();
      second.close();
    }
  });

  await t.test("levels mode delivers the best depth levels, sorted and uncrossed", async () => {
    const client = new MarketcastClient(server.url, FAST);
    try {
      await client.connect();
      const changes: LevelsChangeEvent[] = [];
      const ladder = new LevelsBook(client, "ETHUSDT", {
        depth: 10,
        onChange: (event) => void changes.push(event),
      });
      // The route through the client directly, typed: levels updates carry depth, no prev_seq.
      const raw: { depth: number | null | undefined; prev: unknown; bids: number }[] = [];
      const sub = client.subscribe("orderbook", { symbol: "ETHUSDT", mode: "levels", depth: 5 }, (update) =>
        raw.push({ depth: update.depth, prev: update.prev_seq, bids: update.bids.length }),
      );
      const reply = await sub.ready;
      assert.equal(reply.payload.topic, 'orderbook:{"depth":5,"mode":"levels","symbol":"ETHUSDT"}');
      await ladder.ready;
      await waitFor(() => changes.length >= 4 && raw.length >= 3, 10_000, "levels updates");
      for (const change of changes) {
        assert.ok(change.bids.length === 10 && change.asks.length === 10, JSON.stringify(change));
        const [bids, asks] = [change.bids.map(([p]) => p), change.asks.map(([p]) => p)];
        assert.deepEqual(bids, [...bids].sort((x, y) => y - x), "bids not highest first");
        assert.deepEqual(asks, [...asks].sort((x, y) => x - y), "asks not lowest first");
        assert.ok((bids[0] ?? 0) < (asks[0] ?? 0), "a crossed book");
        assert.ok([...change.bids, ...change.asks].every(([, quantity]) => quantity > 0));
      }
      const seqs = changes.map((change) => change.seq);
      assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
      assert.deepEqual(ladder.bids(), changes.at(-1)?.bids);
      assert.ok(raw.every((update) => update.depth === 5 && update.prev === undefined && update.bids === 5));
      assert.equal(ladder.state, "live");
      ladder.close();
      sub.unsubscribe();
    } finally {
      client.close();
    }
  });
});

test("after a server restart the book takes the renewal's as a reset and goes on continuous", async (t) => {
  const servers: Server[] = [];
  t.after(async () => {
    for (const server of servers) await server.kill();
  });
  const first = await startServer(SETTINGS);
  servers.push(first);
  const client = new MarketcastClient(first.url, FAST);
  try {
    await client.connect();
    const a = new Watched(client, "ETHUSDT");
    await a.book.ready;
    await waitFor(() => a.diffs >= 5, 10_000, "diffs from the first server");
    await first.kill();
    await waitFor(() => client.state === "reconnecting", 5_000, "the client to notice the drop");
    assert.equal(a.book.state, "syncing");
    servers.push(await startServer(SETTINGS, first.port));
    await waitFor(() => a.seen.resets.length === 2, 15_000, "the renewal's book");
    const renewed = a.diffs;
    await waitFor(() => a.diffs >= renewed + 5, 10_000, "diffs from the second server");
    assert.deepEqual(a.seen.resets.map((r) => r.reason), ["subscribed", "reconnected"]);
    assert.deepEqual(a.seen.gaps, []);
    assert.equal(a.book.state, "live");
    a.assertSane();
    a.book.close();
  } finally {
    client.close();
  }
});
