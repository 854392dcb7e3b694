/**
 * Topic strings: `route + ":" + topicParams({ symbol, ...params })`.
 *
 * A topic names one stream (`bars:{"resolution":"1","symbol":"AAPL"}`). The server computes
 * it in Python (`marketcast.topics`) and puts it in every reply and update; the client computes
 * the same string to route updates to subscriptions, so both must agree byte for byte. Both are
 * tested against `tests/vectors/topics.json`.
 *
 * Why objects are written by hand instead of "sort the keys into a new object, then
 * `JSON.stringify`": a JavaScript object lists integer-like keys (`"2"`, `"10"`) first, in
 * numeric order, whatever order they were inserted in, and assigning `"__proto__"` to a fresh
 * object sets its prototype instead of adding a key. Writing `"key":value` pairs ourselves keeps
 * the plain UTF-16 code unit order of `Array.prototype.sort` for every key.
 */

/** A value a topic parameter may hold: JSON, where `null` is written as `""`. */
export type TopicValue =
  | null
  | boolean
  | number
  | string
  | readonly TopicValue[]
  | { readonly [key: string]: TopicValue | undefined };

/**
 * Serialise `value` canonically (DESIGN section 4): object keys sorted by UTF-16 code unit,
 * recursively; array order kept; `null` anywhere becomes `""`; compact JSON; strings and
 * numbers exactly as `JSON.stringify` writes them (`1.0` is `1`, `1e21` is `1e+21`, NaN and
 * infinities are `null`). A key whose value is `undefined` is left out, as `JSON.stringify`
 * leaves it out.
 */
export function topicParams(value: TopicValue): string {
  if (value === null) return '""';
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      // JSON.stringify writes -0 as 0 and non-finite numbers as null, as the rules require.
      return JSON.stringify(value);
    case "object":
      return Array.isArray(value)
        ? array(value)
        : object(value as Readonly<Record<string, TopicValue | undefined>>);
    default:
      throw new TypeError(`not a JSON value: ${typeof value}`);
  }
}

/** `route + ":" + topicParams(params)`; callers pass `{ symbol, ...params }`. */
export function buildTopic(
  route: string,
  params: { readonly [key: string]: TopicValue | undefined },
): string {
  return `${route}:${topicParams(params)}`;
}

function array(values: readonly TopicValue[]): string {
  const parts: string[] = [];
  for (const item of values) parts.push(topicParams(item === undefined ? null : item));
  return `[${parts.join(",")}]`;
}

function object(value: Readonly<Record<string, TopicValue | undefined>>): string {
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    const name = (value as { constructor?: { name?: string } }).constructor?.name ?? "object";
    throw new TypeError(`not a JSON value: a ${name} is not a plain object`);
  }
  const parts: string[] = [];
  // sort() with no comparator compares UTF-16 code units, the order the rules require.
  for (const key of Object.keys(value).sort()) {
    const item = value[key];
    if (item === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${topicParams(item)}`);
  }
  return `{${parts.join(",")}}`;
}
