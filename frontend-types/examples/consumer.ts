/**
 * An application that uses @marketcast/frontend-types as installed from npm: it imports the
 * package by name only, so it compiles and runs exactly as a user's code does.
 * `scripts/check_ts_package.sh` installs the packed tarball into an empty project, compiles this
 * file with `tsc --strict` and runs it against a real server.
 *
 * It connects, pings, subscribes to one candle stream with a snapshot, waits for a few bars to
 * close, checks what the client promises (bar times never go back, each closed bar comes once),
 * prints one summary line and exits 0; any error or a timeout exits 1.
 *
 *   node consumer.js [url] [closed bars to wait for] [timeout ms]
 *
 * Node 22+ has a global WebSocket; Node 20 needs `node --experimental-websocket consumer.js`
 * (or pass a WebSocket class, e.g. the `ws` package's, as the `WebSocket` option).
 */

import {
  type BarsUpdatePayload,
  buildTopic,
  connect,
  type ConnectionState,
  RequestError,
  type TopicKey,
} from "@marketcast/frontend-types";

const url = process.argv[2] ?? "ws://127.0.0.1:8000/api/v1/ws";
const wantClosed = Number(process.argv[3] ?? "3");
const timeoutMs = Number(process.argv[4] ?? "30000");

const key: TopicKey<"bars"> = { symbol: "BTCUSDT", resolution: "1" };
// The key is typed from the API contract: a resolution the server does not know fails to
// compile. (The check compiles this file: if the types ever became `any`, this line would fail.)
// @ts-expect-error -- "7" is not a resolution of the contract
const _notAResolution: TopicKey<"bars"> = { symbol: "BTCUSDT", resolution: "7" };

const states: ConnectionState[] = [];
let snapshotBars = 0;
let updates = 0;
const closedTimes: number[] = [];
let last: BarsUpdatePayload | undefined;

const client = connect(url, {
  requestTimeoutMs: 5_000,
  onError: (error) => console.error(`consumer: client error: ${error.message}`),
});
client.onStateChange((state) => states.push(state));

const timer = setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);

let closedEnough: () => void = () => {};
const done = new Promise<void>((resolve) => {
  closedEnough = resolve;
});

function onBar(bar: BarsUpdatePayload): void {
  updates += 1;
  if (last !== undefined && bar.time < last.time) {
    fail(new Error(`bar time went back: ${bar.time} after ${last.time}`));
  }
  if (bar.closed && !bar.stale) {
    if (closedTimes.includes(bar.time)) fail(new Error(`closed bar ${bar.time} delivered twice`));
    closedTimes.push(bar.time);
    if (closedTimes.length >= wantClosed) closedEnough();
  }
  last = bar;
}

function fail(error: unknown): never {
  const message = error instanceof RequestError ? `${error.code}: ${error.message}` : String(error);
  console.error(`consumer: FAILED: ${message}`);
  client.close();
  process.exit(1);
}

async function main(): Promise<void> {
  await client.whenOpen();
  const pong = await client.ping();
  const subscription = client.subscribe("bars", key, onBar, {
    snapshot: 5,
    onSnapshot: (bars) => {
      snapshotBars = bars.length;
    },
    onError: fail,
  });
  const reply = await subscription.ready;
  // The topic the client computes (the same as buildTopic's) is the server's, byte for byte.
  const topic = buildTopic("bars", { symbol: key.symbol, resolution: key.resolution });
  if (reply.payload.topic !== topic || subscription.topic !== topic) {
    fail(new Error(`topic mismatch: server ${reply.payload.topic}, client ${topic}`));
  }
  await done;
  subscription();
  clearTimeout(timer);
  client.close();
  const summary = {
    topic: reply.payload.topic,
    pongTime: pong.payload.time,
    snapshotBars,
    updates,
    closedBars: closedTimes.length,
    lastClose: last?.close,
    states,
  };
  console.log(`consumer summary: ${JSON.stringify(summary)}`);
}

main().catch(fail);
