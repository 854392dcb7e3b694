/**
 * Where the repository is, found from this file so the tests run from any working directory
 * and from the compiled copy under build/ alike.
 */

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 10; depth += 1) {
    if (existsSync(join(dir, "pyproject.toml")) && existsSync(join(dir, "frontend-types")))
      return dir;
    dir = dirname(dir);
  }
  throw new Error(
    `no repository root (pyproject.toml + frontend-types/) above ${fileURLToPath(import.meta.url)}`,
  );
}

/** The repository root. */
export const ROOT = findRoot();

/** A path inside the repository. */
export function repoPath(...parts: string[]): string {
  return join(ROOT, ...parts);
}
