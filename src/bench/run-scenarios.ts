import { join } from "node:path";
import type { PeakName, PlanResources, ScenarioName } from "./bench-plan.js";
import {
  FIXED_RATE_OF,
  HALF_RATE_OF,
  halfRateScenario,
  peakScenario,
  wanted,
} from "./bench-plan.js";
import { CaptureBodies } from "./capture-bodies.js";
import { checkForward, setUpForward } from "./forward-bodies.js";
import type { ScenarioContext, ScenarioResult } from "./scenario.js";
import { runScenario, serverOf } from "./scenario.js";
import { seedBareRows, seedVaultTokens } from "./seed-data.js";
import { failedOf } from "./targets.js";
import { WebhookBodies } from "./webhook-bodies.js";
import { waitForDrain } from "./webhook-drain.js";

const PEAKS = [
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
] as const satisfies readonly ScenarioName[];

/** The public test card both forward scenarios charge (docs: test-cards.json, Visa success). */
const FORWARD_CARD_NUMBER = "4242424242424242";

function report(result: ScenarioResult): void {
  const rate = result.itemsPerSecond ?? result.okPerSecond;
  const unit = result.itemUnit === undefined ? "req/s" : `${result.itemUnit}/s`;
  const failed = failedOf(result);
  process.stderr.write(
    `  ${result.name.padEnd(22)} ${Math.round(rate).toLocaleString("en-US").padStart(8)} ${unit}` +
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
    webhook: undefined,
    forward: undefined,
  };
  const ids = resources.idsFile;
  const results: ScenarioResult[] = [];
  for (const name of PEAKS) {
    if (!wanted(settings, name)) continue;
    if (name === "capture") {
      resources = { ...resources, capture: await captureBodies(ctx, results) };
    }
    if (name === "webhook-intake") {
      const source = await WebhookBodies.open({
        vaultUrl: ctx.servers.vault.url,
        authorization: ctx.authorization,
        peakEstimate: settings.webhookRateEstimate,
      });
      resources = { ...resources, webhook: { source, file: join(ctx.workDir, "webhooks.txt") } };
    }
    if ((name === "processor-direct" || name === "forward") && resources.forward === undefined) {
      resources = { ...resources, forward: await forwardBodies(ctx) };
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
    if (name === "webhook-intake") {
      // The vault's worker processes what was queued: let it finish before the next scenario.
      const drained = await waitForDrain(ctx.servers.vault.url, ctx.authorization);
      results.push({ ...result, queueDrainSeconds: drained });
    } else {
      results.push(result);
    }
  }
  for (const [half, peakName] of Object.entries(HALF_RATE_OF)) {
    const peak = results.find((r) => r.name === peakName);
    if (peak === undefined || !wanted(settings, half as ScenarioName)) continue;
    const spec = peakScenario(peakName as PeakName, settings, ctx.connections, resources);
    const result = await runScenario(halfRateScenario(spec, half, peak.okPerSecond / 2), ctx);
    report(result);
    results.push(result);
  }
  // Both at the same fixed rate, below either's peak: p50 is then service time, not queueing.
  for (const [fixed, peakName] of Object.entries(FIXED_RATE_OF)) {
    if (resources.forward === undefined || !wanted(settings, fixed as ScenarioName)) continue;
    const spec = peakScenario(peakName as PeakName, settings, ctx.connections, resources);
    const result = await runScenario(halfRateScenario(spec, fixed, settings.forwardRate), ctx);
    report(result);
    results.push(result);
  }
  return results;
}

/** The processor on the allowlist, a token of the test card, one forward checked end to end. */
async function forwardBodies(ctx: ScenarioContext): Promise<PlanResources["forward"]> {
  const processor = new URL(serverOf(ctx, "processor").url);
  const bodies = await setUpForward({
    vaultUrl: ctx.servers.vault.url,
    authorization: ctx.authorization,
    processorOrigin: `https://${ctx.processorHost ?? processor.hostname}:${processor.port}`,
    card: {
      number: FORWARD_CARD_NUMBER,
      exp_month: ctx.cards.expMonth,
      exp_year: ctx.cards.expYear,
    },
  });
  await checkForward(ctx.servers.vault.url, ctx.authorization, bodies);
  return bodies;
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
