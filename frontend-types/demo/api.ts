/**
 * The REST calls the demo makes: the symbol catalog and candle history.
 *
 * URLs are relative to the page, so the demo works wherever the server is mounted (a proxy
 * prefix included). Errors carry the URL and the server's own message, since that is what a
 * person looking at the page needs to see.
 */

import type { Bar } from "@marketcast/frontend-types";

export interface SymbolEntry {
  readonly symbol: string;
  readonly asset_class: string;
  readonly source: string;
  readonly resolutions: readonly string[];
  readonly stale: boolean;
}

async function getJson(url: URL): Promise<unknown> {
  const response = await fetch(url, { headers: { accept: "application/json" } });
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const detail = (body as { detail?: { message?: unknown } } | undefined)?.detail;
    const message = typeof detail?.message === "string" ? detail.message : response.statusText;
    throw new Error(`GET ${url.pathname}${url.search}: HTTP ${response.status}: ${message}`);
  }
  return body;
}

type Check = (value: unknown) => boolean;
const isString: Check = (value) => typeof value === "string";
const isNumber: Check = (value) => typeof value === "number" && Number.isFinite(value);
const isBoolean: Check = (value) => typeof value === "boolean";

/** `value` as an object whose `fields` pass their checks, or an error naming what is wrong. */
function checked<T>(url: URL, what: string, value: unknown, fields: Record<string, Check>): T {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new Error(`GET ${url.pathname}: ${what} is not an object`);
  for (const [name, check] of Object.entries(fields)) {
    if (!check((value as Record<string, unknown>)[name]))
      throw new Error(`GET ${url.pathname}: ${what} has no valid ${JSON.stringify(name)}`);
  }
  return value as T;
}

function listOf(url: URL, body: unknown, field: string): unknown[] {
  const list = (body as Record<string, unknown> | null | undefined)?.[field];
  if (!Array.isArray(list))
    throw new Error(`GET ${url.pathname}: expected {"${field}": [...]}, got something else`);
  return list;
}

const SYMBOL_FIELDS: Record<string, Check> = {
  symbol: isString,
  asset_class: isString,
  resolutions: (value) => Array.isArray(value) && value.every(isString),
};

const BAR_FIELDS: Record<string, Check> = {
  time: isNumber,
  open: isNumber,
  high: isNumber,
  low: isNumber,
  close: isNumber,
  volume: isNumber,
  closed: isBoolean,
};

export async function fetchSymbols(base: URL): Promise<SymbolEntry[]> {
  const url = new URL("api/v1/market-data/symbols", base);
  return listOf(url, await getJson(url), "symbols").map((entry, i) =>
    checked<SymbolEntry>(url, `symbols[${i}]`, entry, SYMBOL_FIELDS),
  );
}

export async function fetchHistory(
  base: URL,
  symbol: string,
  resolution: string,
  limit: number,
): Promise<Bar[]> {
  const url = new URL("api/v1/market-data/history", base);
  url.search = new URLSearchParams({ symbol, resolution, limit: String(limit) }).toString();
  const bars = listOf(url, await getJson(url), "bars").map((bar, i) =>
    checked<Bar>(url, `bars[${i}]`, bar, BAR_FIELDS),
  );
  for (let i = 1; i < bars.length; i += 1) {
    if ((bars[i]?.time ?? 0) <= (bars[i - 1]?.time ?? 0))
      throw new Error(`GET ${url.pathname}: bars are not in ascending time order`);
  }
  return bars;
}
