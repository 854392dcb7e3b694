/**
 * The TypeScript topic builder against the vectors the Python one is tested with
 * (tests/vectors/topics.json): both must produce the same string for every case.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { buildTopic, topicParams, type TopicValue } from "../src/index.js";
import { repoPath } from "./support/paths.js";

interface Vector {
  input: { [key: string]: TopicValue };
  route: string;
  topic: string;
}

const vectors = JSON.parse(
  readFileSync(repoPath("tests", "vectors", "topics.json"), "utf8"),
) as Vector[];

test("the shared vector file is there and covers the edge cases", () => {
  assert.ok(vectors.length >= 40, `only ${vectors.length} vectors`);
  const text = JSON.stringify(vectors);
  for (const needle of ["__proto__", '"10"', "1e+21", "\\u0000", "😀", '""']) {
    assert.ok(text.includes(needle), `no vector contains ${needle}`);
  }
});

test("every vector gives the same topic as the Python builder", () => {
  const failures: string[] = [];
  vectors.forEach((vector, index) => {
    const topic = buildTopic(vector.route, vector.input);
    if (topic !== vector.topic)
      failures.push(`#${index}: expected ${vector.topic}\n     got      ${topic}`);
  });
  assert.deepEqual(failures, []);
});

test("integer-like and __proto__ keys are sorted as strings, not as object properties", () => {
  const input = JSON.parse('{"10":1,"9":2,"__proto__":{"b":1,"a":2},"2":3}') as {
    [key: string]: TopicValue;
  };
  assert.equal(topicParams(input), '{"10":1,"2":3,"9":2,"__proto__":{"a":2,"b":1}}');
});

test("real topics", () => {
  assert.equal(
    buildTopic("bars", { symbol: "BTCUSDT", resolution: "1" }),
    'bars:{"resolution":"1","symbol":"BTCUSDT"}',
  );
  assert.equal(buildTopic("quotes", { symbol: "EUR/USD" }), 'quotes:{"symbol":"EUR/USD"}');
});

test("undefined properties are left out, like JSON.stringify; non-JSON values are refused", () => {
  assert.equal(topicParams({ a: undefined, b: null }), '{"b":""}');
  assert.throws(() => topicParams(new Date(0) as unknown as TopicValue), /not a plain object/);
  assert.throws(
    () => topicParams((() => 1) as unknown as TopicValue),
    /not a JSON value: function/,
  );
  assert.throws(() => topicParams(10n as unknown as TopicValue), /not a JSON value: bigint/);
});
