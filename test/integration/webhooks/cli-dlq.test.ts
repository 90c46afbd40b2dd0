import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCore } from "../../../src/app/core.js";
import { loadConfig } from "../../../src/config/config.js";
import type { Principal } from "../../../src/services/principal.js";
import type { CliResult } from "../../support/cli-runner.js";
import { runCli } from "../../support/cli-runner.js";

const SLOW = 120_000;

function ok(result: CliResult): CliResult {
  expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
  return result;
}

interface DeadRow {
  id: string;
  kind: string;
  type: string;
  attempts: string;
  last_error: string;
}

/**
 * `payvault webhooks dlq list|replay|purge` against a PGlite data directory: dead-lettered events
 * are made in-process (the core, then closed), the CLI acts on them, the core checks the result.
 */
describe("payvault webhooks dlq", () => {
  let dataDir: string;
  const cli = (...args: string[]) => runCli(args, { dataDir });
  const eventIds: string[] = [];
  let tenantId: string;

  const withVault = async <T>(work: (core: Awaited<ReturnType<typeof openCore>>) => Promise<T>) => {
    const core = await openCore(loadConfig({ PAYVAULT_DATA_DIR: dataDir }, dataDir));
    try {
      return await work(core);
    } finally {
      await core.sealer.sealPending().catch(() => undefined);
      await core.close();
    }
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "payvault-cli-dlq-"));
    await withVault(async (core) => {
      const tenant = await core.tenants.create("dlq", "test");
      tenantId = tenant.id;
      const principal: Principal = {
        kind: "api_key",
        tenantId,
        keyId: "key_test",
        environment: "live",
        scopes: new Set(["webhooks:manage"]),
      } as unknown as Principal;
      const endpoint = await core.webhooks.createEndpoint(principal, {
        provider: "hmac",
        secret: "a secret of at least sixteen bytes",
        settings: { hmac: { signature_header: "x-sig", algorithm: "sha256", encoding: "hex" } },
      });
      const now = core.clock.now();
      for (const n of [1, 2, 3]) {
        const id = `evt_clidlq${n}`;
        eventIds.push(id);
        await core.db.query(
          `INSERT INTO webhook_events (id, tenant_id, endpoint_id, provider, provider_event_id, event_type,
             metadata, received_at, state, attempts, run_at, last_error, finished_at)
           VALUES ($1, $2, $3, 'hmac', $4, 'charge.failed', '{}', $5, 'dead', 8, $5, 'PROCESSING_FAILED', $5)`,
          [id, tenantId, endpoint.id, `provider-${n}`, now],
        );
      }
    });
  }, SLOW);
  afterAll(async () => rm(dataDir, { recursive: true, force: true }));

  it(
    "lists, replays and purges dead events, auditing each action with the OS account",
    async () => {
      const listed = JSON.parse(
        ok(await cli("webhooks", "dlq", "list", "--kind", "intake", "--json")).stdout,
      ) as DeadRow[];
      expect(listed.map((r) => r.id).sort()).toEqual([...eventIds].sort());
      expect(listed[0]).toMatchObject({
        kind: "intake",
        tenant: tenantId,
        type: "charge.failed",
        attempts: "8",
      });
      expect(ok(await cli("webhooks", "dlq", "replay", eventIds[0] as string)).stdout).toContain(
        "queued again",
      );
      expect(ok(await cli("webhooks", "dlq", "purge", eventIds[1] as string)).stdout).toContain(
        "purged",
      );
      // Not in the DLQ any more: a second replay is refused with exit 2.
      const again = await cli("webhooks", "dlq", "replay", eventIds[0] as string);
      expect(again.code).toBe(2);
      expect(again.stderr).toContain("not dead-lettered");
      const left = JSON.parse(
        ok(await cli("webhooks", "dlq", "list", "--json")).stdout,
      ) as DeadRow[];
      expect(left.map((r) => r.id)).toEqual([eventIds[2]]);
      ok(await cli("webhooks", "dlq", "purge", "--all", "--tenant", tenantId));
      await withVault(async (core) => {
        const rows = (
          await core.db.query<{ id: string; state: string; attempts: number }>(
            "SELECT id, state, attempts FROM webhook_events ORDER BY id",
          )
        ).rows;
        expect(rows).toEqual([{ id: eventIds[0], state: "queued", attempts: 0 }]);
        const audited = (
          await core.db.query<{ action: string; actor: string; object_id: string | null }>(
            "SELECT action, actor, object_id FROM audit_events WHERE action LIKE 'webhook_event.%' ORDER BY occurred_at, id",
          )
        ).rows;
        expect(audited.map((a) => [a.action, a.object_id])).toEqual([
          ["webhook_event.replay", eventIds[0]],
          ["webhook_event.purge", eventIds[1]],
          ["webhook_event.purge", null],
        ]);
        for (const a of audited) expect(a.actor).toMatch(/^cli:/);
        // The purge of everything says how much it deleted, per kind.
        const purges = (
          await core.db.query<{ action: string; details: Record<string, unknown> }>(
            "SELECT action, details FROM audit_events WHERE details ? 'all' ORDER BY occurred_at, id",
          )
        ).rows;
        expect(purges).toEqual([
          { action: "webhook_event.purge", details: { all: true, tenant: tenantId, deleted: 1 } },
          { action: "event_delivery.purge", details: { all: true, tenant: tenantId, deleted: 0 } },
        ]);
      });
    },
    SLOW,
  );

  it(
    "refuses bad usage with exit 2",
    async () => {
      for (const args of [
        ["webhooks"],
        ["webhooks", "dlq", "list", "--kind", "everything"],
        ["webhooks", "dlq", "replay"],
        ["webhooks", "dlq", "replay", "tok_notanevent"],
        ["webhooks", "dlq", "replay", "--all"],
      ]) {
        const result = await cli(...args);
        expect(result.code, args.join(" ")).toBe(2);
      }
    },
    SLOW,
  );
});
