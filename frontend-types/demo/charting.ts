/**
 * The chart: lightweight-charts' candlesticks (and volume underneath), fed by the REST backfill
 * and then by live updates.
 *
 * Why everything goes through `update`: lightweight-charts replaces the last bar when a bar has
 * the same time and appends when it is newer, but throws on an older one. Live updates, the
 * small snapshot that bridges the REST backfill and the stream, and the bars the client
 * recovers with `since` after a reconnect may overlap, so bars older than the newest one
 * shown are skipped here and the chart never goes back in time nor shows a gap.
 */

import type * as Lwc from "lightweight-charts";
import type { Bar } from "@marketcast/frontend-types";

export type Library = typeof Lwc;

const COLORS = {
  background: "#131722",
  text: "#d1d4dc",
  grid: "#1f2430",
  up: "#26a69a",
  down: "#ef5350",
  upVolume: "rgba(38, 166, 154, 0.35)",
  downVolume: "rgba(239, 83, 80, 0.35)",
} as const;

/** The standalone build defines `LightweightCharts` on the page; the type is the package's. */
export function library(): Library {
  const found = (globalThis as { LightweightCharts?: Library }).LightweightCharts;
  if (found === undefined) {
    throw new Error(
      "lightweight-charts did not load (demo/vendor/...): run `make setup` on the server",
    );
  }
  return found;
}

/** What a test or a curious person can read off the chart (`window.marketcastDemo`). */
export interface ChartSnapshot {
  readonly candles: number;
  readonly liveUpdates: number;
  readonly last: Bar | undefined;
  /** Open times (ms UTC) of the last `tail` candles, oldest first. */
  readonly times: number[];
}

export class ChartView {
  readonly #chart: Lwc.IChartApi;
  readonly #candles: Lwc.ISeriesApi<"Candlestick">;
  readonly #volume: Lwc.ISeriesApi<"Histogram">;
  /** Open time (ms) of the newest bar shown. */
  #lastTime: number | undefined;
  #last: Bar | undefined;
  #count = 0;
  #liveUpdates = 0;

  constructor(container: HTMLElement, lib: Library) {
    this.#chart = lib.createChart(container, {
      autoSize: true,
      layout: {
        background: { type: lib.ColorType.Solid, color: COLORS.background },
        textColor: COLORS.text,
      },
      grid: { vertLines: { color: COLORS.grid }, horzLines: { color: COLORS.grid } },
      timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 4 },
      crosshair: { mode: lib.CrosshairMode.Normal },
    });
    this.#candles = this.#chart.addSeries(lib.CandlestickSeries, {
      upColor: COLORS.up,
      downColor: COLORS.down,
      wickUpColor: COLORS.up,
      wickDownColor: COLORS.down,
      borderVisible: false,
    });
    this.#volume = this.#chart.addSeries(lib.HistogramSeries, {
      priceFormat: { type: "volume" },
      priceScaleId: "",
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.#volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  }

  /** Replace everything with `bars` (ascending, as REST history returns them). */
  setHistory(bars: readonly Bar[]): void {
    const decimals = priceDecimals(bars);
    this.#candles.applyOptions({
      priceFormat: { type: "price", precision: decimals, minMove: 10 ** -decimals },
    });
    this.#candles.setData(bars.map(candle));
    this.#volume.setData(bars.map(volume));
    const last = bars.at(-1);
    this.#count = bars.length;
    this.#lastTime = last?.time;
    this.#last = last;
    this.#chart.timeScale().scrollToRealTime();
  }

  /** Show `bar` (a live update when `live`); false when it is older than the newest bar. */
  update(bar: Bar, live: boolean): boolean {
    if (this.#lastTime !== undefined && bar.time < this.#lastTime) return false;
    this.#candles.update(candle(bar));
    this.#volume.update(volume(bar));
    if (this.#lastTime === undefined || bar.time > this.#lastTime) this.#count += 1;
    this.#lastTime = bar.time;
    this.#last = bar;
    if (live) this.#liveUpdates += 1;
    return true;
  }

  /** Remove the chart from the page and release its resources. */
  remove(): void {
    this.#chart.remove();
  }

  get last(): Bar | undefined {
    return this.#last;
  }

  /** Candles shown. */
  get count(): number {
    return this.#count;
  }

  snapshot(tail = 200): ChartSnapshot {
    const data = this.#candles.data();
    return {
      candles: data.length,
      liveUpdates: this.#liveUpdates,
      last: this.#last,
      times: data.slice(Math.max(0, data.length - tail)).map((point) => (point.time as number) * 1000),
    };
  }
}

function seconds(ms: number): Lwc.UTCTimestamp {
  return (ms / 1000) as Lwc.UTCTimestamp;
}

function candle(bar: Bar): Lwc.CandlestickData {
  const { open, high, low, close } = bar;
  return { time: seconds(bar.time), open, high, low, close };
}

function volume(bar: Bar): Lwc.HistogramData {
  const color = bar.close >= bar.open ? COLORS.upVolume : COLORS.downVolume;
  return { time: seconds(bar.time), value: bar.volume, color };
}

/** Decimals the prices are quoted with (2 for stocks, 5 for EUR/USD...), at most 8. */
export function priceDecimals(bars: readonly Bar[]): number {
  let decimals = 2;
  for (const bar of bars.slice(-50)) {
    for (const price of [bar.open, bar.high, bar.low, bar.close]) {
      const text = String(price);
      const dot = text.indexOf(".");
      if (dot >= 0 && !text.includes("e")) decimals = Math.max(decimals, text.length - dot - 1);
    }
  }
  return Math.min(decimals, 8);
}
