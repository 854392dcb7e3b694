/**
 * The AsyncAPI 3.0 document (docs/asyncapi-3.json, converted by backend ws/spec3.py from the
 * 2.6 contract) from the Node side: the official parser finds no error in it and reads the
 * request/reply pairs; both documents are valid for the official JSON Schemas of their
 * versions; and the TypeScript types generated from either document are the same text, so
 * a consumer may generate from whichever version its tools read.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

import { Parser } from "@asyncapi/parser";
import specs from "@asyncapi/specs";
// Both are dependencies of @asyncapi/parser, not of this package: CommonJS modules whose
// `default` is the function itself.
import ajvModule, { type AnySchema } from "ajv";
import ajvFormats from "ajv-formats";

import { repoPath } from "./support/paths.js";

const ERROR = 0; // @asyncapi/parser's DiagnosticSeverity.Error

type Json = Record<string, unknown>;

const DOCUMENTS = {
  "2.6.0": repoPath("docs", "asyncapi.json"),
  "3.0.0": repoPath("docs", "asyncapi-3.json"),
} as const;

function load(path: string): Json {
  return JSON.parse(readFileSync(path, "utf8")) as Json;
}

/** A validator for the official schema of `version`, formats checked too. */
function officialValidator(version: keyof typeof DOCUMENTS) {
  const ajv = new ajvModule.default({ strict: false, allErrors: true });
  ajvFormats.default(ajv);
  // JSONSchema7's optional `$id` and Ajv's exact-optional one disagree only in typing.
  return ajv.compile(specs.schemasWithoutId[version] as unknown as AnySchema);
}

test("@asyncapi/parser finds no error in docs/asyncapi-3.json and reads it as 3.0.0", async () => {
  const text = readFileSync(DOCUMENTS["3.0.0"], "utf8");
  const parser = new Parser();
  const diagnostics = await parser.validate(text);
  const errors = diagnostics.filter((d) => d.severity === ERROR);
  assert.deepEqual(
    errors.map((d) => `${d.code} at ${d.path.join(".")}: ${d.message}`),
    [],
    "the AsyncAPI 3.0 document has errors",
  );
  const { document } = await parser.parse(text);
  assert.ok(document, "the parser returned no document");
  assert.equal(document.version(), "3.0.0");
  const json = load(DOCUMENTS["3.0.0"]);
  const operations = json["operations"] as Record<string, { action: string; reply?: unknown }>;
  assert.equal(document.operations().length, Object.keys(operations).length);
  // Every request the server receives is read with its reply, as a request/reply pair.
  let replied = 0;
  for (const operation of document.operations().all()) {
    const declared = operations[operation.id() ?? ""];
    assert.ok(declared, `operation ${operation.id()} is not in the JSON`);
    assert.equal(operation.action(), declared.action);
    if (declared.reply === undefined) continue;
    replied += 1;
    const reply = operation.reply();
    assert.ok(reply, `${operation.id()} has no reply as parsed`);
    assert.ok(reply.messages().length > 0, `${operation.id()}'s reply has no message`);
    assert.equal(reply.channel()?.id(), operation.channels().all()[0]?.id());
  }
  assert.ok(replied >= 8, `only ${replied} request/reply operations`);
  assert.ok(
    document.operations().all().some((o) => o.id() === "receiveBarsSubscribe"),
    "receiveBarsSubscribe is missing",
  );
});

for (const version of ["2.6.0", "3.0.0"] as const) {
  test(`docs/${version === "3.0.0" ? "asyncapi-3" : "asyncapi"}.json is valid for the official ${version} JSON Schema`, () => {
    const validate = officialValidator(version);
    const document = load(DOCUMENTS[version]);
    assert.equal(document["asyncapi"], version);
    assert.ok(validate(document), JSON.stringify(validate.errors, null, 2));
    // The schema really checks: the other version's document, and a message with a field
    // its version does not have, are refused.
    const other = load(DOCUMENTS[version === "3.0.0" ? "2.6.0" : "3.0.0"]);
    assert.equal(validate(other), false, "the other version's document passed");
    const broken = load(DOCUMENTS[version]);
    const messages = (broken["components"] as { messages: Record<string, Json> }).messages;
    const first = Object.values(messages)[0];
    assert.ok(first);
    first["notAMessageField"] = true;
    assert.equal(validate(broken), false, "a message with an unknown field passed");
  });
}

test("the types generated from docs/asyncapi-3.json are those generated from docs/asyncapi.json", async () => {
  const generator = (await import(
    pathToFileURL(repoPath("scripts", "generate_ws_types.mjs")).href
  )) as {
    render: (source: string) => Promise<string>;
    renderCodes: (document: Json) => string;
  };
  const messages2 = await generator.render(DOCUMENTS["2.6.0"]);
  const messages3 = await generator.render(DOCUMENTS["3.0.0"]);
  assert.ok(messages2.includes("export interface BarsSubscribeMessage"), messages2.slice(0, 500));
  assert.equal(messages3, messages2, "messages.ts differs between the 2.6 and 3.0 documents");
  const codes2 = generator.renderCodes(load(DOCUMENTS["2.6.0"]));
  const codes3 = generator.renderCodes(load(DOCUMENTS["3.0.0"]));
  assert.ok(codes2.includes("export const CLOSE_CODES"), codes2.slice(0, 500));
  assert.equal(codes3, codes2, "codes.ts differs between the 2.6 and 3.0 documents");
});
