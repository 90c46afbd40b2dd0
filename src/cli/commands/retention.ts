import { parseArgs } from "node:util";
import type { Config } from "../../config/config.js";
import { CliError, printRows } from "../output.js";
import { cliActor, withCore } from "./with-core.js";

/** `payvault purge`: deletes tokens past retention and shreds empty epoch keys (PCI DSS 3.2.1). */
export async function runPurge(config: Config, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: "boolean", default: false } } });
  return withCore(config, async (core) => {
    const result = await core.retention.purge(cliActor());
    if (values.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    } else {
      process.stdout.write(
        `${result.tokensPurged} token(s) past retention deleted; ${result.keysDestroyed.length} epoch key(s) destroyed${result.keysDestroyed.length > 0 ? `: ${result.keysDestroyed.join(", ")}` : ""}\n`,
      );
    }
    return 0;
  });
}

/**
 * `payvault retention report [--since-days N] [--horizon-days N]`: what is due, purged and
 * destroyed — the quarterly review of stored account data that PCI DSS 3.2.1 asks for.
 */
export async function runRetention(config: Config, args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "since-days": { type: "string", default: "92" },
      "horizon-days": { type: "string", default: "92" },
      json: { type: "boolean", default: false },
    },
  });
  if (positionals[0] !== "report")
    throw new CliError(
      "usage: payvault retention report [--since-days N] [--horizon-days N] [--json]",
    );
  const sinceDays = Number(values["since-days"]);
  const horizonDays = Number(values["horizon-days"]);
  if (
    !Number.isInteger(sinceDays) ||
    sinceDays < 1 ||
    !Number.isInteger(horizonDays) ||
    horizonDays < 0
  ) {
    throw new CliError("--since-days and --horizon-days must be whole numbers of days");
  }
  return withCore(config, async (core) => {
    const report = await core.retention.report({ sinceDays, horizonDays });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(
      `Retention report, ${report.generated_at} (since ${report.since}, due before ${report.horizon})\n\nDue\n`,
    );
    printRows(
      report.due.map((d) => ({
        tenant: d.tenant_id,
        env: d.environment,
        epoch: d.epoch,
        tokens: String(d.tokens),
        first_expiry: d.first_expiry,
        last_expiry: d.last_expiry,
        overdue: d.overdue ? "yes" : "",
      })),
      false,
    );
    process.stdout.write("\nPurged\n");
    printRows(
      report.purged.map((p) => ({
        run: p.id,
        actor: p.actor,
        ran_at: p.ran_at,
        tokens: String(p.tokens_purged),
        keys_destroyed: String(p.keys_destroyed),
      })),
      false,
    );
    process.stdout.write("\nDestroyed keys (crypto-shredded)\n");
    printRows(
      report.destroyed_keys.map((k) => ({ ...k })),
      false,
    );
    process.stdout.write("\nPersistent tokens (stored credentials, kept until deleted)\n");
    printRows(
      report.persistent.map((p) => ({
        tenant: p.tenant_id,
        env: p.environment,
        tokens: String(p.tokens),
      })),
      false,
    );
    return 0;
  });
}
