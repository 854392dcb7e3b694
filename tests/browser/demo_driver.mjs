// Drives the demo page in Debian's headless Chromium with playwright-core, for
// tests/browser/test_demo_page.py, which owns the server and makes every assertion.
//
// Why a separate process speaking JSON lines: the test restarts the server while the page
// stays open, so the two must take turns. The driver prints one JSON object per line on
// stdout ({"event": ...}); it reads one line on stdin ("restarted") when it printed
// {"event": "restart-now"}. It never downloads a browser: Chromium comes from
// /usr/bin/chromium (make setup installs Debian's package).
//
// Usage: node demo_driver.mjs '{"url": ..., "screenshot": ..., "profile": ..., ...}'

import { createRequire } from "node:module";
import { createInterface } from "node:readline";

const require = createRequire(new URL("../../frontend-types/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const config = JSON.parse(process.argv[2] ?? "{}");
const {
  url,
  screenshot,
  profile,
  minCandles = 100,
  timeoutMs = 20_000,
  restart = false,
  executablePath = "/usr/bin/chromium",
} = config;

// The flags this machine needs (closed network: no background requests at all).
const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function emit(event, data = {}) {
  process.stdout.write(JSON.stringify({ event, ...data }) + "\n");
}

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function main() {
  if (!url || !screenshot || !profile) throw new Error("config needs url, screenshot and profile");
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1200, height: 700 },
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const requests = [];
    const problems = [];
    page.on("request", (request) => requests.push(request.url()));
    page.on("websocket", (socket) => requests.push(socket.url()));
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error: ${message.text()}`);
    });
    const snapshot = (tail = 0) => page.evaluate((n) => window.marketcastDemo.snapshot(n), tail);
    const badge = () => page.getAttribute("#state", "data-state");

    await page.goto(url, { waitUntil: "load", timeout: timeoutMs });
    await page.waitForFunction(
      (min) => window.marketcastDemo !== undefined && window.marketcastDemo.snapshot(0).candles >= min,
      minCandles,
      { timeout: timeoutMs },
    );
    await page.waitForSelector('#state[data-state="open"]', { timeout: timeoutMs });
    // Follow the connection state from here on, to see the restart as the page saw it.
    await page.evaluate(() => {
      window.seenStates = [];
      window.marketcastDemo.client.onStateChange((state) => window.seenStates.push(state));
    });
    const before = await snapshot();
    await page.waitForFunction(
      (previous) => {
        const now = window.marketcastDemo.snapshot(0);
        return (
          now.liveUpdates > previous.liveUpdates &&
          JSON.stringify(now.last) !== JSON.stringify(previous.last)
        );
      },
      before,
      { timeout: timeoutMs },
    );
    const after = await snapshot();
    await page.screenshot({ path: screenshot });
    // The count and the text read together: at 60x a new bar may arrive between two reads.
    const shown = await page.evaluate(() => ({
      candles: window.marketcastDemo.snapshot(0).candles,
      text: document.querySelector("#last").textContent,
    }));
    emit("loaded", {
      before,
      after,
      state: await badge(),
      lastText: shown.text,
      lastTextCandles: shown.candles,
      status: await page.textContent("#status"),
      problems: [...problems],
      canvas: await page.evaluate(() => document.querySelector("#chart canvas") !== null),
    });

    if (restart) {
      emit("restart-now");
      const answer = await stdinLines.next();
      if (answer.done || answer.value.trim() !== "restarted") {
        throw new Error(`expected "restarted" on stdin, got ${JSON.stringify(answer.value)}`);
      }
      const resumedFrom = await snapshot();
      // Open again after having been away, and new live bars after that.
      await page.waitForFunction(
        () => window.seenStates.includes("reconnecting") && window.seenStates.at(-1) === "open",
        undefined,
        { timeout: timeoutMs },
      );
      const reopened = await snapshot();
      await page.waitForFunction(
        (previous) => {
          const now = window.marketcastDemo.snapshot(0);
          return now.liveUpdates > previous.liveUpdates && now.last.time > previous.last.time;
        },
        reopened,
        { timeout: timeoutMs },
      );
      emit("resumed", {
        resumedFrom,
        final: await snapshot(200),
        states: await page.evaluate(() => window.seenStates),
        state: await badge(),
      });
    }
    emit("done", { requests, problems });
  } finally {
    await context.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    emit("error", { message: String(error?.stack ?? error) });
    process.exit(1);
  },
);
