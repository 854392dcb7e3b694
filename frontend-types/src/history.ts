/**
 * What the client needs to know of each channel family with history, keyed on the route, so
 * that the subscription table (`subscriptions.ts`) has no per-route branches: which reply field
 * carries the snapshot, how large a snapshot may be, how an item of it becomes an update, which
 * held update a newer one makes pointless, and the sequencer that keeps one stream continuous
 * across reconnects (bars by open time, `bars.ts`; trades by id, `trades.ts`).
 *
 * A route without an entry here (quotes) has no history: no snapshot, nothing to resume, and
 * every update is delivered as it comes. A route the contract gives a snapshot must have an
 * entry: `FAMILIES` does not compile without one.
 */

import { BARS } from "./bars.js";
import type { Bar, TradeRecord } from "./generated/messages.js";
import type { HistoryRoute, ReplyMessage, Route, SnapshotItem, UpdateOf } from "./protocol.js";
import { TRADES } from "./trades.js";

/** A reply to any `<route>.subscribe`. */
export type SubscribeReply = ReplyMessage<`${Route}.subscribe`>;

/** What a renewal adds to its subscribe to resume a stream after what was delivered. */
export type Resume = { readonly since: number } | { readonly snapshot: number };

/** Continuity of one stream: what reaches the application, and what to ask for after a drop. */
export interface Sequencer<Item> {
  /** True when `item` is to be delivered (and remembered); false for a repeat or an older one. */
  accept(item: Item): boolean;
  /** What the next subscribe asks for to resume; undefined while nothing was delivered. */
  resume(): Resume | undefined;
  /**
   * Whether a resume reply's `items` (oldest first) leave nothing missing between the newest
   * item delivered and the live stream that follows. Asked before they are accepted.
   */
  joins(items: readonly Item[]): boolean;
}

/** The stream an item belongs to, as the subscription table knows it. */
export interface Stream {
  /** The topic as the server wrote it in its reply: what its updates carry. */
  readonly wireTopic: string;
  readonly symbol: string;
  readonly params: Readonly<Record<string, unknown>>;
}

/** One family's history rules; `Item` is its snapshot element, `Update` its live update. */
export interface Family<Item extends object, Update extends object> {
  /** The reply's field with the snapshot; `SubscribedEvent`'s with what a subscribe brought. */
  readonly field: "bars" | "trades";
  /** The largest `snapshot` the server accepts. */
  readonly maxSnapshot: number;
  /** Whether `item` is part of a `since` backfill; absent when the family has no `since`. */
  since?(item: Item, since: number): boolean;
  sequencer(): Sequencer<Item>;
  /** True when `next` makes `held` pointless (a newer state of the same open bar). */
  supersedes(held: Update, next: Update): boolean;
  /** `item` (from a snapshot) as the update `onUpdate` receives, like a live one. */
  update(stream: Stream, item: Item): Update;
}

const FAMILIES: { readonly [R in HistoryRoute]: Family<SnapshotItem<R>, UpdateOf<R>> } = {
  bars: BARS,
  trades: TRADES,
};

/** A family with its types erased, as the subscription table (one for every route) holds it. */
export type AnyFamily = Family<object, object>;

/** The history rules of `route`, or undefined for a route without history. */
export function familyOf(route: Route): AnyFamily | undefined {
  return (FAMILIES as Partial<Record<Route, AnyFamily>>)[route];
}

// -- replies and backfills, whatever the route ----------------------------------------------

/** What one listener still wants before its live stream: the last N items, or bars since T. */
export type Backfill = { readonly snapshot: number } | { readonly since: number };

/** The backfill `options` ask for, checked against `route`'s limits; none without history. */
export function backfillOf(
  route: Route,
  family: AnyFamily | undefined,
  options: { readonly snapshot?: number; readonly since?: number },
): Backfill | undefined {
  if (family === undefined) return undefined;
  const { snapshot = 0, since } = options;
  const max = family.maxSnapshot;
  if (!Number.isInteger(snapshot) || snapshot < 0 || snapshot > max)
    throw new RangeError(`snapshot must be an integer from 0 to ${max}, got ${snapshot}`);
  if (since !== undefined) {
    if (family.since === undefined) throw new RangeError(`${route} subscriptions take no since`);
    if (!Number.isSafeInteger(since) || since < 0)
      throw new RangeError(`since must be a time in ms UTC (an integer >= 0), got ${since}`);
    if (snapshot > 0) throw new RangeError("snapshot and since cannot be combined");
    return { since };
  }
  return snapshot > 0 ? { snapshot } : undefined;
}

/** Where subscribe replies carry their snapshot, as `Family.field` names it. */
type SnapshotFields = { topic: string; bars?: Bar[] | null; trades?: TradeRecord[] | null };

/** The reply without its snapshot: kept for listeners that join later, who did not ask for it. */
export function withoutItems<T extends SubscribeReply>(family: AnyFamily | undefined, reply: T): T {
  const field = family?.field;
  if (field === undefined || !(field in reply.payload)) return reply;
  const payload: SnapshotFields = { ...reply.payload };
  delete payload[field];
  return { ...reply, payload } as T;
}

/** The snapshot a subscribe reply carries (the bars or trades), oldest first. */
export function itemsOf(family: AnyFamily | undefined, reply: SubscribeReply): object[] {
  const field = family?.field;
  const payload: SnapshotFields = reply.payload;
  return field === undefined ? [] : (payload[field] ?? []);
}

/** False only when the server said that bars since `since` are missing (bars' `recovered`). */
export function recoveredOf(reply: SubscribeReply): boolean {
  return !("recovered" in reply.payload && reply.payload.recovered === false);
}
