/**
 * The demo page: pick a symbol and a resolution, see its candles, watch them move, and the
 * symbol's trades go by on a tape beside the chart.
 *
 * History comes from REST (`/api/v1/market-data/history`), live bars from the WebSocket API
 * through the package's own typed client, which reconnects after a drop or a server restart
 * and asks for the bars it missed (`since`), so the chart goes on without a gap. The stream
 * joins the REST backfill with `since` = the open time of its newest bar: the server sends
 * every bar from there on, so bars that closed between the two requests are not lost and
 * nothing is guessed. When the server says bars are missing (`recovered: false`), the chart
 * reloads its history.
 *
 * The tape (`tape.ts`) subscribes to the symbol's `trades` with a snapshot of its rows, so it
 * is full at once; the client keeps it continuous by trade id across reconnects. When trades
 * are missing after one (more than the server keeps came meanwhile, or a restarted server
 * numbers its trades anew), the tape starts over with a fresh snapshot. It follows the symbol,
 * not the resolution.
 *
 * The depth ladder above the tape (`ladder.ts`) shows the symbol's best 10 asks and bids: a
 * `LevelsBook` (the order book in `levels` mode at depth 10), whose every update replaces the
 * levels shown; the client renews it after a reconnect like any subscription. It follows the
 * symbol too.
 */

import {
  connect,
  type ConnectionState,
  LevelsBook,
  type Resolution,
} from "@marketcast/frontend-types";
import { fetchHistory, fetchSymbols, type SymbolEntry } from "./api.js";
import { ChartView, library } from "./charting.js";
import { DepthLadder, LEVELS } from "./ladder.js";
import { ROWS, TradeTape } from "./tape.js";

/** Bars of REST history shown at first (the server keeps up to 1000 per key). */
const HISTORY_BARS = 1000;
/** Bars of WebSocket snapshot when REST history had none to join with `since`. */
const BRIDGE_BARS = 10;

const RESOLUTION_LABELS: Readonly<Record<string, string>> = {
  "1": "1 min",
  "3": "3 min",
  "5": "5 min",
  "15": "15 min",
  "30": "30 min",
  "60": "1 hour",
  "120": "2 hours",
  "240": "4 hours",
  D: "1 day",
  W: "1 week",
  M: "1 month",
};

const STATE_TEXT: Readonly<Record<ConnectionState, string>> = {
  connecting: "connecting",
  open: "live",
  reconnecting: "reconnecting",
  failed: "stopped",
  closed: "closed",
};

function element<T extends HTMLElement>(id: string, kind: new () => T): T {
  const found = document.getElementById(id);
  if (!(found instanceof kind)) throw new Error(`the page has no <${kind.name}> #${id}`);
  return found;
}

/** Show `text` in the page's status line (the footer). */
function status(text: string, level: "info" | "error" = "info"): void {
  const line = document.getElementById("status");
  if (line === null) return;
  line.textContent = text;
  line.dataset["level"] = level;
}

function webSocketUrl(base: URL): string {
  const url = new URL("api/v1/ws", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

function fill(select: HTMLSelectElement, values: readonly string[], label = (v: string) => v) {
  select.replaceChildren(...values.map((value) => new Option(label(value), value)));
}

/** The page; returns its teardown (unsubscribe, close the client, remove the chart). */
async function main(): Promise<() => void> {
  const symbolSelect = element("symbol", HTMLSelectElement);
  const resolutionSelect = element("resolution", HTMLSelectElement);
  const stateBadge = element("state", HTMLElement);
  const lastOutput = element("last", HTMLElement);
  const base = new URL(document.baseURI);
  const view = new ChartView(element("chart", HTMLElement), library());
  const tape = new TradeTape(
    element("trades", HTMLTableSectionElement),
    element("tape-note", HTMLElement),
  );
  const ladder = new DepthLadder(
    element("asks", HTMLTableSectionElement),
    element("bids", HTMLTableSectionElement),
    element("book-note", HTMLElement),
  );
  const client = connect(webSocketUrl(base), {
    onError: (error) => status(error.message, "error"),
    onNotice: (notice) => status(`server: ${notice.message}`),
  });
  /** A status about the connection, cleared once it is live again. */
  let connectionStatus = false;
  const showState = (state: ConnectionState) => {
    stateBadge.dataset["state"] = state;
    stateBadge.textContent = STATE_TEXT[state];
    if (state === "reconnecting") {
      status("connection lost: reconnecting, the chart resumes");
      connectionStatus = true;
    } else if (state === "open" && connectionStatus) {
      status("live again: the chart resumed without a gap");
      connectionStatus = false;
    }
  };
  client.onStateChange(showState);
  showState(client.state);

  let symbols: SymbolEntry[];
  try {
    symbols = await fetchSymbols(base);
    if (symbols.length === 0) throw new Error("the server serves no symbols");
  } catch (error) {
    client.close(); // nothing to show: do not keep a connection for it
    throw error;
  }
  const wanted = new URLSearchParams(location.search);
  fill(
    symbolSelect,
    symbols.map((s) => s.symbol),
    (s) => `${s} (${symbols.find((e) => e.symbol === s)?.asset_class ?? "?"})`,
  );
  const askedSymbol = wanted.get("symbol");
  const knownSymbol = symbols.some((s) => s.symbol === askedSymbol);
  symbolSelect.value = knownSymbol ? (askedSymbol ?? "") : (symbols[0]?.symbol ?? "");
  // A link with a symbol or resolution the server does not serve: say so, rather than
  // silently showing something else.
  const refused: string[] = [];
  if (askedSymbol !== null && !knownSymbol) refused.push(`symbol ${JSON.stringify(askedSymbol)}`);

  let generation = 0;
  let stop: (() => void) | undefined;
  /** The tape's symbol, subscription and generation (it outlives resolution changes). */
  let tapeSymbol: string | undefined;
  let stopTape: (() => void) | undefined;
  let tapeGeneration = 0;
  /** The ladder's symbol and levels (they outlive resolution changes too). */
  let ladderSymbol: string | undefined;
  let levels: LevelsBook | undefined;
  const teardown = () => {
    generation += 1;
    tapeGeneration += 1;
    stop?.();
    stop = undefined;
    stopTape?.();
    stopTape = undefined;
    levels?.close();
    levels = undefined;
    client.close();
    view.remove();
  };

  /** Show `symbol`'s best levels on the ladder, replaced by every update. */
  const startLadder = (symbol: string) => {
    levels?.close();
    ladderSymbol = symbol;
    ladder.reset(symbol);
    const mine = new LevelsBook(client, symbol, {
      depth: LEVELS,
      onChange: (change) => {
        if (mine === levels) ladder.show(change);
      },
      onError: (event) => {
        if (mine !== levels) return;
        if (event.code === "unsupported_channel") ladder.say("this symbol's source has no book");
        else ladder.say(`${event.message}${event.willRetry ? " (retrying)" : ""}`);
      },
    });
    levels = mine;
  };

  /** Show `symbol`'s trades on the tape: its newest `ROWS` first, then each new one. */
  const startTape = (symbol: string, why?: string) => {
    const mine = ++tapeGeneration;
    stopTape?.();
    tapeSymbol = symbol;
    tape.reset(symbol, why);
    stopTape = client.subscribe(
      "trades",
      { symbol },
      (trade) => {
        if (mine === tapeGeneration) tape.add([trade], true);
      },
      {
        snapshot: ROWS,
        onSnapshot: (trades) => {
          if (mine === tapeGeneration) tape.add(trades, false);
        },
        onSubscribed: (event) => {
          if (mine !== tapeGeneration || event.recovered) return;
          // Trades are missing since the last one shown: start a fresh tape (once the client
          // is done handling this reply).
          queueMicrotask(() => {
            if (mine === tapeGeneration) startTape(symbol, "restarted after a gap");
          });
        },
        onError: (event) => {
          if (mine !== tapeGeneration) return;
          if (event.code === "unsupported_channel") tape.say("this symbol's source has no trades");
          else tape.say(`${event.message}${event.willRetry ? " (retrying)" : ""}`);
        },
      },
    );
  };

  const showLast = (symbol: string, resolution: string) => {
    const bar = view.last;
    const candles = view.count;
    lastOutput.textContent =
      bar === undefined
        ? `${symbol} · no bars`
        : `${symbol} ${RESOLUTION_LABELS[resolution] ?? resolution} · ${candles} candles · ` +
          `O ${bar.open} H ${bar.high} L ${bar.low} C ${bar.close} · ` +
          `${new Date(bar.time).toISOString().slice(0, 16).replace("T", " ")} UTC`;
  };

  /** Show `symbol` at `resolution`: history first, then the live stream. */
  const show = async (symbol: string, resolution: Resolution) => {
    const mine = ++generation;
    stop?.();
    stop = undefined;
    history.replaceState(null, "", `?${new URLSearchParams({ symbol, resolution })}`);
    if (symbol !== tapeSymbol) startTape(symbol);
    if (symbol !== ladderSymbol) startLadder(symbol);
    status(`loading ${symbol} history…`);
    const bars = await fetchHistory(base, symbol, resolution, HISTORY_BARS);
    if (mine !== generation) return; // another choice was made meanwhile
    view.setHistory(bars);
    showLast(symbol, resolution);
    status(`${bars.length} bars of history; live updates over WebSocket`);
    // Join the stream to the history at its newest bar: the server sends every bar from
    // there on (that one again, closed by now or still open), then the live updates.
    const newest = bars.at(-1)?.time;
    const subscription = client.subscribe(
      "bars",
      { symbol, resolution },
      (bar) => {
        if (mine === generation && view.update(bar, true)) showLast(symbol, resolution);
      },
      {
        ...(newest === undefined ? { snapshot: BRIDGE_BARS } : { since: newest }),
        onSnapshot: (joined) => {
          if (mine !== generation) return;
          for (const bar of joined) view.update(bar, false);
          showLast(symbol, resolution);
        },
        onSubscribed: (event) => {
          if (mine !== generation || event.recovered) return;
          // Bars are missing between what the chart has and what the server could send.
          status(`${symbol}: bars were missing after a reconnect; reloading the history`);
          void show(symbol, resolution).catch((error: unknown) =>
            status(String(error instanceof Error ? error.message : error), "error"),
          );
        },
        onError: (event) =>
          status(
            `${symbol}: ${event.message}${event.willRetry ? " (retrying)" : ""}`,
            event.willRetry ? "info" : "error",
          ),
      },
    );
    stop = subscription;
  };

  const choose = () => {
    const entry = symbols.find((s) => s.symbol === symbolSelect.value) ?? symbols[0];
    if (entry === undefined) return;
    const current = resolutionSelect.value || wanted.get("resolution") || "1";
    fill(resolutionSelect, entry.resolutions, (r) => RESOLUTION_LABELS[r] ?? r);
    resolutionSelect.value = entry.resolutions.includes(current)
      ? current
      : (entry.resolutions[0] ?? "");
    const askedResolution = firstChoice ? wanted.get("resolution") : null;
    if (askedResolution !== null && !entry.resolutions.includes(askedResolution)) {
      refused.push(`resolution ${JSON.stringify(askedResolution)}`);
    }
    firstChoice = false;
    // The value is one the server listed for this symbol: a Resolution by the contract.
    show(entry.symbol, resolutionSelect.value as Resolution)
      .then(() => {
        if (refused.length === 0) return;
        status(
          `the link asked for an unknown ${refused.join(" and ")}; showing ` +
            `${entry.symbol} ${RESOLUTION_LABELS[resolutionSelect.value] ?? resolutionSelect.value}`,
          "error",
        );
        refused.length = 0;
      })
      .catch((error: unknown) =>
        status(String(error instanceof Error ? error.message : error), "error"),
      );
  };
  /** Only the page's first choice comes from the link; later ones from the controls. */
  let firstChoice = true;
  symbolSelect.addEventListener("change", choose);
  resolutionSelect.addEventListener("change", choose);
  symbolSelect.disabled = false;
  resolutionSelect.disabled = false;
  choose();

  // For people poking around in the console, and for the browser test.
  Object.assign(globalThis, {
    marketcastDemo: {
      view,
      client,
      teardown,
      snapshot: (tail?: number) => view.snapshot(tail),
      tape: () => tape.snapshot(),
      ladder: () => ladder.snapshot(),
    },
  });
  return teardown;
}

main().then(
  (teardown) =>
    window.addEventListener("pagehide", (event) => {
      if (!event.persisted) teardown(); // a page kept in the back/forward cache stays live
    }),
  (error: unknown) => status(String(error instanceof Error ? error.message : error), "error"),
);
