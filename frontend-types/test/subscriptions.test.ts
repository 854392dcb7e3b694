/**
 * Bars recovered from a snapshot or a `since` reply look exactly like live updates: a topic
 * subscribed with a resolution alias (`1D`) gets the canonical spelling (`D`) on both.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { barUpdate } from "../src/bars.js";
import { TopicEntry } from "../src/subscriptions.js";

const BAR = { time: 0, open: 1, high: 2, low: 0.5, close: 1.5, volume: 10, closed: true };

test("recovered bars carry the canonical resolution, as live updates do", () => {
  for (const [asked, canonical] of [
    ["1D", "D"],
    ["1W", "W"],
    ["1M", "M"],
    ["D", "D"],
    ["5", "5"],
  ] as const) {
    const entry = new TopicEntry("bars", "BTCUSDT", { resolution: asked }, "t");
    assert.equal(barUpdate(entry, BAR).resolution, canonical);
  }
});
