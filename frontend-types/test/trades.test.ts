/**
 * Trades through the client, against a scripted fake server in simulated time
 * (test/support/fake.ts): a snapshot joined to the live stream, continuity by trade id across
 * reconnects (the overlap dropped, a gap reported), updates that arrive before the subscribe
 * reply is handled, and the sequencer's rule on its own.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  type ClientOptions,
  type MarketcastError,
  MarketcastClient,
  type SubscribedEvent,
  type TradesUpdatePayload,
} from "../src/index.js";
import { TradeSequencer } from "../src/trades.js";
import {
  BTC_TRADES_TOPIC,
  FakeClock,
  FakeServer,
  type FakeSocket,
  type Frame,
  ids,
  trade,
  tradesReply,
  tradeUpdate,
} from "./support/fake.js";

const KEY = { symbol: "BTCUSDT" } as const;

interface Rig {
  clock: FakeClock;
  server: FakeServer;
  client: MarketcastClient;
  errors: MarketcastError[];
}

function rig(options: ClientOptions = {}): Rig {
  const clock = new FakeClock();
  const server = new FakeServer(clock);
  const errors: MarketcastError[] = [];
  const client = new MarketcastClient("ws://fake/api/v1/ws", {
    WebSocket: server.WebSocket,
    timers: clock.timers,
    random: () => 0.5,
    pingIntervalMs: 0,
    onError: (error) => errors.push(error),
    ...options,
  });
  return { clock, server, client, errors };
}

/** Answer pings and unsubscribes; subscribes go to `subscribe`. */
function serve(server: FakeServer, subscribe: (socket: FakeSocket, frame: Frame) => void): void {
  server.script.frame = (socket, frame) => {
    if (frame.type === "ping") socket.push({ type: "pong", id: frame.id, payload: { time: 0 } });
    else if (frame.type === "trades.subscribe") subscribe(socket, frame);
    else socket.reply(frame, { status: "ok", symbol: "BTCUSDT", message: "unsubscribed", topic: BTC_TRADES_TOPIC });
  };
}

/** The `trades.subscribe` frames socket `socket` received. */
function subscribes(socket: FakeSocket): Frame[] {
  return socket.received.filter((frame) => frame.type === "trades.subscribe");
}

/** Records what a trades subscription delivered. */
class Tape {
  readonly ids: number[] = [];
  readonly updates: TradesUpdatePayload[] = [];
  readonly events: SubscribedEvent[] = [];
  readonly onUpdate = (update: TradesUpdatePayload): void => {
    this.updates.push(update);
    this.ids.push(update.id);
  };
  readonly onSubscribed = (event: SubscribedEvent): void => void this.events.push(event);

  /** Every id once, in increasing order. */
  assertInOrder(): void {
    for (let i = 1; i < this.ids.length; i += 1)
      assert.ok((this.ids[i] ?? 0) > (this.ids[i - 1] ?? 0), `not in id order: ${this.ids.join(",")}`);
  }
}

test("the trade sequencer: ids only go up; a resume snapshot joins when it reaches back", () => {
  const sequencer = new TradeSequencer();
  assert.equal(sequencer.resume(), undefined, "nothing delivered: nothing to resume");
  assert.equal(sequencer.joins([]), true);
  assert.deepEqual(
    [5, 6, 6, 4, 7, 10].map((id) => sequencer.accept({ id })),
    [true, true, false, false, true, true],
  );
  assert.equal(sequencer.lastId, 10);
  assert.deepEqual(sequencer.resume(), { snapshot: 500 });
  const joins = (first: number, last: number) =>
    sequencer.joins(ids(first, last - first + 1).map((id) => ({ id })));
  assert.equal(joins(8, 15), true, "overlaps the last id delivered");
  assert.equal(joins(11, 15), true, "starts right after it: no id fits in between");
  assert.equal(joins(10, 10), true, "nothing new, nothing missing");
  assert.equal(joins(12, 511), false, "more than the snapshot could bring back");
  assert.equal(joins(1, 9), false, "the server is behind: restarted, numbering anew");
  assert.equal(sequencer.joins([]), false, "the server kept nothing it sent: it cannot vouch");
});

test("a snapshot goes to onSnapshot, then the live trades follow it", async () => {
  const { clock, server, client, errors } = rig();
  serve(server, (socket, frame) => {
    socket.push(tradesReply(frame, [1, 2, 3]));
    socket.push(tradeUpdate(4));
    socket.push(tradeUpdate(5));
  });
  void client.connect();
  const tape = new Tape();
  const snapshots: number[][] = [];
  const sub = client.subscribe("trades", KEY, tape.onUpdate, {
    snapshot: 3,
    onSnapshot: (trades) => snapshots.push(trades.map((t) => t.id)),
    onSubscribed: tape.onSubscribed,
  });
  await clock.advance(10);
  assert.equal(subscribes(server.last)[0]?.payload["snapshot"], 3);
  assert.deepEqual(snapshots, [[1, 2, 3]]);
  assert.deepEqual(tape.ids, [4, 5]);
  assert.deepEqual(
    tape.events.map((e) => [e.recovered, e.resubscribed, e.trades.map((t) => t.id), e.bars]),
    [[true, false, [1, 2, 3], []]],
  );
  const reply = await sub.ready;
  assert.equal(reply.type, "trades.subscribe.response");
  assert.equal(sub.topic, BTC_TRADES_TOPIC);
  assert.equal(errors.length, 0);
  client.close();
});

test("without onSnapshot the snapshot's trades come through onUpdate, shaped like live ones", async () => {
  const { clock, server, client } = rig();
  serve(server, (socket, frame) => {
    socket.push(tradesReply(frame, [7, 8]));
    socket.push(tradeUpdate(9));
  });
  void client.connect();
  const tape = new Tape();
  client.subscribe("trades", KEY, tape.onUpdate, { snapshot: 2 });
  await clock.advance(10);
  assert.deepEqual(tape.ids, [7, 8, 9]);
  // A snapshot trade carries what a live update carries: the topic and the symbol too.
  assert.deepEqual(tape.updates[0], { topic: BTC_TRADES_TOPIC, symbol: "BTCUSDT", ...trade(7) });
  assert.deepEqual(Object.keys(tape.updates[0] ?? {}).sort(), Object.keys(tape.updates[2] ?? {}).sort());
  client.close();
});

test("a reconnect resumes with a snapshot; the overlap is dropped, nothing is missed", async () => {
  const { clock, server, client, errors } = rig();
  serve(server, (socket, frame) => {
    if (socket === server.sockets[0]) {
      socket.push(tradesReply(frame)); // no snapshot asked, none sent
      for (const id of ids(1, 5)) socket.push(tradeUpdate(id));
      return;
    }
    // Trades 6..8 happened while the client was away; the newest 500 (here 3..8) overlap
    // what it had. The server then streams from 9 on.
    socket.push(tradesReply(frame, ids(3, 6)));
    socket.push(tradeUpdate(9));
    socket.push(tradeUpdate(10));
  });
  void client.connect();
  const tape = new Tape();
  const sub = client.subscribe("trades", KEY, tape.onUpdate, { onSubscribed: tape.onSubscribed });
  await clock.advance(10);
  assert.deepEqual(tape.ids, [1, 2, 3, 4, 5]);
  assert.equal(subscribes(server.last)[0]?.payload["snapshot"], undefined);
  server.last.serverClose(1006);
  await clock.advance(2_000);
  assert.equal(server.opened.length, 2);
  assert.equal(subscribes(server.last)[0]?.payload["snapshot"], 500, "resumes with the most kept");
  assert.deepEqual(tape.ids, ids(1, 10));
  tape.assertInOrder();
  assert.deepEqual(
    tape.events.map((e) => [e.recovered, e.resubscribed, e.trades.map((t) => t.id)]),
    [
      [true, false, []],
      [true, true, [6, 7, 8]],
    ],
  );
  assert.equal(sub.state, "subscribed");
  assert.equal(errors.length, 0);
  client.close();
});

test("more trades missed than the snapshot holds: reported on the subscribed event", async () => {
  const { clock, server, client, errors } = rig();
  serve(server, (socket, frame) => {
    if (socket === server.sockets[0]) {
      socket.push(tradesReply(frame, [1, 2]));
      return;
    }
    // 600 trades came meanwhile (3..602); the server keeps the newest 500: 103..602.
    socket.push(tradesReply(frame, ids(103, 500)));
    socket.push(tradeUpdate(603));
  });
  void client.connect();
  const tape = new Tape();
  client.subscribe("trades", KEY, tape.onUpdate, { snapshot: 2, onSubscribed: tape.onSubscribed });
  await clock.advance(10);
  server.last.serverClose(1001, "restart");
  await clock.advance(10);
  assert.deepEqual(
    tape.events.map((e) => [e.recovered, e.resubscribed, e.trades.length]),
    [
      [true, false, 2],
      [false, true, 500],
    ],
  );
  // What could be recovered still comes, in order: the snapshot's 500, then the live stream.
  assert.deepEqual(tape.ids, [1, 2, ...ids(103, 501)]);
  assert.equal(errors.length, 0, "a gap is the subscription's business, not onError's");
  client.close();
});

test("a server that numbers its trades anew: reported, never delivered out of order", async () => {
  const { clock, server, client } = rig();
  serve(server, (socket, frame) => {
    if (socket === server.sockets[0]) {
      socket.push(tradesReply(frame, undefined));
      for (const id of ids(1, 40)) socket.push(tradeUpdate(id));
      return;
    }
    // A restarted simulator: its ids start from 1 again.
    socket.push(tradesReply(frame, frame.payload["snapshot"] === undefined ? undefined : [1, 2, 3]));
    socket.push(tradeUpdate(4));
  });
  void client.connect();
  const tape = new Tape();
  const sub = client.subscribe("trades", KEY, tape.onUpdate, { onSubscribed: tape.onSubscribed });
  await clock.advance(10);
  server.last.serverClose(1001, "restart");
  await clock.advance(10);
  assert.deepEqual(
    tape.events.map((e) => e.recovered),
    [true, false],
  );
  assert.deepEqual(tape.ids, ids(1, 40), "ids at or below the last one delivered stay dropped");
  // The application starts a fresh tape by subscribing anew.
  sub.unsubscribe();
  const fresh = new Tape();
  client.subscribe("trades", KEY, fresh.onUpdate, { snapshot: 3 });
  await clock.advance(10);
  assert.deepEqual(fresh.ids, [1, 2, 3, 4]);
  client.close();
});

test("trades in the same task as the subscribe reply are delivered after its snapshot", async () => {
  // A WebSocket may dispatch several frames in one task, before the promise handling the
  // reply runs; pushTogether does the same.
  const { clock, server, client } = rig();
  let resumes = 0;
  serve(server, (socket, frame) => {
    if (socket === server.sockets[0]) {
      socket.pushTogether(tradesReply(frame, [1, 2]), tradeUpdate(3), tradeUpdate(4));
      return;
    }
    resumes += 1;
    // Trades 5 and 6 came while the client was away; 7 and 8 are live, right behind the reply.
    socket.pushTogether(tradesReply(frame, ids(1, 6)), tradeUpdate(7), tradeUpdate(8));
  });
  void client.connect();
  const tape = new Tape();
  const snapshots: number[][] = [];
  client.subscribe("trades", KEY, tape.onUpdate, {
    snapshot: 2,
    onSnapshot: (trades) => snapshots.push(trades.map((t) => t.id)),
    onSubscribed: tape.onSubscribed,
  });
  await clock.advance(10);
  assert.deepEqual(snapshots, [[1, 2]]);
  assert.deepEqual(tape.ids, [3, 4]);
  server.last.serverClose(1001, "restart");
  await clock.advance(10);
  assert.equal(resumes, 1);
  assert.deepEqual(tape.ids, [3, 4, 5, 6, 7, 8]);
  assert.deepEqual(
    tape.events.map((e) => [e.recovered, e.trades.map((t) => t.id)]),
    [
      [true, [1, 2]],
      [true, [5, 6]],
    ],
  );
  client.close();
});

test("a listener joining later gets its own snapshot; trades held meanwhile are not repeated", async () => {
  const { clock, server, client } = rig();
  let answerLater: (() => void) | undefined;
  serve(server, (socket, frame) => {
    if (frame.payload["snapshot"] === undefined) {
      socket.push(tradesReply(frame));
      for (const id of ids(1, 3)) socket.push(tradeUpdate(id));
      return;
    }
    // "already subscribed": the snapshot as the store holds it when the reply is made.
    answerLater = () => socket.push(tradesReply(frame, [2, 3, 4]));
  });
  void client.connect();
  const first = new Tape();
  client.subscribe("trades", KEY, first.onUpdate);
  await clock.advance(10);
  const second = new Tape();
  const snapshots: number[][] = [];
  client.subscribe("trades", KEY, second.onUpdate, {
    snapshot: 3,
    onSnapshot: (trades) => snapshots.push(trades.map((t) => t.id)),
  });
  await clock.advance(10);
  server.last.push(tradeUpdate(4)); // before the second listener's snapshot: held for it
  await clock.advance(10);
  answerLater?.();
  await clock.advance(10);
  server.last.push(tradeUpdate(5));
  await clock.advance(10);
  assert.deepEqual(first.ids, [1, 2, 3, 4, 5]);
  assert.deepEqual(snapshots, [[2, 3, 4]]);
  assert.deepEqual(second.ids, [5], "4 came in its snapshot, so the held 4 is dropped");
  assert.equal(subscribes(server.last).length, 2, "one server subscription, one more snapshot");
  client.close();
});

test("trades options are checked up front; quotes are unchanged", async () => {
  const { clock, server, client } = rig();
  serve(server, (socket, frame) => socket.push(tradesReply(frame, [])));
  assert.throws(() => client.subscribe("trades", KEY, () => {}, { snapshot: 501 }), /from 0 to 500/);
  assert.throws(() => client.subscribe("trades", KEY, () => {}, { snapshot: 1.5 }), /integer/);
  assert.throws(
    // A JavaScript caller can pass what the types refuse.
    () => client.subscribe("trades", KEY, () => {}, { since: 0 } as never),
    /trades subscriptions take no since/,
  );
  assert.throws(
    () => client.subscribe("bars", { symbol: "X", resolution: "1" }, () => {}, { snapshot: 1_001 }),
    /from 0 to 1000/,
  );
  // Nothing was registered by the refused calls.
  void client.connect();
  await clock.advance(10);
  assert.equal(subscribes(server.last).length, 0);
  client.close();
});
