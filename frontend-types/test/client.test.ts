/**
 * The client against a real marketcast server on 127.0.0.1 (the simulator feed at 120x: a
 * 1-minute bar closes every half second), through the platform's WebSocket (Node 20 runs these
 * tests with --experimental-websocket, the same WHATWG WebSocket browsers have).
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  type BarsUpdatePayload,
  buildTopic,
  type ConnectionState,
  MarketcastClient,
  type QuotesUpdatePayload,
  RequestError,
  type SubscriptionErrorEvent,
  TimeoutError,
} from "../src/index.js";
import { FAST, type Server, sleep, startServer, waitFor } from "./support/server.js";

const MINUTE = 60_000;
const SETTINGS = { sim_speed: "120", sim_tick_interval: "0.05", stream_grace_period: "0.5" };

/** Records what a bars subscription delivered and checks the closed bars' continuity. */
class ClosedBars {
  readonly closed: number[] = [];
  readonly all: BarsUpdatePayload[] = [];
  readonly onUpdate = (bar: BarsUpdatePayload): void => {
    this.all.push(bar);
    if (bar.closed) this.closed.push(bar.time);
  };

  assertContinuous(): void {
    assert.equal(
      new Set(this.closed).size,
      this.closed.length,
      `a closed bar came twice: ${this.closed.join(",")}`,
    );
    for (let i = 1; i < this.closed.length; i += 1) {
      const [before, after] = [this.closed[i - 1] ?? 0, this.closed[i] ?? 0];
      assert.equal(
        after - before,
        MINUTE,
        `a gap between ${new Date(before).toISOString()} and ${new Date(after).toISOString()}`,
      );
    }
    for (let i = 1; i < this.all.length; i += 1) {
      assert.ok(
        (this.all[i]?.time ?? 0) >= (this.all[i - 1]?.time ?? 0),
        "a bar older than the one before",
      );
    }
  }
}

function recordStates(client: MarketcastClient): ConnectionState[] {
  const states: ConnectionState[] = [client.state];
  client.onStateChange((state) => states.push(state));
  return states;
}

test("against one running server", async (t) => {
  const server = await startServer(SETTINGS);
  t.after(() => server.stop());

  await t.test("typed updates arrive, snapshots first, and unsubscribing stops them", async () => {
    const client = new MarketcastClient(server.url, FAST);
    const states = recordStates(client);
    try {
      await client.connect();
      assert.deepEqual(states, ["closed", "connecting", "open"]);
      const snapshots: number[][] = [];
      const bars = new ClosedBars();
      const stopBars = client.subscribe(
        "bars",
        { symbol: "BTCUSDT", resolution: "1" },
        bars.onUpdate,
        {
          snapshot: 5,
          onSnapshot: (snapshot) => snapshots.push(snapshot.map((b) => b.time)),
        },
      );
      const quotes: QuotesUpdatePayload[] = [];
      client.subscribe("quotes", { symbol: "EUR/USD" }, (quote) => quotes.push(quote));
      const reply = await stopBars.ready;
      assert.equal(reply.type, "bars.subscribe.response");
      assert.equal(reply.payload.topic, buildTopic("bars", { symbol: "BTCUSDT", resolution: "1" }));
      assert.equal(stopBars.topic, reply.payload.topic);
      assert.equal(snapshots.length, 1);
      const snapshot = snapshots[0] ?? [];
      assert.equal(snapshot.length, 5);
      assert.deepEqual(
        snapshot,
        [...snapshot].sort((a, b) => a - b),
      );

      await waitFor(() => bars.closed.length >= 2 && quotes.length >= 3, 10_000, "bars and quotes");
      assert.ok(bars.all.every((b) => b.topic === reply.payload.topic && b.resolution === "1"));
      assert.ok(
        (bars.all[0]?.time ?? 0) >= (snapshot.at(-1) ?? Infinity),
        "an update older than the snapshot",
      );
      assert.ok(quotes.every((q) => q.symbol === "EUR/USD" && q.bid < q.ask));
      bars.assertContinuous();

      // The server's own list of this connection's topics, in subscription order and typed:
      // `params` narrows by `route`.
      const listed = await client.listSubscriptions();
      assert.deepEqual(
        listed.map((entry) => [entry.route, entry.topic]),
        [
          ["bars", reply.payload.topic],
          ["quotes", buildTopic("quotes", { symbol: "EUR/USD" })],
        ],
      );
      const first = listed[0];
      assert.ok(first?.route === "bars");
      assert.equal(first.params.resolution, "1");

      // A second listener on the same topic shares the subscription.
      const second = new ClosedBars();
      const stopSecond = client.subscribe(
        "bars",
        { symbol: "BTCUSDT", resolution: "1" },
        second.onUpdate,
      );
      assert.equal((await stopSecond.ready).payload.status, "ok");
      // A third joins with a snapshot and no onSnapshot: the snapshot comes through onUpdate,
      // before any live update, and the stream goes on from there.
      const third = new ClosedBars();
      const stopThird = client.subscribe(
        "bars",
        { symbol: "BTCUSDT", resolution: "1" },
        third.onUpdate,
        { snapshot: 3 },
      );
      await stopThird.ready;
      await waitFor(
        () => second.closed.length >= 1 && third.closed.length >= 4,
        10_000,
        "the later listeners' bars",
      );
      assert.ok(third.all.slice(0, 2).every((b) => b.closed && b.topic === reply.payload.topic));
      third.assertContinuous();
      assert.ok((third.all[2]?.time ?? 0) > (third.all[1]?.time ?? Infinity));

      stopBars();
      stopSecond();
      stopSecond(); // idempotent
      stopThird();
      await sleep(300); // the unsubscribe reply, and anything already in flight, arrive
      const seen = [bars, second, third].map((listener) => listener.all.length);
      await sleep(700);
      assert.deepEqual(
        [bars, second, third].map((listener) => listener.all.length),
        seen,
        "updates after unsubscribing",
      );
      assert.ok(quotes.length > 3, "quotes stopped although still subscribed");
    } finally {
      client.close();
    }
    assert.equal(client.state, "closed");
  });

  await t.test("requests resolve with their replies and reject with typed errors", async () => {
    const errors: SubscriptionErrorEvent[] = [];
    const client = new MarketcastClient(server.url, FAST);
    try {
      await assert.rejects(client.ping(), /call connect\(\) first/);
      const opening = client.connect();
      const early = client.ping(); // queued until the connection opens
      assert.equal(client.state, "connecting");
      await opening;
      assert.equal((await early).type, "pong");

      const pongAgain = await client.ping();
      assert.equal(pongAgain.type, "pong");
      assert.ok(pongAgain.payload.time > 1_600_000_000_000);

      await assert.rejects(
        client.request("bars.subscribe", { symbol: "DOGEUSDT", params: { resolution: "1" } }),
        (error: unknown) =>
          error instanceof RequestError &&
          error.code === "unknown_symbol" &&
          error.requestType === "bars.subscribe",
      );
      const refused = client.subscribe(
        "bars",
        { symbol: "NOPE", resolution: "5" },
        () => assert.fail("no updates"),
        {
          onError: (error) => errors.push(error),
        },
      );
      await assert.rejects(
        refused.ready,
        (error: unknown) => error instanceof RequestError && error.code === "unknown_symbol",
      );
      assert.equal(errors.length, 1);
      // The connection stays usable after refusals.
      assert.equal((await client.ping()).type, "pong");
    } finally {
      client.close();
    }
  });

  await t.test(
    "a frozen server is detected by ping, and the stream resumes without a gap",
    async () => {
      const client = new MarketcastClient(server.url, FAST);
      const states = recordStates(client);
      const bars = new ClosedBars();
      try {
        await client.connect();
        await client.subscribe("bars", { symbol: "ETHUSDT", resolution: "1" }, bars.onUpdate).ready;
        await waitFor(() => bars.closed.length >= 2, 10_000, "closed bars before the freeze");
        server.process.kill("SIGSTOP");
        try {
          await assert.rejects(client.ping({ timeoutMs: 100 }), TimeoutError);
          await waitFor(
            () => client.state === "reconnecting",
            5_000,
            "the ping timeout to drop the connection",
          );
          await sleep(800); // reconnect attempts hang in the handshake and time out meanwhile
          assert.equal(client.state, "reconnecting");
        } finally {
          server.process.kill("SIGCONT");
        }
        const resumedFrom = bars.closed.length;
        await waitFor(() => client.state === "open", 10_000, "the client to reconnect");
        await waitFor(
          () => bars.closed.length >= resumedFrom + 3,
          10_000,
          "closed bars after the thaw",
        );
        bars.assertContinuous();
        assert.deepEqual(states.slice(0, 4), ["closed", "connecting", "open", "reconnecting"]);
        assert.equal(states.at(-1), "open");
      } finally {
        client.close();
      }
    },
  );
});

test("after a server restart the client reconnects by itself; closed bars have no gap and no duplicate", async (t) => {
  // Both servers share one simulated clock, as two runs against a real exchange would.
  const anchor = String(Date.now() / 1000);
  const servers: Server[] = [];
  t.after(async () => {
    for (const server of servers) await server.kill();
  });
  const first = await startServer({ ...SETTINGS, sim_anchor: anchor });
  servers.push(first);
  // The injected random source draws each reconnect delay (full jitter over [0, ceiling)).
  const draws: number[] = [];
  const random = () => {
    draws.push(0.5);
    return 0.5;
  };
  const client = new MarketcastClient(first.url, { ...FAST, random });
  const states = recordStates(client);
  const bars = new ClosedBars();
  const quotes: QuotesUpdatePayload[] = [];
  try {
    await client.connect();
    client.subscribe("bars", { symbol: "ETHUSDT", resolution: "1" }, bars.onUpdate);
    client.subscribe("quotes", { symbol: "ETHUSDT" }, (quote) => quotes.push(quote));
    await waitFor(() => bars.closed.length >= 3, 10_000, "closed bars from the first server");

    await first.kill();
    await waitFor(() => client.state === "reconnecting", 5_000, "the client to notice the drop");
    const beforeRestart = {
      closed: bars.closed.length,
      last: bars.closed.at(-1) ?? 0,
      quotes: quotes.length,
    };
    await sleep(1_000); // bars keep closing upstream while nobody serves them

    servers.push(await startServer({ ...SETTINGS, sim_anchor: anchor }, first.port));
    await waitFor(() => client.state === "open", 10_000, "the client to reconnect");
    // The `since` reply comes as one frame, so its bars are all delivered in one go.
    await waitFor(
      () => bars.closed.length > beforeRestart.closed,
      10_000,
      "the bars missed while down",
    );
    const recovered = bars.closed.length - beforeRestart.closed;
    await waitFor(
      () => bars.closed.length >= beforeRestart.closed + recovered + 3,
      10_000,
      "live bars after those",
    );
    await waitFor(() => quotes.length > beforeRestart.quotes, 5_000, "quotes after the restart");

    bars.assertContinuous();
    // The down time (1 s plus a server start, at 120x) spans several bars that closed while
    // no server ran: only the `since` reply can have delivered them.
    assert.ok(
      recovered >= 2,
      `only ${recovered} closed bars recovered after ${beforeRestart.last}`,
    );
    assert.deepEqual(states.slice(0, 4), ["closed", "connecting", "open", "reconnecting"]);
    assert.equal(states.at(-1), "open");
    assert.ok(draws.length >= 1, "the reconnect delay did not come from the injected random");
  } finally {
    client.close();
  }
});

test("with tokens configured, a client with a token subscribes and receives updates", async (t) => {
  const server = await startServer({ ...SETTINGS, auth_tokens: "s3cret,other" });
  t.after(() => server.stop());
  const client = new MarketcastClient(server.url, { ...FAST, token: "s3cret" });
  const bars = new ClosedBars();
  try {
    await client.connect();
    const subscription = client.subscribe(
      "bars",
      { symbol: "BTCUSDT", resolution: "1" },
      bars.onUpdate,
      { snapshot: 3 },
    );
    await subscription.ready;
    assert.equal(subscription.state, "subscribed");
    await waitFor(() => bars.closed.length >= 5, 10_000, "closed bars with a token");
    bars.assertContinuous();
  } finally {
    client.close();
  }

  // A wrong token: Node's WebSocket hides the 403 as browsers do, so the client sees failed
  // handshakes, reports them, and keeps trying with backoff; with the right token it connects.
  const errors: string[] = [];
  const wrong = new MarketcastClient(server.url, {
    ...FAST,
    token: "wrong",
    onError: (error) => errors.push(error.name),
  });
  try {
    void wrong.connect();
    await waitFor(
      () => errors.includes("HandshakeError") || errors.includes("UnauthorizedError"),
      10_000,
      "the refused handshakes to be reported",
    );
    assert.notEqual(wrong.state, "open");
    wrong.setToken("other");
    await waitFor(() => wrong.state === "open", 10_000, "the client to connect with a good token");
  } finally {
    wrong.close();
  }
});
