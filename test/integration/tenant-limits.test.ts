import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TENANT_LIMITS } from "../../src/services/tenant-limits.js";
import { auth, expectProblem } from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/** Per-tenant caps on configuration that costs work per request or event (tenant-limits.ts). */
for (const driver of DRIVERS) {
  describe(`tenant limits on ${driver.name}`, () => {
    let vault: TestVault;
    let key: string;
    let other: { tenantId: string; key: string };

    beforeAll(async () => {
      vault = await startTestVault(driver);
      key = await vault.newKey(vault.tenantId, ["webhooks:manage", "tenant:admin"]);
      other = await vault.newTenant(["webhooks:manage", "tenant:admin"]);
    });
    afterAll(async () => vault?.close());

    const create = (url: string, payload: object, as = key) =>
      vault.app.inject({ method: "POST", url, headers: auth(as), payload });

    it("event destinations: the 21st is refused with 409 LIMIT_REACHED; other tenants unaffected", async () => {
      const destination = (i: number) => ({
        url: `https://hooks.shop.example.com/d${i}`,
        event_types: ["token.created"],
      });
      for (let i = 0; i < TENANT_LIMITS.event_destinations; i++) {
        const res = await create("/v1/event-destinations", destination(i));
        expect(res.statusCode, res.body).toBe(201);
      }
      expectProblem(await create("/v1/event-destinations", destination(99)), "LIMIT_REACHED");
      const count = await vault.core.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM event_destinations WHERE tenant_id = $1",
        [vault.tenantId],
      );
      expect(count.rows[0]?.n).toBe(TENANT_LIMITS.event_destinations);
      expect((await create("/v1/event-destinations", destination(0), other.key)).statusCode).toBe(
        201,
      );
    });

    it("forward destinations and webhook endpoints stop at their limits too", async () => {
      const now = new Date();
      // Filled up directly (100 API calls each would only slow the suite down).
      for (let i = 0; i < TENANT_LIMITS.forward_destinations; i++) {
        await vault.core.db.query(
          `INSERT INTO forward_destinations (id, tenant_id, host, path_prefix, created_at, created_by)
           VALUES ($1, $2, $3, '/', $4, 'test')`,
          [`fwd_limit${i}`, vault.tenantId, `p${i}.processor.example`, now],
        );
      }
      expectProblem(
        await create("/v1/forward/destinations", {
          host: "new.processor.example",
          path_prefix: "/",
        }),
        "LIMIT_REACHED",
      );
      for (let i = 0; i < TENANT_LIMITS.webhook_endpoints; i++) {
        await vault.core.db.query(
          `INSERT INTO webhook_endpoints (id, tenant_id, provider, settings, created_at, created_by, updated_at)
           VALUES ($1, $2, 'paypal', '{}', $3, 'test', $3)`,
          [`whe_limit${i}`, vault.tenantId, now],
        );
      }
      expectProblem(
        await create("/v1/webhook-endpoints", {
          provider: "stripe",
          secret: "whsec_tenantLimitTestSecret01",
        }),
        "LIMIT_REACHED",
      );
    });
  });
}
