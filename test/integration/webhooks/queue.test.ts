import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../../../src/crypto/random.js";
import {
  backoffMs,
  type Claim,
  claimDue,
  complete,
  completeAll,
  DEFAULT_RETRY_POLICY,
  fail,
} from "../../../src/queue/queue-table.js";
import { runMaintenance } from "../../../src/services/maintenance.js";
import type { Principal } from "../../../src/services/principal.js";
import { IntakeBatcher } from "../../../src/services/webhooks/intake-batcher.js";
import type { NewWebhookEvent } from "../../../src/store/webhook-events-repo.js";
import { auth } from "../../support/api-fixtures.js";
import { DRIVERS } from "../../support/databases.js";
import { ManualClock } from "../../support/redis.js";
import type { TestVault } from "../../support/vault-harness.js";
import { startTestVault } from "../../support/vault-harness.js";

const COLUMNS = "id, state, attempts, locked_until, last_error";
interface Row extends Claim {
  readonly state: string;
  readonly last_error: string | null;
}

describe("backoff", () => {
  it("doubles from the base delay with equal jitter, capped", () => {
    const low = () => 0;
    const policy = { maxAttempts: 16, baseDelayMs: 10_000, maxDelayMs: 3_600_000 };
    expect(backoffMs(1, policy, low)).toBe(5_000);
    expect(backoffMs(2, policy, low)).toBe(10_000);
    expect(backoffMs(3, policy, (_min, max) => max - 1)).toBe(40_000);
    expect(backoffMs(20, policy, low)).toBe(1_800_000);
    expect(backoffMs(20, policy, (_min, max) => max - 1)).toBe(3_600_000);
    expect(DEFAULT_RETRY_POLICY.maxAttempts).toBe(16);
  });
});

for (const driver of DRIVERS) {
  describe(`the queue table on ${driver.name}`, () => {
    const clock = new ManualClock(Date.now());
    let vault: TestVault;
    let endpointId: string;
    const principal = (tenantId: string): Principal =>
      ({
        kind: "api_key",
        tenantId,
        keyId: "key_queue_test",
        environment: "live",
        scopes: new Set(["webhooks:manage"]),
      }) as unknown as Principal;

    const newEvent = (providerEventId: string, endpoint = endpointId): NewWebhookEvent => ({
      id: newId("evt"),
      tenantId: vault.tenantId,
      endpointId: endpoint,
      provider: "stripe",
      providerEventId,
      eventType: "charge.succeeded",
      metadata: {},
      receivedAt: clock.now(),
    });

    const rowOf = async (id: string) =>
      (await vault.core.db.query<Row>(`SELECT ${COLUMNS} FROM webhook_events WHERE id = $1`, [id]))
        .rows[0];

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock });
      endpointId = (
        await vault.core.webhooks.createEndpoint(principal(vault.tenantId), {
          provider: "stripe",
          secret: "whsec_queueTestSecret00000001",
          settings: {},
        })
      ).id;
    });
    afterAll(async () => vault?.close());

    it("group commit: a deleted endpoint's event is refused alone, the rest of the batch is queued", async () => {
      const gone = (
        await vault.core.webhooks.createEndpoint(principal(vault.tenantId), {
          provider: "stripe",
          secret: "whsec_queueTestSecret00000002",
          settings: {},
        })
      ).id;
      await vault.app.inject({
        method: "DELETE",
        url: `/v1/webhook-endpoints/${gone}`,
        headers: auth(await vault.newKey(vault.tenantId, ["webhooks:manage"])),
      });
      let queuedSignals = 0;
      const batcher = new IntakeBatcher(vault.core.db, () => {
        queuedSignals += 1;
      });
      const outcomes = await Promise.all([
        batcher.add(newEvent("batch-1")),
        batcher.add(newEvent("batch-gone", gone)),
        batcher.add(newEvent("batch-2")),
        batcher.add(newEvent("batch-1")),
      ]);
      expect(outcomes).toEqual(["queued", "endpoint_gone", "queued", "duplicate"]);
      expect(queuedSignals).toBe(1);
      // A later batch: the same event again is a duplicate.
      expect(await batcher.add(newEvent("batch-2"))).toBe("duplicate");
    });

    it("a worker whose lease lapsed cannot complete or fail the row another worker took over", async () => {
      const batcher = new IntakeBatcher(vault.core.db, () => undefined);
      const event = newEvent("lease-race");
      expect(await batcher.add(event)).toBe("queued");
      const max = 5;
      const claimA = (
        await claimDue<Row>(vault.core.db, "webhook_events", COLUMNS, clock.now(), 100, max, 60_000)
      ).find((r) => r.id === event.id);
      expect(claimA).toMatchObject({ state: "processing", attempts: 1 });
      clock.advance(60_000);
      const claimB = (
        await claimDue<Row>(vault.core.db, "webhook_events", COLUMNS, clock.now(), 100, max, 60_000)
      ).find((r) => r.id === event.id);
      expect(claimB).toMatchObject({ state: "processing", attempts: 2 });
      // A, late, fails: nothing changes; B's outcome stands.
      expect(
        await fail(
          vault.core.db,
          "webhook_events",
          claimA as Row,
          "LATE",
          clock.now(),
          DEFAULT_RETRY_POLICY,
        ),
      ).toBeUndefined();
      expect(await complete(vault.core.db, "webhook_events", claimA as Row, clock.now())).toBe(
        false,
      );
      expect(await rowOf(event.id)).toMatchObject({ state: "processing", attempts: 2 });
      expect(await complete(vault.core.db, "webhook_events", claimB as Row, clock.now())).toBe(
        true,
      );
      expect(await rowOf(event.id)).toMatchObject({ state: "done", attempts: 2, last_error: null });
    });

    it("completes a batch of claims in one statement, but none that another worker holds now", async () => {
      const batcher = new IntakeBatcher(vault.core.db, () => undefined);
      const events = [newEvent("all-1"), newEvent("all-2")];
      for (const event of events) await batcher.add(event);
      const claimed = (
        await claimDue<Row>(vault.core.db, "webhook_events", COLUMNS, clock.now(), 100, 16, 60_000)
      ).filter((r) => events.some((e) => e.id === r.id));
      expect(claimed).toHaveLength(2);
      // The second's lease lapses and another worker claims it.
      await vault.core.db.query("UPDATE webhook_events SET attempts = attempts + 1 WHERE id = $1", [
        claimed[1]?.id,
      ]);
      expect(await completeAll(vault.core.db, "webhook_events", claimed, clock.now())).toBe(1);
      expect(await rowOf(claimed[0]?.id as string)).toMatchObject({ state: "done" });
      expect(await rowOf(claimed[1]?.id as string)).toMatchObject({ state: "processing" });
    });

    it("a row whose worker keeps dying goes to the dead-letter queue after its last attempt", async () => {
      const batcher = new IntakeBatcher(vault.core.db, () => undefined);
      const event = newEvent("poison");
      await batcher.add(event);
      const max = 3;
      for (let attempt = 1; attempt <= max; attempt++) {
        const claimed = await claimDue<Row>(
          vault.core.db,
          "webhook_events",
          COLUMNS,
          clock.now(),
          100,
          max,
          60_000,
        );
        expect(claimed.find((r) => r.id === event.id)).toMatchObject({ attempts: attempt });
        // The worker dies: no complete, no fail; the lease lapses.
        clock.advance(60_000);
      }
      const claimed = await claimDue<Row>(
        vault.core.db,
        "webhook_events",
        COLUMNS,
        clock.now(),
        100,
        max,
        60_000,
      );
      expect(claimed.find((r) => r.id === event.id)).toBeUndefined();
      expect(await rowOf(event.id)).toMatchObject({
        state: "dead",
        attempts: 3,
        last_error: "LEASE_EXPIRED",
      });
    });

    it("the maintenance pass deletes finished rows after 30 days and keeps dead ones", async () => {
      const batcher = new IntakeBatcher(vault.core.db, () => undefined);
      const done = newEvent("retention-done");
      const dead = newEvent("retention-dead");
      await batcher.add(done);
      await batcher.add(dead);
      const long = new Date(clock.now().getTime() - 31 * 86_400_000);
      await vault.core.db.query(
        "UPDATE webhook_events SET state = $2, finished_at = $3 WHERE id = $1",
        [done.id, "done", long],
      );
      await vault.core.db.query(
        "UPDATE webhook_events SET state = $2, finished_at = $3 WHERE id = $1",
        [dead.id, "dead", long],
      );
      const report = await runMaintenance(vault.core, false);
      expect(report.webhookRowsDeleted).toBeGreaterThanOrEqual(1);
      expect(await rowOf(done.id)).toBeUndefined();
      expect(await rowOf(dead.id)).toMatchObject({ state: "dead" });
    });

    it("two workers claiming at once never take the same row", async () => {
      const batcher = new IntakeBatcher(vault.core.db, () => undefined);
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => batcher.add(newEvent(`concurrent-${i}`))),
      );
      const [a, b] = await Promise.all([
        claimDue<Row>(vault.core.db, "webhook_events", COLUMNS, clock.now(), 25, 16),
        claimDue<Row>(vault.core.db, "webhook_events", COLUMNS, clock.now(), 25, 16),
      ]);
      const ids = [...(a ?? []), ...(b ?? [])].map((r) => r.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBeGreaterThanOrEqual(40);
    });
  });
}
