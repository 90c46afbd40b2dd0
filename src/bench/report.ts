import type { BenchSettings } from "./bench-settings.js";
import type { DriverRun } from "./driver-run.js";
import {
  BASELINE_OF,
  checkTargets,
  failedOf,
  forwardOverheadMs,
  ranOutOf,
  ratioToBaseline,
} from "./targets.js";

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

function scenarioRows(run: DriverRun): string[][] {
  const echo = run.scenarios.find((s) => s.name === "echo");
  return run.scenarios.map((s) => {
    const ratio = ratioToBaseline(run, s.name);
    const measured =
      s.itemsPerSecond === undefined
        ? `${fmt(s.okPerSecond)} req/s`
        : `${fmt(s.itemsPerSecond)} ${s.itemUnit ?? "items"}/s`;
    // A run that ran out of bodies stopped early: its rate is understated.
    const rate = ranOutOf(s) > 0 ? `${measured} RAN OUT OF BODIES` : measured;
    return [
      s.name,
      s.server,
      s.targetRate > 0 ? `${rate} (held ${fmt(s.targetRate)})` : rate,
      s.latencyMs.p50.toFixed(2),
      s.latencyMs.p99.toFixed(2),
      ratio === undefined ? "" : `${ratio.toFixed(2)} of ${BASELINE_OF[s.name]}`,
      echo === undefined || s.targetRate > 0 || s.itemsPerSecond !== undefined
        ? ""
        : (s.okPerSecond / echo.okPerSecond).toFixed(2),
      `${s.serverCpuPercent}%`,
      String(s.serverMaxRssMB),
      String(failedOf(s)),
      `${s.machineCpuPressurePercent}% / ${s.machineIoPressurePercent}%`,
    ];
  });
}

/** The human-readable result of one driver: scenarios, then the targets, then any failure detail. */
export function formatDriverRun(run: DriverRun, settings: BenchSettings, tool: string): string {
  const head =
    `payvault bench — ${run.driver}${run.postgresVersion ? ` ${run.postgresVersion}` : ""} — ${tool}, ` +
    `${run.connections} connections (batch: ${settings.batchConnections} × ${settings.batchSize} cards), ` +
    `${settings.seconds} s per scenario after ${settings.warmupSeconds} s warm-up`;
  const scenarios = table(SCENARIO_COLUMNS, scenarioRows(run));
  const targets = table(
    ["target", "", "measured", "met"],
    checkTargets(run).map((t) => [t.target, "", t.measured, metText(t.met)]),
  );
  const sections = [head, "", scenarios, "", memoryLine(run), webhookLine(run), forwardLines(run)];
  return [...sections, "", targets, failures(run)].filter((part) => part !== undefined).join("\n");
}

const SCENARIO_COLUMNS = [
  "scenario",
  "server",
  "throughput",
  "p50 ms",
  "p99 ms",
  "vs baseline",
  "vs echo",
  "cpu",
  "max RSS MB",
  "failed",
  "cpu/io pressure",
] as const;

function metText(met: boolean | undefined): string {
  if (met === undefined) return "-";
  return met ? "yes" : "NO";
}

function memoryLine(run: DriverRun): string {
  const parts = (["vault", "baseline"] as const).map((name) => {
    const m = run.memory[name];
    const started = run.memoryAfterStart[name]?.rssMB ?? Number.NaN;
    return m === undefined
      ? `${name}: gone`
      : `${name}: peak ${fmt(m.peakRssMB)} MB (${fmt(started)} MB once started, ${fmt(m.rssMB)} MB at the end)`;
  });
  return `server RSS — ${parts.join("; ")}`;
}

/** Webhook intake: events queued, replays acknowledged as duplicates, the worker's backlog. */
function webhookLine(run: DriverRun): string | undefined {
  const s = run.scenarios.find((r) => r.name === "webhook-intake");
  if (s === undefined || s.itemsPerSecond === undefined) return undefined;
  const queued = Math.round(s.itemsPerSecond * s.seconds);
  const duplicates = Math.max(0, s.responses - s.failures.status - queued);
  const drain =
    s.queueDrainSeconds === undefined
      ? "still processing when the wait ended"
      : `processed by the vault's worker ${s.queueDrainSeconds} s after the run`;
  return `\nwebhook intake: ${fmt(queued)} events queued in ${s.seconds.toFixed(1)} s (${fmt(s.itemsPerSecond)}/s), ${fmt(duplicates)} acknowledged as duplicates; the backlog ${drain}`;
}

const signed = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(2)}`;

/**
 * The forward comparison in one place: p50/p99 through the vault and directly, and the
 * difference, at the fixed rate (the overhead target) and at peak (queueing included).
 */
function forwardLines(run: DriverRun): string | undefined {
  const lines = (["fixed", "peak"] as const).flatMap((at) => {
    const suffix = at === "fixed" ? "@fixed" : "";
    const forward = run.scenarios.find((s) => s.name === `forward${suffix}`);
    const direct = run.scenarios.find((s) => s.name === `processor-direct${suffix}`);
    const overhead = forwardOverheadMs(run, at);
    if (forward === undefined || direct === undefined || overhead === undefined) return [];
    const rate =
      at === "fixed"
        ? `held ${fmt(forward.targetRate)} req/s`
        : `peak ${fmt(forward.okPerSecond)} vs ${fmt(direct.okPerSecond)} req/s`;
    return [
      `  ${at === "fixed" ? "fixed rate" : "peak"} (${rate}): p50 ${forward.latencyMs.p50.toFixed(2)} vs ` +
        `${direct.latencyMs.p50.toFixed(2)} ms (${signed(overhead.p50)}), p99 ` +
        `${forward.latencyMs.p99.toFixed(2)} vs ${direct.latencyMs.p99.toFixed(2)} ms (${signed(overhead.p99)})`,
    ];
  });
  return lines.length === 0
    ? undefined
    : ["", "forward overhead (through the vault vs directly to the processor):", ...lines].join(
        "\n",
      );
}

function failures(run: DriverRun): string | undefined {
  const lines = run.scenarios.flatMap((s) => {
    if (failedOf(s) === 0 && s.problemCount === 0 && ranOutOf(s) === 0) return [];
    const statuses = Object.entries(s.statuses)
      .map(([k, n]) => `${k}: ${n}`)
      .join(", ");
    const ranOut =
      ranOutOf(s) > 0 && s.bodies !== undefined
        ? [
            `    ran out of bodies after ${fmt(s.bodies.sent)} of ${fmt(s.bodies.made)}: its wrk thread stopped, so the rate is understated (raise BENCH_CAPTURE_RATE_ESTIMATE)`,
          ]
        : [];
    return [
      `${s.name}: ${s.failures.status} error statuses, ${s.failures.socket} socket errors, ${s.failures.timeout} timeouts; logged: ${statuses}`,
      ...ranOut,
      ...s.problems.map((p) => `    ${p}`),
      ...(s.problemCount > s.problems.length
        ? [`    … ${s.problemCount - s.problems.length} more`]
        : []),
    ];
  });
  return lines.length === 0 ? undefined : ["", "failures:", ...lines].join("\n");
}

/** Where the vault's CPU went in each of its scenarios (BENCH_PROFILE=1). */
export function formatProfile(profile: NonNullable<DriverRun["profile"]>): string {
  const parts = [`vault CPU profile: ${profile.file}`];
  for (const [name, summary] of Object.entries(profile.byScenario)) {
    const busy = summary.busyMs + summary.idleMs;
    parts.push(
      "",
      `${name}: busy ${fmt(summary.busyMs)} ms of ${fmt(busy)} ms sampled; self time by category, then by function:`,
      ...summary.categories
        .slice(0, 12)
        .map((c) => `  ${c.percent.toFixed(1).padStart(5)}%  ${c.name}`),
      "",
      ...summary.functions
        .slice(0, 20)
        .map((f) => `  ${f.percent.toFixed(1).padStart(5)}%  ${f.name}`),
    );
  }
  return `${parts.join("\n")}\n\n`;
}
