import type { DriverRun } from "./driver-run.js";
import type { ScenarioResult } from "./scenario.js";

/** The vault scenario each baseline is the ceiling of (the "vault/baseline ratio"). */
export const BASELINE_OF: Readonly<Record<string, string>> = {
  tokenize: "bare-insert",
  reveal: "bare-select",
  "bare-insert": "echo",
  "bare-select": "echo",
};

export interface TargetCheck {
  readonly target: string;
  readonly measured: string;
  /** undefined when the scenario was not run. */
  readonly met: boolean | undefined;
}

function find(run: DriverRun, name: string): ScenarioResult | undefined {
  return run.scenarios.find((s) => s.name === name);
}

/** rate(name) / rate(its baseline), or undefined when either was not run. */
export function ratioToBaseline(run: DriverRun, name: string): number | undefined {
  const scenario = find(run, name);
  const baseline = find(run, BASELINE_OF[name] ?? "");
  if (scenario === undefined || baseline === undefined || baseline.okPerSecond === 0)
    return undefined;
  return scenario.okPerSecond / baseline.okPerSecond;
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const pct = (r: number) => `${Math.round(r * 100)}%`;

function check(
  target: string,
  value: number | undefined,
  ok: (v: number) => boolean,
  show: (v: number) => string,
): TargetCheck {
  return value === undefined
    ? { target, measured: "not run", met: undefined }
    : { target, measured: show(value), met: ok(value) };
}

/** The targets: reported, never asserted (a slow machine must not fail a build). */
export function checkTargets(run: DriverRun): TargetCheck[] {
  const rate = (name: string) => find(run, name)?.okPerSecond;
  const p99 = (name: string) => find(run, name)?.latencyMs.p99;
  return [
    check(
      "tokenize ≥ 5,000 req/s",
      rate("tokenize"),
      (v) => v >= 5000,
      (v) => `${fmt(v)} req/s`,
    ),
    check("tokenize ≥ 70% of bare INSERT", ratioToBaseline(run, "tokenize"), (v) => v >= 0.7, pct),
    check(
      "reveal ≥ 8,000 req/s",
      rate("reveal"),
      (v) => v >= 8000,
      (v) => `${fmt(v)} req/s`,
    ),
    check("reveal ≥ 75% of bare SELECT", ratioToBaseline(run, "reveal"), (v) => v >= 0.75, pct),
    check(
      "batch tokenize ≥ 30,000 cards/s",
      find(run, "batch-tokenize")?.itemsPerSecond,
      (v) => v >= 30_000,
      (v) => `${fmt(v)} cards/s`,
    ),
    check(
      "tokenize p99 ≤ 10 ms at half peak",
      p99("tokenize@half"),
      (v) => v <= 10,
      (v) => `${v} ms`,
    ),
    check(
      "reveal p99 ≤ 10 ms at half peak",
      p99("reveal@half"),
      (v) => v <= 10,
      (v) => `${v} ms`,
    ),
    check(
      "vault peak RSS ≤ 200 MB",
      run.memory.vault?.peakRssMB,
      (v) => v <= 200,
      (v) => `${fmt(v)} MB`,
    ),
    check(
      "no failed vault requests",
      run.scenarios.filter((s) => s.server === "vault").reduce((n, s) => n + failedOf(s), 0),
      (v) => v === 0,
      (v) => `${fmt(v)} failed`,
    ),
  ];
}

export function failedOf(s: ScenarioResult): number {
  return s.failures.status + s.failures.socket + s.failures.timeout;
}
