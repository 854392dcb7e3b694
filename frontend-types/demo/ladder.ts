/**
 * The depth ladder beside the chart: the best `LEVELS` asks above the best `LEVELS` bids of the
 * symbol shown, each with its size and a bar proportional to it.
 *
 * Fed by the package's `LevelsBook` (main.ts): the order book in `levels` mode at depth 10, the
 * server's best levels at most every 100 ms, each update replacing the last. Asks are drawn
 * highest first so that the best ask sits right above the best bid. Rows are built with
 * `textContent` (no HTML from the wire) and coloured by the stylesheet through `data-side`; the
 * bar's length is a CSS custom property (`--fill`), set from script as the chart library sets
 * its own styles.
 */

import type { BookLevel, LevelsChangeEvent } from "@marketcast/frontend-types";

/** Levels shown per side; also the depth the page subscribes with. */
export const LEVELS = 10;

/** What a test or a curious person can read off the ladder (`window.marketcastDemo.ladder()`). */
export interface LadderSnapshot {
  readonly symbol: string | undefined;
  /** The `seq` of the levels shown; undefined before the first. */
  readonly seq: number | undefined;
  /** Rows shown per side. */
  readonly asks: number;
  readonly bids: number;
  /** Levels received (the reply's and every update's) since the ladder last started. */
  readonly updates: number;
  /** How many times the ladder started: once per symbol chosen. */
  readonly starts: number;
}

export class DepthLadder {
  readonly #asks: HTMLTableSectionElement;
  readonly #bids: HTMLTableSectionElement;
  readonly #note: HTMLElement;
  #symbol: string | undefined;
  #seq: number | undefined;
  #updates = 0;
  #starts = 0;

  constructor(asks: HTMLTableSectionElement, bids: HTMLTableSectionElement, note: HTMLElement) {
    this.#asks = asks;
    this.#bids = bids;
    this.#note = note;
  }

  /** Start over for `symbol`: no rows until its levels come. */
  reset(symbol: string): void {
    this.#symbol = symbol;
    this.#seq = undefined;
    this.#updates = 0;
    this.#starts += 1;
    this.#asks.replaceChildren();
    this.#bids.replaceChildren();
    this.#asks.dataset["symbol"] = symbol;
    this.#bids.dataset["symbol"] = symbol;
    this.say("loading…");
  }

  /** Show `levels` (the best asks and bids, best first) instead of the ones shown. */
  show(levels: LevelsChangeEvent): void {
    const asks = levels.asks.slice(0, LEVELS);
    const bids = levels.bids.slice(0, LEVELS);
    const shown = [...asks, ...bids];
    const digits = Math.max(0, ...shown.map(([price]) => decimals(price)));
    const largest = Math.max(0, ...shown.map(([, size]) => size));
    // Highest ask first: the best ask ends up right above the best bid.
    this.#asks.replaceChildren(...[...asks].reverse().map((l) => row(l, "ask", digits, largest)));
    this.#bids.replaceChildren(...bids.map((l) => row(l, "bid", digits, largest)));
    this.#seq = levels.seq;
    this.#updates += 1;
    this.say(shown.length === 0 ? "empty book" : `live · depth ${LEVELS}`);
  }

  /** Say `text` next to the ladder's title (the symbol first). */
  say(text: string): void {
    this.#note.textContent = this.#symbol === undefined ? text : `${this.#symbol} · ${text}`;
  }

  snapshot(): LadderSnapshot {
    return {
      symbol: this.#symbol,
      seq: this.#seq,
      asks: this.#asks.rows.length,
      bids: this.#bids.rows.length,
      updates: this.#updates,
      starts: this.#starts,
    };
  }
}

function row(
  [price, size]: BookLevel,
  side: "ask" | "bid",
  digits: number,
  largest: number,
): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.dataset["side"] = side;
  tr.dataset["price"] = String(price);
  // The bar behind the row: its share of the largest size shown.
  tr.style.setProperty("--fill", `${largest > 0 ? Math.round((size / largest) * 100) : 0}%`);
  for (const [text, kind] of [
    [price.toFixed(Math.min(digits, 8)), "price"],
    [String(size), "size"],
  ] as const) {
    const cell = tr.insertCell();
    cell.className = kind;
    cell.textContent = text;
  }
  return tr;
}

/** Decimals `value` is written with (up to 8). */
function decimals(value: number): number {
  const text = String(value);
  const dot = text.indexOf(".");
  return dot < 0 || text.includes("e") ? 0 : Math.min(text.length - dot - 1, 8);
}
