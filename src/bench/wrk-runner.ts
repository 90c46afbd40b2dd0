import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ResourceUse } from "./resource-sampler.js";
import { ResourceSampler } from "./resource-sampler.js";
import type { ScriptOptions } from "./wrk-script.js";
import { wrkScript } from "./wrk-script.js";

const run = promisify(execFile);

export interface WrkResult {
  readonly requests: number;
  readonly duration_us: number;
  readonly bytes: number;
  readonly errors: {
    readonly connect: number;
    readonly read: number;
    readonly write: number;
    /** Responses with a status of 400 or more. */
    readonly status: number;
    readonly timeout: number;
  };
  readonly latency_us: {
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly max: number;
    readonly mean: number;
  };
  /** Occurrences of the script's `countMatch` in 200 answers (cards created, events queued). */
  readonly counted: number;
  /** The `lines` workload: bodies sent, and requests a thread wanted after its lines ran out. */
  readonly lines_sent: number;
  readonly lines_missing: number;
}

export interface LoadRun {
  readonly url: string;
  readonly connections: number;
  readonly threads: number;
  readonly seconds: number;
  readonly script: ScriptOptions;
  /** The server to sample (VmRSS, CPU) while the load runs. */
  readonly serverPid: number;
  /** Where the Lua script is written (the run's private temp dir: it may hold an API key). */
  readonly workDir: string;
}

export interface LoadResult {
  readonly wrk: WrkResult;
  readonly server: ResourceUse;
}

export async function wrkVersion(): Promise<string> {
  try {
    // wrk -v prints its version and exits 1.
    const out = await run("wrk", ["-v"]).catch((err: { stdout?: string }) => err);
    const text = String(out.stdout ?? "");
    return /wrk (\S+)/.exec(text)?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

let scriptCount = 0;

/** One wrk run (bounded by -d and a hard timeout), with the server's resources sampled alongside. */
export async function runWrk(load: LoadRun): Promise<LoadResult> {
  const scriptFile = join(load.workDir, `load-${++scriptCount}.lua`);
  await writeFile(scriptFile, wrkScript(load.script), { mode: 0o600 });
  const args = [
    `-t${load.threads}`,
    `-c${Math.max(load.connections, load.threads)}`,
    `-d${load.seconds}s`,
    "--timeout",
    "10s",
    "-s",
    scriptFile,
    load.url,
  ];
  const sampler = new ResourceSampler(load.serverPid);
  const outcome = await run("wrk", args, {
    timeout: (load.seconds + 60) * 1000,
    killSignal: "SIGKILL",
    maxBuffer: 16 * 1024 * 1024,
  }).then(
    (done) => ({ stdout: done.stdout, error: undefined }),
    (error: unknown) => ({ stdout: "", error }),
  );
  const server = await sampler.stop();
  if (outcome.error !== undefined) throw outcome.error;
  const stdout = outcome.stdout;
  const line = stdout.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
  if (line === undefined) throw new Error(`wrk printed no result:\n${stdout}`);
  return { wrk: JSON.parse(line.slice("BENCH_RESULT ".length)) as WrkResult, server };
}
