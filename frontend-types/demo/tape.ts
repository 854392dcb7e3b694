/**
 * The trades tape beside the chart: the newest trades of the symbol shown, newest first.
 *
 * Fed by the client's `trades` subscription (main.ts): a snapshot of the newest trades first,
 * then each live one. The client delivers every trade once and in id order, across reconnects
 * too, so the tape only ever adds rows on top and drops the oldest beyond `ROWS`. Rows are
 * built with `textContent` (no HTML from the wire) and coloured by the stylesheet through
 * `data-side`, as the page's Content-Security-Policy wants.
 */

import type { TradeRecord } from "@marketcast/frontend-types";

/** Rows shown; also the snapshot the page asks for. */
export const ROWS = 30;

/** What a test or a curious person can read off the tape (`window.marketcastDemo.tape()`). */
export interface TapeSnapshot {
  readonly symbol: string | undefined;
  readonly rows: number;
  /** The ids shown, newest first. */
  readonly ids: number[];
  readonly newestId: number | undefined;
  /** Live trades shown since the tape last started. */
  readonly liveTrades: number;
  /** How many times the tape started: a symbol chosen, or a fresh start after a gap. */
  readonly starts: number;
}

export class TradeTape {
  readonly #body: HTMLTableSectionElement;
  readonly #note: HTMLElement;
  #symbol: string | undefined;
  /** Said instead of "live" until the tape starts again (why it started over). */
  #why: string | undefined;
  #decimals = 2;
  #live = 0;
  #starts = 0;

  constructor(body: HTMLTableSectionElement, note: HTMLElement) {
    this.#body = body;
    this.#note = note;
  }

  /** Start over for `symbol`: no rows until its trades come; `why`, when it is a restart. */
  reset(symbol: string, why?: string): void {
    this.#symbol = symbol;
    this.#why = why;
    this.#decimals = 2;
    this.#live = 0;
    this.#starts += 1;
    this.#body.replaceChildren();
    this.#body.dataset["symbol"] = symbol;
    this.say(why ?? "loading…");
  }

  /** Show `trades` (oldest first: a snapshot, or one live trade) on top of the tape. */
  add(trades: readonly TradeRecord[], live: boolean): void {
    const shown = trades.slice(-ROWS);
    this.#decimals = Math.max(this.#decimals, ...shown.map((trade) => decimals(trade.price)));
    this.#body.prepend(...shown.reverse().map((trade) => this.#row(trade)));
    while (this.#body.rows.length > ROWS) this.#body.deleteRow(-1);
    if (live) this.#live += trades.length;
    this.say(this.#body.rows.length === 0 ? "no trades yet" : (this.#why ?? "live"));
  }

  /** Say `text` next to the tape's title (the symbol first). */
  say(text: string): void {
    this.#note.textContent = this.#symbol === undefined ? text : `${this.#symbol} · ${text}`;
  }

  snapshot(): TapeSnapshot {
    const ids = [...this.#body.rows].map((row) => Number(row.dataset["id"]));
    return {
      symbol: this.#symbol,
      rows: ids.length,
      ids,
      newestId: ids[0],
      liveTrades: this.#live,
      starts: this.#starts,
    };
  }

  #row(trade: TradeRecord): HTMLTableRowElement {
    const row = document.createElement("tr");
    row.dataset["id"] = String(trade.id);
    row.dataset["side"] = trade.side;
    row.title = `trade ${trade.id}`;
    const time = new Date(trade.time).toISOString().slice(11, 19);
    for (const [text, kind] of [
      [time, "time"],
      [trade.price.toFixed(Math.min(this.#decimals, 8)), "price"],
      [String(trade.quantity), "quantity"],
      [trade.side, "side"],
    ] as const) {
      const cell = row.insertCell();
      cell.className = kind;
      cell.textContent = text;
    }
    return row;
  }
}

/** Decimals `price` is written with (up to 8). */
function decimals(price: number): number {
  const text = String(price);
  const dot = text.indexOf(".");
  return dot < 0 || text.includes("e") ? 0 : Math.min(text.length - dot - 1, 8);
}
