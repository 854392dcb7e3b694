#!/usr/bin/env node
// Write frontend-types/src/generated/messages.ts: the TypeScript types of every WebSocket
// message, generated from docs/asyncapi.json (the committed contract), never from the server's
// Python code, so front ends see exactly what the published document promises.
//
// Usage: node scripts/generate_ws_types.mjs   (or `make generate-ws-types`)
//
// Why json-schema-to-typescript: given envelopes whose `type` is one `const`, it emits one
// interface per envelope and plain unions for `ServerMessage` / `ClientMessage`, which is a
// discriminated union in TypeScript (`switch (m.type)` narrows, `never` checks exhaustiveness).
// The output depends only on the document and the pinned generator (no dates, no paths), so
// scripts/check_generated.py can regenerate it and compare it with git.

import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SOURCE = fileURLToPath(new URL("../docs/asyncapi.json", import.meta.url));
const OUTPUT = fileURLToPath(
  new URL("../frontend-types/src/generated/messages.ts", import.meta.url),
);
// The close-code and error-code tables (`x-close-codes`, `x-error-codes`): values, not types.
const CODES_OUTPUT = fileURLToPath(
  new URL("../frontend-types/src/generated/codes.ts", import.meta.url),
);

/**
 * `--source FILE`, `--output FILE`, `--codes-output FILE`: another document and where its
 * types go (a test renders a throwaway channel family into a temporary tree).
 */
function parseArgs(argv) {
  const known = ["--source", "--output", "--codes-output"];
  const found = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!known.includes(argv[i]) || argv[i + 1] === undefined) {
      throw new Error(`expected ${known.join(" FILE, ")} FILE, got ${argv.slice(i).join(" ")}`);
    }
    found[argv[i]] = argv[i + 1];
  }
  return found;
}
const RETRY_POLICIES = ["never", "immediate", "growing", "backoff"];
const ERROR_RETRIES = ["never", "later"];
// The generator is a devDependency of the npm package, not of the repository root.
const requireFromPackage = createRequire(
  new URL("../frontend-types/package.json", import.meta.url),
);

const COMPONENT_REF = "#/components/schemas/";
const UNIONS = ["ServerMessage", "ClientMessage"];
const HEADER = `/**
 * Generated from docs/asyncapi.json by scripts/generate_ws_types.mjs: do not edit.
 * Regenerate with \`make generate-ws-types\` after the contract changes.
 */`;

function loadCompiler() {
  try {
    return requireFromPackage("json-schema-to-typescript");
  } catch (error) {
    throw new Error(
      `json-schema-to-typescript is not installed in frontend-types/node_modules ` +
        `(run \`make setup\`): ${error.message}`,
    );
  }
}

/** The document's schemas with `$ref`s pointing at `definitions`, as the compiler expects. */
function definitionsOf(document) {
  const schemas = document?.components?.schemas;
  if (!schemas || typeof schemas !== "object") {
    throw new Error(`${relative(ROOT, SOURCE)} has no components.schemas`);
  }
  const text = JSON.stringify(schemas).replaceAll(`"${COMPONENT_REF}`, '"#/definitions/');
  if (/"\$ref":"(?!#\/definitions\/)/.test(text)) {
    throw new Error("a $ref points outside components.schemas; this generator cannot follow it");
  }
  return JSON.parse(text);
}

/** The envelope names of a union, each checked to have a `type` fixed by one `const`. */
function envelopesOf(definitions, union) {
  const schema = definitions[union];
  if (!schema || !Array.isArray(schema.oneOf)) {
    throw new Error(`expected components.schemas.${union} to be a oneOf of envelopes`);
  }
  return schema.oneOf.map((member) => {
    const name = String(member.$ref ?? "").replace("#/definitions/", "");
    const type = definitions[name]?.properties?.type;
    if (typeof type?.const !== "string") {
      throw new Error(
        `${union} member ${name || JSON.stringify(member)} needs a \`type\` with one string ` +
          `const, or the union is not discriminated; got ${JSON.stringify(type)}`,
      );
    }
    return { name, type: type.const };
  });
}

/**
 * Which reply answers which request, from the messages' `x-reply-to` extension, as a type the
 * client uses to type `request()`.
 */
function replyTypes(document, definitions) {
  const clientTypes = new Set(envelopesOf(definitions, "ClientMessage").map((e) => e.type));
  const lines = [];
  for (const message of Object.values(document.components.messages ?? {})) {
    const request = message["x-reply-to"];
    if (request === undefined) continue;
    const name = String(message.payload?.$ref ?? "").replace(COMPONENT_REF, "");
    const reply = definitions[name]?.properties?.type?.const;
    if (!clientTypes.has(request) || typeof reply !== "string") {
      throw new Error(`message ${message.name} replies to ${request}, which is no client message`);
    }
    clientTypes.delete(request);
    lines.push(`  ${JSON.stringify(request)}: ${JSON.stringify(reply)};`);
  }
  if (clientTypes.size > 0) {
    throw new Error(`client messages without a reply: ${[...clientTypes].sort().join(", ")}`);
  }
  lines.sort();
  return [
    "/**",
    " * For each request `type`, the `type` of the reply that answers it (from `x-reply-to`).",
    " */",
    "export interface ReplyTypes {",
    ...lines,
    "}",
  ].join("\n");
}

/**
 * An object schema that allows no property at all becomes `Record<string, never>`: an empty
 * interface would accept any object, so a misspelt parameter would compile.
 */
function closeEmptyObjects(definitions) {
  for (const schema of Object.values(definitions)) {
    const empty = schema.properties && Object.keys(schema.properties).length === 0;
    if (schema.type === "object" && empty && schema.additionalProperties === false) {
      schema.tsType = "Record<string, never>";
    }
  }
}

export async function render(source = SOURCE) {
  const { compile } = loadCompiler();
  const document = JSON.parse(readFileSync(source, "utf8"));
  const definitions = definitionsOf(document);
  for (const union of UNIONS) envelopesOf(definitions, union);
  closeEmptyObjects(definitions);
  // The root is the union of both directions; every schema hangs off it as a named definition.
  const root = {
    title: "AnyMessage",
    description: "Any message on the wire, in either direction.",
    anyOf: UNIONS.map((name) => ({ $ref: `#/definitions/${name}` })),
    definitions,
  };
  const compiled = await compile(root, "AnyMessage", {
    bannerComment: "",
    unreachableDefinitions: true,
    additionalProperties: false,
    strictIndexSignatures: true,
    format: true,
    style: { printWidth: 100 },
  });
  // The compiler notes where each definition came from; that says nothing to a reader here.
  const body = compiled
    .replace(
      /\n \*\n \* This interface was referenced by `\w+`'s JSON-Schema\n \* via the `definition` "\w+"\./g,
      "",
    )
    .replace(
      /\/\*\*\n \* This interface was referenced by `\w+`'s JSON-Schema\n \* via the `definition` "\w+"\.\n \*\/\n/g,
      "",
    )
    .trim();
  if (body.includes("This interface was referenced")) {
    throw new Error("unexpected compiler comment layout; update the clean-up in this generator");
  }
  return `${HEADER}\n\n${body}\n\n${replyTypes(document, definitions)}\n`;
}

/**
 * The document's close-code and error-code tables as constants, so that the client's reconnect
 * policy and its retry of refused subscribes come from the contract, as the Python client's do.
 */
export function renderCodes(document = JSON.parse(readFileSync(SOURCE, "utf8"))) {
  const closeCodes = document["x-close-codes"];
  const errorCodes = document["x-error-codes"];
  if (!closeCodes || !errorCodes) {
    throw new Error(`${relative(ROOT, SOURCE)} has no x-close-codes / x-error-codes`);
  }
  const closeLines = [];
  for (const [code, info] of Object.entries(closeCodes)) {
    if (!/^[1-4][0-9]{3}$/.test(code) || !RETRY_POLICIES.includes(info?.retry)) {
      throw new Error(`x-close-codes: bad entry ${code}: ${JSON.stringify(info)}`);
    }
    closeLines.push(
      `  ${code}: {\n    meaning: ${JSON.stringify(String(info.meaning))},\n` +
        `    retry: ${JSON.stringify(info.retry)},\n  },`,
    );
  }
  const errorLines = [];
  for (const [code, info] of Object.entries(errorCodes)) {
    if (!ERROR_RETRIES.includes(info?.retry)) {
      throw new Error(`x-error-codes: bad entry ${code}: ${JSON.stringify(info)}`);
    }
    errorLines.push(`  ${code}: ${JSON.stringify(info.retry)},`);
  }
  return [
    HEADER,
    "",
    'import type { ErrorCode } from "./messages.js";',
    "",
    "/**",
    " * What a client does after a close: `never` retry, reconnect `immediate`ly, `growing`",
    " * back-off (reset only once a later connection is stable), or plain `backoff`.",
    " */",
    `export type RetryPolicy = ${RETRY_POLICIES.map((p) => JSON.stringify(p)).join(" | ")};`,
    "",
    "export interface CloseCodeInfo {",
    "  /** What the server means by it. */",
    "  readonly meaning: string;",
    "  /** What the client does next. */",
    "  readonly retry: RetryPolicy;",
    "}",
    "",
    "/** Every close code the server sends (`x-close-codes`). */",
    "export const CLOSE_CODES: Readonly<Record<number, CloseCodeInfo>> = Object.freeze({",
    ...closeLines,
    "});",
    "",
    "/**",
    " * For each error code, whether the same request may be sent again after a delay",
    " * (`later`) or not (`never`) (`x-error-codes`).",
    " */",
    `export const ERROR_CODE_RETRY: Readonly<Record<ErrorCode, ${ERROR_RETRIES.map((p) => JSON.stringify(p)).join(" | ")}>> =`,
    "  Object.freeze({",
    ...errorLines.map((line) => `  ${line}`),
    "  });",
    "",
  ].join("\n");
}

function write(path, text) {
  if (existsSync(path) && readFileSync(path, "utf8") === text) return;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  console.log(`wrote ${relative(ROOT, path)}`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const source = args["--source"] ?? SOURCE;
  write(args["--output"] ?? OUTPUT, await render(source));
  const document = JSON.parse(readFileSync(source, "utf8"));
  write(args["--codes-output"] ?? CODES_OUTPUT, renderCodes(document));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error) => {
    console.error(`generate_ws_types: ${error.message}`);
    process.exit(1);
  });
}
