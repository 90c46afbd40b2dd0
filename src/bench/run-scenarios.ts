import { join } from "node:path";
import type { PeakName, PlanResources, ScenarioName } from "./bench-plan.js";
import { HALF_RATE_OF, halfRateScenario, peakScenario, wanted } from "./bench-plan.js";
import { CaptureBodies } from "./capture-bodies.js";
import type { ScenarioContext, ScenarioResult } from "./scenario.js";
import { runScenario } from "./scenario.js";
import { seedBareRows, seedVaultTokens } from "./seed-data.js";
import { failedOf } from "./targets.js";

const PEAKS = [
  "echo",
  "bare-insert",
  "tokenize",
  "capture",
  "batch-tokenize",
  "bare-select",
  "reveal",
] as const satisfies readonly ScenarioName[];

function report(result: ScenarioResult): void {
  const rate = result.itemsPerSecond ?? result.okPerSecond;
  const unit = result.itemsPerSecond === undefined ? "req/s" : "cards/s";
  const failed = failedOf(result);
  process.stderr.write(
    `  ${result.name.padEnd(15)} ${Math.round(rate).toLocaleString("en-US").padStart(8)} ${unit}` +
      `  p99 ${result.latencyMs.p99} ms${failed > 0 ? `  FAILED ${failed}` : ""}` +
      `${(result.bodies?.missing ?? 0) > 0 ? "  RAN OUT OF BODIES" : ""}\n`,
  );
}

/**
 * Every scenario of one driver, in an order that puts each vault scenario right after the
 * baseline it is compared with (so both see the same machine), then the half-rate runs.
 */
export async function runScenarios(ctx: ScenarioContext): Promise<ScenarioResult[]> {
  const { settings } = ctx;
  let resources: PlanResources = {
    idsFile: { vault: join(ctx.workDir, "vault-ids.txt"), bare: join(ctx.workDir, "bare-ids.txt") },
    capture: undefined,
  };
  const ids = resources.idsFile;
  const results: ScenarioResult[] = [];
  for (const name of PEAKS) {
    if (!wanted(settings, name)) continue;
    if (name === "capture") {
      resources = { ...resources, capture: await captureBodies(ctx, results) };
    }
    if (name === "bare-select")
      await seedBareRows(ctx.servers.baseline.url, settings.revealTokens, ids.bare);
    if (name === "reveal") {
      await seedVaultTokens(
        ctx.servers.vault.url,
        ctx.authorization,
        ctx.cards,
        settings.revealTokens,
        ids.vault,
      );
    }
    const result = await runScenario(peakScenario(name, settings, ctx.connections, resources), ctx);
    report(result);
    results.push(result);
  }
  for (const [half, peakName] of Object.entries(HALF_RATE_OF)) {
    const peak = results.find((r) => r.name === peakName);
    if (peak === undefined || !wanted(settings, half as ScenarioName)) continue;
    const spec = peakScenario(peakName as PeakName, settings, ctx.connections, resources);
    const result = await runScenario(halfRateScenario(spec, half, peak.okPerSecond / 2), ctx);
    report(result);
    results.push(result);
  }
  return results;
}

/** Tokenize's rate × this is a generous estimate of capture's: capture tokenizes and does more. */
const CAPTURE_OVER_TOKENIZE = 2;
const MIN_CAPTURE_ESTIMATE = 500;

/**
 * The capture key is read once the vault runs; bodies go in the run's private work dir. The
 * peak run is sized for BENCH_CAPTURE_RATE_ESTIMATE, or for twice the tokenize rate just
 * measured when that is lower: making bodies takes about a millisecond of CPU each.
 */
async function captureBodies(
  ctx: ScenarioContext,
  done: readonly ScenarioResult[],
): Promise<PlanResources["capture"]> {
  const tokenize = done.find((r) => r.name === "tokenize");
  const fromTokenize =
    tokenize === undefined
      ? Number.POSITIVE_INFINITY
      : Math.max(MIN_CAPTURE_ESTIMATE, CAPTURE_OVER_TOKENIZE * tokenize.okPerSecond);
  const source = await CaptureBodies.open({
    vaultUrl: ctx.servers.vault.url,
    authorization: ctx.authorization,
    cards: ctx.cards,
    peakEstimate: Math.round(Math.min(ctx.settings.captureRateEstimate, fromTokenize)),
  });
  return { source, file: join(ctx.workDir, "capture-bodies.txt") };
}
