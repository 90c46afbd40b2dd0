import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchSettings } from "./bench-settings.js";
import type { Window } from "./cpu-profile.js";
import { monotonicUs } from "./cpu-profile.js";
import type { BodiesUse, BodySource, WrittenBodies } from "./request-bodies.js";
import { prepareBodies } from "./request-bodies.js";
import type { LogDigest } from "./server-log.js";
import { digestLog, logOffset } from "./server-log.js";
import type { ServerProcess } from "./server-process.js";
import type { TestCardSource } from "./test-cards.js";
import type { LoadResult } from "./wrk-runner.js";
import { runWrk } from "./wrk-runner.js";
import type { Workload } from "./wrk-script.js";
import { CARD_STRIDE } from "./wrk-script.js";

/** Who a scenario loads: the vault, the same-stack baseline, or the bench's local processor. */
export type ServerRole = "vault" | "baseline" | "processor";

/** What a scenario counts in its 200 answers, when the status alone does not say it all. */
export interface CountedItems {
  /** Plain text counted in each 200 body (see ScriptOptions.countMatch). */
  readonly match: string;
  /** What is counted, for the report ("cards", "events"). */
  readonly unit: string;
}

export interface ScenarioSpec {
  readonly name: string;
  readonly server: ServerRole;
  readonly workload: Workload;
  readonly connections: number;
  /** Requests per second to hold; 0 for as many as the server can answer. */
  readonly rate: number;
  /** Items really done, counted in the answers (batch: cards created; webhooks: events queued). */
  readonly count?: CountedItems;
  readonly authorized: boolean;
  /** Where a `lines` workload's bodies come from: made before each wrk run, deleted after. */
  readonly bodies?: BodySource;
}

export interface ScenarioResult {
  readonly name: string;
  readonly server: ServerRole;
  readonly connections: number;
  readonly targetRate: number;
  readonly seconds: number;
  readonly responses: number;
  /** Responses with status < 400, per second. */
  readonly okPerSecond: number;
  /**
   * With a `count`: items really done per second (batch tokenize: cards tokenized, item status
   * 201; webhook intake: events queued, `duplicate: false`), in `itemUnit`.
   */
  readonly itemsPerSecond: number | undefined;
  readonly itemUnit: string | undefined;
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  readonly failures: { status: number; socket: number; timeout: number };
  readonly statuses: Record<string, number>;
  readonly problems: LogDigest["problems"];
  readonly problemCount: number;
  readonly serverCpuPercent: number;
  readonly serverMaxRssMB: number;
  readonly serverStorageWritesMB: number;
  /** PSI: how much of the run other work made tasks wait for a CPU / for I/O (see ResourceUse). */
  readonly machineCpuPressurePercent: number;
  readonly machineIoPressurePercent: number;
  /** The measured span on the monotonic clock (to cut a CPU profile to this scenario). */
  readonly window: Window;
  /** A `lines` workload's bodies: how many were made, sent, and wanted after they ran out. */
  readonly bodies: BodiesUse | undefined;
  /**
   * Webhook intake: seconds after the run until the vault's worker had processed every queued
   * event (undefined: it had not within the wait).
   */
  readonly queueDrainSeconds?: number | undefined;
}

export interface ScenarioContext {
  readonly settings: BenchSettings;
  /** Connections for this driver's single-item scenarios. */
  readonly connections: number;
  readonly servers: {
    readonly vault: ServerProcess;
    readonly baseline: ServerProcess;
    /** Started only when a forward scenario runs. */
    readonly processor: ServerProcess | undefined;
  };
  /** The name the vault calls the processor by (`localhost`), when it runs. */
  readonly processorHost: string | undefined;
  readonly authorization: string;
  readonly cards: TestCardSource;
  readonly workDir: string;
}

export function serverOf(ctx: ScenarioContext, role: ServerRole): ServerProcess {
  const server = ctx.servers[role];
  if (server === undefined) throw new Error(`the ${role} server is not running`);
  return server;
}

type Load = LoadResult & { readonly bodies: WrittenBodies | undefined };

/** One wrk run; `ready` is called once any bodies are made, right before wrk starts. */
async function load(
  spec: ScenarioSpec,
  ctx: ScenarioContext,
  seconds: number,
  ready?: () => Promise<void>,
): Promise<Load> {
  const { settings, cards } = ctx;
  const server = serverOf(ctx, spec.server);
  const { workload } = spec;
  const usesCards = workload.kind === "card" || workload.kind === "batch";
  const file = workload.kind === "lines" ? workload.linesFile : undefined;
  if (file !== undefined && spec.bodies === undefined) {
    throw new Error(`${spec.name}: a lines workload needs a body source`);
  }
  try {
    const bodies =
      file === undefined || spec.bodies === undefined
        ? undefined
        : await prepareBodies(spec.bodies, { name: spec.name, rate: spec.rate, seconds, file });
    await ready?.();
    const result = await runWrk({
      url: server.url,
      connections: spec.connections,
      threads: settings.threads,
      seconds,
      serverPid: server.pid,
      workDir: ctx.workDir,
      script: {
        workload,
        authorization: spec.authorized ? ctx.authorization : undefined,
        // Every run gets fresh counter ranges, so no card is ever sent twice in one bench.
        cardStart: usesCards ? cards.take(settings.threads * CARD_STRIDE) : 0,
        expMonth: cards.expMonth,
        expYear: cards.expYear,
        ratePerThread: spec.rate / settings.threads,
        threads: settings.threads,
        countMatch: spec.count?.match,
      },
    });
    return { ...result, bodies };
  } finally {
    // The bodies hold card data (encrypted, but a session could have them tokenized): gone now.
    if (file !== undefined) await rm(file, { force: true });
  }
}

/** A warm-up (at peak only), then the measured run, then what the server logged meanwhile. */
export async function runScenario(
  spec: ScenarioSpec,
  ctx: ScenarioContext,
): Promise<ScenarioResult> {
  if (spec.rate === 0) {
    const warm = await load(spec, ctx, ctx.settings.warmupSeconds);
    if (warm.wrk.lines_missing > 0) {
      process.stderr.write(`  ${spec.name}: the warm-up ran out of bodies and stopped early\n`);
    }
  }
  const server = serverOf(ctx, spec.server);
  // The span starts once any bodies are made (making them calls the vault once for a session).
  let offset = 0;
  let startUs = 0;
  const measured = await load(spec, ctx, ctx.settings.seconds, async () => {
    offset = await logOffset(server.logFile);
    startUs = monotonicUs();
  });
  const window = { startUs, endUs: monotonicUs() };
  await sleep(500); // pino writes asynchronously: let the last lines land
  const log = await digestLog(server.logFile, offset);
  return toResult(spec, measured, log, window);
}

function toResult(
  spec: ScenarioSpec,
  { wrk, server: use, bodies }: Load,
  log: LogDigest,
  window: Window,
): ScenarioResult {
  const seconds = wrk.duration_us / 1e6;
  const ms = (us: number) => Math.round(us / 10) / 100;
  return {
    name: spec.name,
    server: spec.server,
    connections: spec.connections,
    targetRate: spec.rate,
    seconds,
    responses: wrk.requests,
    okPerSecond: (wrk.requests - wrk.errors.status) / seconds,
    itemsPerSecond: spec.count === undefined ? undefined : wrk.counted / seconds,
    itemUnit: spec.count?.unit,
    latencyMs: {
      p50: ms(wrk.latency_us.p50),
      p90: ms(wrk.latency_us.p90),
      p99: ms(wrk.latency_us.p99),
      max: ms(wrk.latency_us.max),
      mean: ms(wrk.latency_us.mean),
    },
    failures: {
      status: wrk.errors.status,
      socket: wrk.errors.connect + wrk.errors.read + wrk.errors.write,
      timeout: wrk.errors.timeout,
    },
    statuses: log.statuses,
    problems: log.problems,
    problemCount: log.problemCount,
    serverCpuPercent: Math.round(use.cpuPercent),
    serverMaxRssMB: Math.round(use.maxRssMB),
    serverStorageWritesMB: use.storageWritesMB,
    machineCpuPressurePercent: use.machineCpuPressurePercent,
    machineIoPressurePercent: use.machineIoPressurePercent,
    window,
    bodies:
      bodies === undefined
        ? undefined
        : {
            made: bodies.made,
            sent: wrk.lines_sent,
            missing: wrk.lines_missing,
            generationSeconds: Math.round(bodies.seconds * 10) / 10,
            generatedPerSecond: Math.round(bodies.made / Math.max(bodies.seconds, 1e-3)),
          },
  };
}
