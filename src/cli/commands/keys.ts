import { parseArgs } from "node:util";
import type { Config } from "../../config/config.js";
import { isPurpose } from "../../crypto/envelope.js";
import { VaultError } from "../../errors/registry.js";
import { ENVIRONMENTS, isEnvironment } from "../../keys/key-manager.js";
import { CliError, printRows } from "../output.js";
import { ProgressBar } from "../progress.js";
import { cliActor, withCore } from "./with-core.js";

const USAGE = `payvault keys status [--json]
payvault keys rotate --kek [--env live|test]           (proposes a dual-control ceremony)
payvault keys rotate --dek --purpose pan|fingerprint|sad|audit [--tenant <id>] [--batch-size N]
payvault keys rewrap [--env live|test]                  (finishes an interrupted KEK re-wrap)
payvault keys destroy <dek id> --reason <text> [--force]
                                                        (proposes a dual-control ceremony;
                                                        --force: even with tokens under the key)
payvault keys jobs [--json]`;

/** `payvault keys …`: inventory (PCI DSS 3.6.1.1), rotation (3.6.4, 3.7.4), destruction (3.7.5). */
export async function runKeys(config: Config, args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      kek: { type: "boolean", default: false },
      dek: { type: "boolean", default: false },
      purpose: { type: "string" },
      tenant: { type: "string" },
      env: { type: "string" },
      reason: { type: "string" },
      force: { type: "boolean", default: false },
      "batch-size": { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const [action, id] = positionals;
  const actor = cliActor();
  if (values.env !== undefined && !isEnvironment(values.env)) {
    throw new CliError("--env must be live or test");
  }
  switch (action) {
    case "status":
      return withCore(config, async (core) => {
        const inventory = await core.lifecycle.inventory();
        if (values.json) {
          process.stdout.write(`${JSON.stringify(inventory, null, 2)}\n`);
          return 0;
        }
        process.stdout.write("Key-encrypting keys\n");
        printRows(
          inventory.keks.map((kek) => ({
            env: kek.environment,
            kek: kek.kekId,
            backend: kek.kind,
            algorithm: kek.algorithm,
            bits: String(kek.strengthBits),
            version: String(kek.currentVersion),
            versions: kek.versions.map((v) => v.version).join(","),
            location: kek.location,
          })),
          false,
        );
        process.stdout.write("\nData-encryption keys\n");
        printRows(
          inventory.keys.map((k) => ({
            id: k.id,
            owner: k.owner,
            env: k.environment,
            purpose: k.purpose,
            epoch: k.epoch,
            v: String(k.version),
            algorithm: k.algorithm,
            state: k.state,
            age_days: String(k.age_days),
            period_left_days:
              k.cryptoperiod_days_left === null ? "" : String(k.cryptoperiod_days_left),
            uses: k.max_uses === null ? "" : `${k.uses_reserved}/${k.max_uses}`,
            kek: `${k.kek_id} v${k.kek_version}`,
          })),
          false,
        );
        return 0;
      });
    case "rotate":
      if (values.kek === values.dek)
        throw new CliError(`keys rotate needs --kek or --dek\n${USAGE}`);
      if (values.kek) {
        return withCore(config, async (core) => {
          const ceremony = await core.ceremonies.propose(
            "kek.rotate",
            { environment: values.env ?? "both" },
            actor,
          );
          process.stdout.write(
            `Proposed ${ceremony.id} (kek.rotate, ${values.env ?? "both"}), proposed by ${actor}.\nA different principal approves it with: payvault ceremonies approve ${ceremony.id}\nIt expires at ${ceremony.expires_at.toISOString()}.\n`,
          );
          return 0;
        });
      }
      return rotateDek(
        config,
        values.purpose,
        values.tenant ?? null,
        batchSize(values["batch-size"]),
        actor,
      );
    case "rewrap":
      return withCore(config, async (core) => {
        for (const environment of values.env === undefined
          ? ENVIRONMENTS
          : [values.env as "live" | "test"]) {
          const bar = new ProgressBar(`re-wrapping ${environment} DEKs`);
          const done = await core.lifecycle.rewrap(environment, actor, (n) => bar.update(n, n));
          bar.finish();
          process.stdout.write(
            `${environment}: ${done} DEKs re-wrapped under the current KEK version\n`,
          );
        }
        return 0;
      });
    case "destroy": {
      if (id === undefined || values.reason === undefined) {
        throw new CliError("keys destroy needs a key id and --reason <text>");
      }
      return withCore(config, async (core) => {
        // PCI DSS 3.7.5: a key that still protects card data is only destroyed on purpose.
        const ceremony = await core.ceremonies
          .propose(
            "dek.destroy",
            { key_id: id, reason: values.reason, ...(values.force ? { force: true } : {}) },
            actor,
          )
          .catch((err: unknown) => {
            if (err instanceof VaultError && err.code === "KEY_IN_USE") {
              throw new CliError(`KEY_IN_USE: ${err.detail ?? err.message} (--force)`);
            }
            throw err;
          });
        process.stdout.write(
          `Proposed ${ceremony.id} (dek.destroy ${id}${values.force ? ", forced: the card data of any token still under it becomes unrecoverable" : ""}), proposed by ${actor}.\nA different principal approves it with: payvault ceremonies approve ${ceremony.id}\n`,
        );
        return 0;
      });
    }
    case "jobs":
      return withCore(config, async (core) => {
        printRows(
          (await core.lifecycle.jobs()).map((job) => ({
            id: job.id,
            purpose: job.purpose,
            tenant: job.tenant_id ?? "(all)",
            state: job.state,
            done: String(job.done),
            total: String(job.total),
            dedupe_cleared: String(job.dedupe_cleared),
            started_by: job.started_by,
            started_at: job.started_at.toISOString(),
            finished_at: job.finished_at?.toISOString() ?? "",
          })),
          values.json,
        );
        return 0;
      });
    default:
      throw new CliError(USAGE);
  }
}

function batchSize(raw: string | undefined): number {
  if (raw === undefined) return 2000;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 20_000)
    throw new CliError("--batch-size must be 1..20000");
  return n;
}

/** The purposes whose DEKs `keys rotate --dek` replaces with a re-encryption job. */
const DEK_JOB_PURPOSES: readonly string[] = ["pan", "fingerprint", "sad", "audit"];

async function rotateDek(
  config: Config,
  purpose: string | undefined,
  tenantId: string | null,
  size: number,
  actor: string,
): Promise<number> {
  // The MAC keys (apikey, authn) hold no record of which version made a stored MAC, and the
  // sealing keys of jose and totp are replaced with their keys: none of them is a DEK job.
  if (!isPurpose(purpose) || !DEK_JOB_PURPOSES.includes(purpose)) {
    throw new CliError("--purpose must be pan, fingerprint, sad or audit");
  }
  return withCore(config, async (core) => {
    if (tenantId !== null && (await core.tenants.get(tenantId)) === undefined) {
      throw new CliError(`no tenant ${tenantId}`);
    }
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    // Other nodes may encrypt under a retired version until they re-read their keys.
    const onSettling = (ms: number) =>
      process.stderr.write(
        `waiting ${Math.ceil(ms / 1000)} s for every node to stop encrypting under the retired key(s)\n`,
      );
    try {
      const { rotated, job, resumed } = await core.lifecycle.rotateDek(purpose, tenantId, actor, {
        onSettling,
        signal: stop.signal,
      });
      if (resumed) {
        process.stdout.write(
          `Resuming ${job?.id}: ${job?.done}/${job?.total} done before it stopped.\n`,
        );
      } else {
        process.stdout.write(
          `${rotated.length} ${purpose} key(s) rotated: ${rotated.map((k) => k.id).join(", ") || "(none)"}\n`,
        );
      }
      if (job === undefined) return 0;
      const label = purpose === "pan" ? "re-encrypting tokens" : "re-fingerprinting tokens";
      const bar = new ProgressBar(label);
      const result = await core.lifecycle.runJob(job.id, actor, {
        batchSize: size,
        signal: stop.signal,
        onProgress: (p) => bar.update(p.job.done, p.job.total),
        onSettling,
      });
      bar.finish();
      const cleared =
        result.job.dedupe_cleared > 0
          ? `, ${result.job.dedupe_cleared} duplicate token(s) no longer deduplicate (an older token of the same card keeps the dedupe key)`
          : "";
      process.stdout.write(
        `${result.job.id} ${result.job.state}: ${result.movedThisRun} tokens moved in this run, ${result.job.done}/${result.job.total} in all${result.failed > 0 ? `, ${result.failed} could not be decrypted (see the audit trail)` : ""}${cleared}\n`,
      );
      return result.job.state === "done" && result.failed === 0 ? 0 : 1;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  });
}
