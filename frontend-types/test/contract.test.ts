/**
 * The contract from the Node side: the AsyncAPI document is valid for the official parser,
 * the committed TypeScript types are what the generator makes of it, and the type-test file's
 * expected errors occur on exactly the lines that expect them.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

import { Parser } from "@asyncapi/parser";

import { repoPath } from "./support/paths.js";

const ERROR = 0; // @asyncapi/parser's DiagnosticSeverity.Error

test("@asyncapi/parser finds no error in docs/asyncapi.json", async () => {
  const text = readFileSync(repoPath("docs", "asyncapi.json"), "utf8");
  const diagnostics = await new Parser().validate(text);
  const errors = diagnostics.filter((d) => d.severity === ERROR);
  assert.deepEqual(
    errors.map((d) => `${d.code} at ${d.path.join(".")}: ${d.message}`),
    [],
    "the published AsyncAPI document has errors",
  );
});

test("src/generated/messages.ts is what the generator makes of docs/asyncapi.json", async () => {
  const generator = (await import(
    pathToFileURL(repoPath("scripts", "generate_ws_types.mjs")).href
  )) as {
    render: () => Promise<string>;
  };
  const committed = readFileSync(
    repoPath("frontend-types", "src", "generated", "messages.ts"),
    "utf8",
  );
  assert.ok(
    committed === (await generator.render()),
    "src/generated/messages.ts is stale: make generate-ws-types",
  );
});

test("every @ts-expect-error in the type tests marks a line that fails to compile, and only those", () => {
  const directive = /^\s*\/\/ @ts-expect-error\b/;
  const lines = readFileSync(repoPath("frontend-types", "test", "types.test-d.ts"), "utf8").split(
    "\n",
  );
  // Line numbers are 1-based; the directive governs the line after it.
  const expected = lines.flatMap((line, index) => (directive.test(line) ? [index + 2] : []));
  assert.ok(expected.length >= 15, `only ${expected.length} expected errors`);
  // Blank the directives (keeping line numbers) and compile a copy: the errors must land on
  // exactly those lines, so none of them fails for a reason other than the misuse shown.
  const probe = lines
    .map((line) =>
      directive.test(line) ? "" : line.replace('"../src/index.js"', '"../../src/index.js"'),
    )
    .join("\n");
  const dir = repoPath("frontend-types", "build", "typeprobe");
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/types.probe.ts`, probe);
  writeFileSync(
    `${dir}/tsconfig.json`,
    JSON.stringify({
      extends: "../../tsconfig.json",
      compilerOptions: { noEmit: true, rootDir: "../.." },
      include: ["types.probe.ts"],
      exclude: [],
    }),
  );
  const tsc = spawnSync(
    repoPath("frontend-types", "node_modules", ".bin", "tsc"),
    ["-p", `${dir}/tsconfig.json`],
    {
      encoding: "utf8",
      timeout: 60_000,
    },
  );
  assert.equal(tsc.error, undefined, String(tsc.error));
  const failed = new Set<number>();
  for (const match of tsc.stdout.matchAll(/^(.*?)\((\d+),\d+\): error TS\d+/gm)) {
    assert.ok(match[1]?.endsWith("types.probe.ts"), `an error outside the probe: ${match[0]}`);
    failed.add(Number(match[2]));
  }
  assert.deepEqual(
    [...failed].sort((a, b) => a - b),
    expected,
    tsc.stdout,
  );
});
