/**
 * A real `marketcast serve` in a child process on 127.0.0.1, for the client tests.
 *
 * Every server started here is killed when its test ends and, as a last resort, when this
 * Node process exits, so a failing test never leaves a server behind.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";

import { repoPath } from "./paths.js";

const MARKETCAST = repoPath(".venv", "bin", "marketcast");
/** Output kept per server for failure messages; older output is dropped. */
const LOG_LIMIT = 64 * 1024;

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

export interface Server {
  readonly port: number;
  /** `ws://127.0.0.1:<port>/api/v1/ws` */
  readonly url: string;
  readonly process: ChildProcess;
  /** The server's recent output, for assertion messages. */
  log(): string;
  /** SIGKILL: the connection drops with no close frame, as when a machine dies. */
  kill(): Promise<void>;
  /** SIGTERM, then SIGKILL if it is still there after 10 s. */
  stop(): Promise<void>;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** Start a server with `MARKETCAST_<NAME>` settings and wait until /readyz answers 200. */
export async function startServer(
  settings: Record<string, string>,
  port?: number,
): Promise<Server> {
  if (!existsSync(MARKETCAST)) {
    throw new Error(`${MARKETCAST} is missing: run \`make setup\` at the repository root`);
  }
  const chosen = port ?? (await freePort());
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("MARKETCAST_")) env[name] = value;
  }
  for (const [name, value] of Object.entries(settings))
    env[`MARKETCAST_${name.toUpperCase()}`] = value;
  env["MARKETCAST_HOST"] = "127.0.0.1";
  env["MARKETCAST_PORT"] = String(chosen);
  const child = spawn(MARKETCAST, ["serve"], {
    env,
    cwd: repoPath(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-LOG_LIMIT);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  exited.then(
    () => running.delete(child),
    () => undefined,
  );

  const end = async (signal: NodeJS.Signals, graceMs: number) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  };
  const server: Server = {
    port: chosen,
    url: `ws://127.0.0.1:${chosen}/api/v1/ws`,
    process: child,
    log: () => output,
    kill: () => end("SIGKILL", 0),
    stop: () => end("SIGTERM", 10_000),
  };
  try {
    await waitReady(server, 30_000);
  } catch (error) {
    await server.kill();
    throw error;
  }
  return server;
}

async function waitReady(server: Server, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.process.exitCode !== null) {
      throw new Error(`server exited early with ${server.process.exitCode}:\n${server.log()}`);
    }
    try {
      const response = await fetch(`http://127.0.0.1:${server.port}/readyz`, {
        signal: AbortSignal.timeout(1_000),
      });
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`server not ready within ${timeoutMs} ms:\n${server.log()}`);
}

/** Client options for tests against a real server: fast reconnects and pings, so the tests
 * spend their time on what they check. */
export const FAST = {
  backoff: { baseMs: 50, capMs: 400 },
  connectTimeoutMs: 1_000,
  pingIntervalMs: 250,
  pingTimeoutMs: 500,
  requestTimeoutMs: 3_000,
};

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `condition` every 20 ms until it holds; fail with `what` after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
