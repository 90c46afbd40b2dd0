import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { HttpsJsonClient } from "./https-json.js";
import { logTail } from "./server-log.js";

export interface ServerSpec {
  readonly name: string;
  /** The built entry point to run with node. */
  readonly script: string;
  /** Options for node itself (`--cpu-prof` is refused in NODE_OPTIONS). */
  readonly nodeArgs: readonly string[];
  readonly args: readonly string[];
  /** Variables that configure it; every inherited PAYVAULT_* / DATABASE_URL is dropped first. */
  readonly env: Readonly<Record<string, string>>;
  readonly port: number;
  readonly logFile: string;
}

export interface ServerProcess {
  readonly name: string;
  readonly pid: number;
  readonly url: string;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL if it has not exited in time; resolves with its exit code. */
  stop(): Promise<number | null>;
}

const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 20_000;
const running = new Set<ChildProcess>();

/** Kills whatever is still running (on the runner's exit, error or Ctrl-C). */
export function killAllServers(): void {
  for (const child of running) child.kill("SIGKILL");
  running.clear();
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== "object" || address === null) throw new Error("no free port");
  return address.port;
}

function childEnv(extra: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith("PAYVAULT_") || key === "DATABASE_URL" || key === "NODE_OPTIONS") continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

/** Starts a server as a child process (output to its log file) and waits until /healthz answers. */
export async function startServerProcess(spec: ServerSpec): Promise<ServerProcess> {
  const log = openSync(spec.logFile, "a", 0o600);
  const child = spawn(process.execPath, [...spec.nodeArgs, spec.script, ...spec.args], {
    env: childEnv(spec.env),
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  running.add(child);
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const url = `https://127.0.0.1:${spec.port}`;
  const server: ServerProcess = {
    name: spec.name,
    pid: child.pid ?? -1,
    url,
    logFile: spec.logFile,
    async stop() {
      if (!running.has(child)) return exited;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  await waitUntilHealthy(server, exited);
  return server;
}

async function waitUntilHealthy(server: ServerProcess, exited: Promise<number | null>) {
  let gone: number | null | undefined;
  void exited.then((code) => {
    gone = code;
  });
  const client = new HttpsJsonClient(server.url);
  try {
    for (const deadline = Date.now() + READY_TIMEOUT_MS; Date.now() < deadline; ) {
      if (gone !== undefined) {
        throw new Error(
          `${server.name} exited with code ${gone}:\n${await logTail(server.logFile)}`,
        );
      }
      const ok = await client.send("GET", "/healthz", undefined, 2_000).then(
        (res) => res.status === 200,
        () => false,
      );
      if (ok) return;
      await sleep(200);
    }
  } finally {
    client.close();
  }
  await server.stop();
  throw new Error(`${server.name} did not become healthy:\n${await logTail(server.logFile)}`);
}
