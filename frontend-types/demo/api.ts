/**
 * The REST calls the demo makes: the symbol catalog and candle history.
 *
 * URLs are relative to the page, so the demo works wherever the server is mounted (a proxy
 * prefix included). Errors carry the URL and the server's own message, since that is what a
 * person looking at the page needs to see.
 */

import type { Bar } from "../src/index.js";

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

export async function fetchSymbols(base: URL): Promise<SymbolEntry[]> {
  const url = new URL("api/v1/market-data/symbols", base);
  const body = (await getJson(url)) as { symbols?: unknown };
  if (!Array.isArray(body.symbols)) {
    throw new Error(`GET ${url.pathname}: expected {"symbols": [...]}, got something else`);
  }
  return body.symbols as SymbolEntry[];
}

export async function fetchHistory(
  base: URL,
  symbol: string,
  resolution: string,
  limit: number,
): Promise<Bar[]> {
  const url = new URL("api/v1/market-data/history", base);
  url.search = new URLSearchParams({ symbol, resolution, limit: String(limit) }).toString();
  const body = (await getJson(url)) as { bars?: unknown };
  if (!Array.isArray(body.bars)) {
    throw new Error(`GET ${url.pathname}: expected {"bars": [...]}, got something else`);
  }
  return body.bars as Bar[];
}
