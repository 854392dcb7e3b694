// Drives the demo page in Debian's headless Chromium with playwright-core, for
// tests/browser/test_demo_page.py, which owns the server and makes every assertion.
//
// Why a separate process speaking JSON lines: the test restarts the server while the page
// stays open, so the two must take turns. The driver prints one JSON object per line on
// stdout ({"event": ...}); it reads one line on stdin ("restarted") when it printed
// {"event": "restart-now"}. It never downloads a browser: Chromium comes from
// /usr/bin/chromium (make setup installs Debian's package).
//
// Events, in order: "loaded" (the chart, the order book ladder and the trades tape, live),
// "restart-now" and "resumed" (with `restart`), "switched" (with `switchSymbol`: the ladder and
// the tape follow another symbol), "done" (every request made, every problem seen).
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
  tapeRows = 30,
  timeoutMs = 20_000,
  restart = false,
  switchSymbol = false,
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
    // The tape as the page shows it: the rows in the DOM (id, side, cell texts, price colour),
    // next to what the page's own tape object says (symbol, live trades, starts).
    const tape = () =>
      page.evaluate(() => ({
        ...window.marketcastDemo.tape(),
        title: document.querySelector("#tape-title").textContent,
        shown: [...document.querySelectorAll("#trades tr")].map((row) => ({
          id: Number(row.dataset.id),
          side: row.dataset.side,
          cells: [...row.cells].map((cell) => cell.textContent),
          color: getComputedStyle(row.querySelector(".price")).color,
        })),
      }));
    // The ladder as the page shows it: its rows in DOM order (side, price, cell texts, where
    // they are drawn, price colour, bar length), next to what the page's ladder object says.
    const ladder = () =>
      page.evaluate(() => ({
        ...window.marketcastDemo.ladder(),
        title: document.querySelector("#book-title").textContent,
        rows: [...document.querySelectorAll("#book tbody tr")].map((row) => {
          const box = row.getBoundingClientRect();
          return {
            side: row.dataset.side,
            price: Number(row.dataset.price),
            cells: [...row.cells].map((cell) => cell.textContent),
            top: box.top,
            bottom: box.bottom,
            color: getComputedStyle(row.querySelector(".price")).color,
            fill: row.style.getPropertyValue("--fill"),
          };
        }),
      }));
    /**
     * Wait until the ladder shows levels of `symbol` (when given) on both sides, received after
     * the first `updates` (any when undefined).
     */
    const ladderMovesOn = ({ updates, symbol }) =>
      page.waitForFunction(
        ([previous, wanted]) => {
          const now = window.marketcastDemo.ladder();
          if (wanted !== null && now.symbol !== wanted) return false;
          return now.asks > 0 && now.bids > 0 && now.updates > previous;
        },
        [updates ?? 0, symbol ?? null],
        { timeout: timeoutMs },
      );
    /**
     * Wait until the tape's newest row is a trade newer than `id` (any trade when undefined),
     * shown for `symbol` when given, with at least `rows` rows.
     */
    const tapeMovesOn = ({ id, symbol, rows = 1 }) =>
      page.waitForFunction(
        ([previous, wanted, minRows]) => {
          const now = window.marketcastDemo.tape();
          if (wanted !== null && now.symbol !== wanted) return false;
          return now.rows >= minRows && (previous === null || now.newestId > previous);
        },
        [id ?? null, symbol ?? null, rows],
        { timeout: timeoutMs },
      );

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
    // The trades tape beside the chart: rows appear (its snapshot, then live trades), then a
    // newer trade comes on top, until the tape is full.
    await tapeMovesOn({});
    const tapeFirst = await tape();
    await tapeMovesOn({ id: tapeFirst.newestId, rows: tapeRows });
    const tapeLater = await tape();
    // The ladder beside the chart: levels on both sides, then newer ones replacing them.
    await ladderMovesOn({});
    const ladderFirst = await ladder();
    await ladderMovesOn({ updates: ladderFirst.updates });
    const ladderLater = await ladder();
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
      symbol: await page.inputValue("#symbol"),
      tape: { first: tapeFirst, later: tapeLater },
      ladder: { first: ladderFirst, later: ladderLater },
    });

    if (restart) {
      emit("restart-now");
      const answer = await stdinLines.next();
      if (answer.done || answer.value.trim() !== "restarted") {
        throw new Error(`expected "restarted" on stdin, got ${JSON.stringify(answer.value)}`);
      }
      const resumedFrom = await snapshot();
      const tapeFrom = await tape();
      const ladderFrom = await ladder();
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
      const final = await snapshot(200);
      // The tape goes on too: with trades after the last one it showed, or started afresh
      // (when the restarted server numbers its trades anew, as the simulator does); either
      // way with live trades again, then a newer one on top.
      // Twice the usual bound: after the restart the tape may need one more round trip (a
      // fresh subscription), on a machine whose cores are busy with other tests.
      await page
        .waitForFunction(
          (from) => {
            const now = window.marketcastDemo.tape();
            const live = now.rows > 0 && now.liveTrades > 0;
            // A tape that had already started over (empty) when this began counts as well.
            const newer = from.newestId === undefined || now.newestId > from.newestId;
            return live && (now.starts > from.starts || newer);
          },
          tapeFrom,
          { timeout: 2 * timeoutMs },
        )
        .catch(async (error) => {
          // Say where the tape stood, so that a failure can be told from a slow machine.
          const where = {
            before: tapeFrom,
            now: await tape(),
            note: await page.textContent("#tape-note"),
            states: await page.evaluate(() => window.seenStates),
          };
          throw new Error(`${error.message}\ntape: ${JSON.stringify(where)}`);
        });
      const tapeResumed = await tape();
      await tapeMovesOn({ id: tapeResumed.newestId, symbol: tapeResumed.symbol });
      // The ladder's levels subscription was renewed by the client: new levels come again.
      await ladderMovesOn({ updates: ladderFrom.updates, symbol: ladderFrom.symbol });
      emit("resumed", {
        resumedFrom,
        final,
        states: await page.evaluate(() => window.seenStates),
        state: await badge(),
        tape: { from: tapeFrom, resumed: tapeResumed, later: await tape() },
        ladder: { from: ladderFrom, resumed: await ladder() },
      });
    }

    if (switchSymbol) {
      // Another symbol: the tape follows it, with that symbol's trades, and so does the ladder.
      const current = await page.inputValue("#symbol");
      const options = await page.$$eval("#symbol option", (list) => list.map((o) => o.value));
      const other = options.find((value) => value !== current);
      if (other === undefined) throw new Error(`the page offers no symbol but ${current}`);
      const from = await tape();
      const ladderFrom = await ladder();
      await page.selectOption("#symbol", other);
      await tapeMovesOn({ symbol: other });
      const first = await tape();
      await tapeMovesOn({ id: first.newestId, symbol: other });
      await ladderMovesOn({ symbol: other });
      emit("switched", {
        symbol: other,
        from,
        first,
        later: await tape(),
        ladder: { from: ladderFrom, switched: await ladder() },
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
