import { mkdir, writeFile } from "node:fs/promises";
import { arch, cpus, loadavg, platform, release, totalmem } from "node:os";
import { join } from "node:path";
import type { BenchSettings } from "./bench-settings.js";
import type { DriverRun } from "./driver-run.js";
import { checkTargets, ratioToBaseline } from "./targets.js";

export interface MachineInfo {
  readonly node: string;
  readonly platform: string;
  readonly release: string;
  readonly arch: string;
  readonly cpus: readonly { model: string; speedMHz: number }[];
  readonly totalMemoryMB: number;
  /** 1/5/15-minute load averages: other work on the machine skews every figure. */
  readonly loadAverage: readonly number[];
}

export function machineInfo(): MachineInfo {
  return {
    node: process.version,
    platform: platform(),
    release: release(),
    arch: arch(),
    cpus: cpus().map((c) => ({ model: c.model, speedMHz: c.speed })),
    totalMemoryMB: Math.round(totalmem() / 1e6),
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** Writes `<outDir>/bench-<driver>-<timestamp>.json` (bench-results/ is git-ignored). */
export async function writeResults(
  run: DriverRun,
  context: {
    settings: BenchSettings;
    tool: { name: string; version: string };
    machineAtStart: MachineInfo;
    startedAt: Date;
  },
): Promise<string> {
  await mkdir(context.settings.outDir, { recursive: true });
  const stamp = context.startedAt.toISOString().replace(/[:.]/g, "-");
  const file = join(context.settings.outDir, `bench-${run.driver}-${stamp}.json`);
  const document = {
    schema: "payvault-bench/1",
    startedAt: context.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    driver: run.driver,
    postgresVersion: run.postgresVersion,
    tool: context.tool,
    settings: context.settings,
    machine: { ...context.machineAtStart, loadAverageAtEnd: machineInfo().loadAverage },
    scenarios: run.scenarios.map((s) => ({ ...s, ratioToBaseline: ratioToBaseline(run, s.name) })),
    memoryAfterStart: run.memoryAfterStart,
    memory: run.memory,
    targets: checkTargets(run),
    profile: run.profile,
  };
  await writeFile(file, `${JSON.stringify(document, null, 2)}\n`);
  return file;
}
