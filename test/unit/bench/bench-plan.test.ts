import { describe, expect, it } from "vitest";
import type { ScenarioName } from "../../../src/bench/bench-plan.js";
import { wanted } from "../../../src/bench/bench-plan.js";
import type { BenchSettings } from "../../../src/bench/bench-settings.js";
import type { DriverRun } from "../../../src/bench/driver-run.js";
import type { ScenarioResult } from "../../../src/bench/scenario.js";
import { checkTargets, forwardOverheadMs } from "../../../src/bench/targets.js";

const ALL: readonly ScenarioName[] = [
  "echo",
  "bare-insert",
  "tokenize",
  "webhook-intake",
  "capture",
  "batch-tokenize",
  "bare-select",
  "reveal",
  "processor-direct",
  "forward",
  "tokenize@half",
  "reveal@half",
  "capture@half",
  "processor-direct@fixed",
  "forward@fixed",
];

function runs(only: readonly string[]): ScenarioName[] {
  const settings = { only } as unknown as BenchSettings;
  return ALL.filter((name) => wanted(settings, name));
}

describe("BENCH_ONLY", () => {
  it("forward brings its direct baseline and both fixed-rate runs (the target needs all four)", () => {
    expect(runs(["forward"])).toEqual([
      "processor-direct",
      "forward",
      "processor-direct@fixed",
      "forward@fixed",
    ]);
  });

  it("webhook-intake brings the bare INSERT it is compared with", () => {
    expect(runs(["webhook-intake"])).toEqual(["bare-insert", "webhook-intake"]);
  });

  it("a half-rate or fixed-rate run brings its peak; the older names still work", () => {
    expect(runs(["capture@half"])).toEqual(["capture", "capture@half"]);
    expect(runs(["forward@fixed"])).toEqual(["forward", "forward@fixed"]);
    expect(runs(["tokenize"])).toEqual(["tokenize"]);
    expect(runs([])).toEqual(ALL);
  });
});

function scenario(name: string, fields: Partial<ScenarioResult>): ScenarioResult {
  return {
    name,
    server: "vault",
    okPerSecond: 100,
    itemsPerSecond: undefined,
    latencyMs: { p50: 1, p90: 1, p99: 1, max: 1, mean: 1 },
    failures: { status: 0, socket: 0, timeout: 0 },
    ...fields,
  } as ScenarioResult;
}

function run(scenarios: ScenarioResult[]): DriverRun {
  return { scenarios, memory: { vault: undefined, baseline: undefined } } as unknown as DriverRun;
}

const latency = (p50: number, p99: number) => ({ p50, p90: p99, p99, max: p99, mean: p50 });

describe("the issue-6 targets", () => {
  const measured = run([
    scenario("webhook-intake", { itemsPerSecond: 3120, okPerSecond: 3150 }),
    scenario("processor-direct", { server: "processor", latencyMs: latency(0.3, 4) }),
    scenario("forward", { latencyMs: latency(20, 45) }),
    scenario("processor-direct@fixed", { server: "processor", latencyMs: latency(0.21, 1.5) }),
    scenario("forward@fixed", { latencyMs: latency(1.96, 6) }),
  ]);
  const target = (label: string) => checkTargets(measured).find((t) => t.target === label);

  it("reads the forward overhead from the fixed-rate pair, not the saturated peak", () => {
    expect(forwardOverheadMs(measured, "fixed")).toEqual({ p50: 1.75, p99: 4.5 });
    expect(forwardOverheadMs(measured, "peak")).toEqual({ p50: 19.7, p99: 41 });
    expect(target("forward overhead ≤ 2 ms at p50 (fixed rate)")).toEqual({
      target: "forward overhead ≤ 2 ms at p50 (fixed rate)",
      measured: "+1.75 ms",
      met: true,
    });
  });

  it("counts queued events, not every 200 (a duplicate is acknowledged but not queued)", () => {
    expect(target("webhook intake ≥ 3,000 events/s queued")).toMatchObject({
      measured: "3,120 events/s",
      met: true,
    });
    const slow = run([scenario("webhook-intake", { itemsPerSecond: 2999, okPerSecond: 4000 })]);
    expect(
      checkTargets(slow).find((t) => t.target === "webhook intake ≥ 3,000 events/s queued")?.met,
    ).toBe(false);
  });

  it("says 'not run' rather than guess when a side of the comparison is missing", () => {
    const half = run([scenario("forward@fixed", { latencyMs: latency(1, 2) })]);
    expect(forwardOverheadMs(half, "fixed")).toBeUndefined();
    expect(checkTargets(half).find((t) => t.target.startsWith("forward overhead"))?.measured).toBe(
      "not run",
    );
  });
});
