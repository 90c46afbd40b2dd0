import { join } from "node:path";
import type { ScenarioName } from "./bench-plan.js";
import { HALF_RATE_OF, halfRateScenario, peakScenario, wanted } from "./bench-plan.js";
import type { ScenarioContext, ScenarioResult } from "./scenario.js";
import { runScenario } from "./scenario.js";
import { seedBareRows, seedVaultTokens } from "./seed-data.js";
import { failedOf } from "./targets.js";

const PEAKS = [
  "echo",
  "bare-insert",
  "tokenize",
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
      `  p99 ${result.latencyMs.p99} ms${failed > 0 ? `  FAILED ${failed}` : ""}\n`,
  );
}

/**
 * Every scenario of one driver, in an order that puts each vault scenario right after the
 * baseline it is compared with (so both see the same machine), then the half-rate runs.
 */
export async function runScenarios(ctx: ScenarioContext): Promise<ScenarioResult[]> {
  const { settings } = ctx;
  const ids = {
    vault: join(ctx.workDir, "vault-ids.txt"),
    bare: join(ctx.workDir, "bare-ids.txt"),
  };
  const results: ScenarioResult[] = [];
  for (const name of PEAKS) {
    if (!wanted(settings, name)) continue;
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
    const result = await runScenario(peakScenario(name, settings, ctx.connections, ids), ctx);
    report(result);
    results.push(result);
  }
  for (const [half, peakName] of Object.entries(HALF_RATE_OF)) {
    const peak = results.find((r) => r.name === peakName);
    if (peak === undefined || !wanted(settings, half as ScenarioName)) continue;
    const spec = peakScenario(peakName as "tokenize" | "reveal", settings, ctx.connections, ids);
    const result = await runScenario(halfRateScenario(spec, half, peak.okPerSecond / 2), ctx);
    report(result);
    results.push(result);
  }
  return results;
}
