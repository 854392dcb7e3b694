/** The pure parts of reconnecting: backoff delays and candle de-duplication. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_BACKOFF, fullJitterDelay } from "../src/backoff.js";
import { BarSequencer } from "../src/bars.js";

test("full jitter: uniform below min(cap, base * 2^attempt)", () => {
  const options = { baseMs: 100, capMs: 1_000 };
  const top = () => 0.999_999;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 60, 5_000].map((attempt) => fullJitterDelay(attempt, options, top)),
    [99, 199, 399, 799, 999, 999, 999, 999],
  );
  assert.equal(
    fullJitterDelay(3, options, () => 0),
    0,
  );
  assert.equal(
    fullJitterDelay(3, options, () => 0.5),
    400,
  );
});

test("full jitter spreads clients out instead of sending them back together", () => {
  let seed = 42;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const delays = Array.from({ length: 1_000 }, () => fullJitterDelay(6, DEFAULT_BACKOFF, random));
  const ceiling = Math.min(DEFAULT_BACKOFF.capMs, DEFAULT_BACKOFF.baseMs * 2 ** 6);
  assert.ok(delays.every((d) => d >= 0 && d < ceiling));
  const buckets = new Set(delays.map((d) => Math.floor((d / ceiling) * 10)));
  assert.equal(buckets.size, 10, "delays should cover the whole range");
});

test("backoff settings and random() are checked", () => {
  assert.throws(
    () => fullJitterDelay(0, { baseMs: 0, capMs: 10 }, Math.random),
    /baseMs must be a positive/,
  );
  assert.throws(
    () => fullJitterDelay(0, { baseMs: 10, capMs: 5 }, Math.random),
    /capMs must be a number >= baseMs/,
  );
  assert.throws(
    () => fullJitterDelay(-1, DEFAULT_BACKOFF, Math.random),
    /attempt must be a non-negative integer/,
  );
  assert.throws(
    () => fullJitterDelay(0, DEFAULT_BACKOFF, () => 1),
    /random\(\) must return a number in \[0, 1\)/,
  );
});

const bar = (minute: number, closed: boolean) => ({ time: minute * 60_000, closed });

test("the sequencer passes a normal stream through", () => {
  const sequencer = new BarSequencer();
  const stream = [
    bar(1, false),
    bar(1, false),
    bar(1, true),
    bar(2, false),
    bar(2, true),
    bar(3, false),
  ];
  assert.deepEqual(
    stream.map((b) => sequencer.accept(b)),
    [true, true, true, true, true, true],
  );
  assert.equal(sequencer.resumeFrom, 3 * 60_000);
});

test("after a reconnect, the overlap is dropped and the open bar's final state comes through", () => {
  const sequencer = new BarSequencer();
  for (const b of [bar(1, true), bar(2, true), bar(3, false)]) sequencer.accept(b);
  assert.equal(sequencer.resumeFrom, 3 * 60_000);
  // The `since` reply: bar 3 (closed by now) and the ones missed, then live updates that
  // may repeat the reply's last bar.
  const replayed = [
    bar(2, true),
    bar(3, true),
    bar(4, true),
    bar(5, false),
    bar(5, false),
    bar(4, true),
  ];
  assert.deepEqual(
    replayed.map((b) => sequencer.accept(b)),
    [false, true, true, true, true, false],
  );
});

test("a closed bar is delivered once, and time never goes back", () => {
  const sequencer = new BarSequencer();
  assert.equal(sequencer.accept(bar(5, true)), true);
  assert.equal(sequencer.accept(bar(5, true)), false);
  assert.equal(sequencer.accept(bar(5, false)), false);
  assert.equal(sequencer.accept(bar(4, false)), false);
  assert.equal(sequencer.accept(bar(6, false)), true);
  assert.equal(sequencer.accept(bar(5, true)), false);
  assert.equal(new BarSequencer().resumeFrom, undefined);
});
