import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../../src/services/api-keys.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const driver of DRIVERS) {
  describe(`API-key record cache on ${driver.name}`, () => {
    let vault: TestVault;
    beforeAll(async () => {
      vault = await startTestVault(driver);
    });
    afterAll(async () => vault?.close());

    /** A second service on the same store, as another node or process would have. */
    const serviceWithTtl = (ttlMs: number) =>
      new ApiKeyService(vault.core.db, vault.core.keys, vault.core.audit, vault.core.clock, ttlMs);

    const revokeElsewhere = (key: string) =>
      vault.core.db.query("UPDATE api_keys SET revoked_at = now() WHERE id = $1", [
        `key_${key.split("_")[2]}`,
      ]);

    it("sees a revocation made elsewhere once the TTL has passed, and at once with TTL 0", async () => {
      const key = await vault.newKey(vault.tenantId, ["tokens:read"]);
      const cached = serviceWithTtl(150);
      const uncached = serviceWithTtl(0);
      expect((await cached.authenticate(key)).ok).toBe(true);
      expect((await uncached.authenticate(key)).ok).toBe(true);
      await revokeElsewhere(key);
      expect(await uncached.authenticate(key)).toMatchObject({ ok: false, reason: "revoked" });
      // Within the TTL the cached record may still be used ...
      expect((await cached.authenticate(key)).ok).toBe(true);
      await sleep(200);
      // ... and after it, never.
      expect(await cached.authenticate(key)).toMatchObject({ ok: false, reason: "revoked" });
    });

    it("a revocation through the same service takes effect at once despite the cache", async () => {
      const key = await vault.newKey(vault.tenantId, ["tokens:read"]);
      const service = serviceWithTtl(60_000);
      expect((await service.authenticate(key)).ok).toBe(true);
      expect(await service.revoke(`key_${key.split("_")[2]}`, "test")).toBe(true);
      expect(await service.authenticate(key)).toMatchObject({ ok: false, reason: "revoked" });
    });

    it("still checks the secret of a cached key on every request", async () => {
      const key = await vault.newKey(vault.tenantId, ["tokens:read"]);
      const service = serviceWithTtl(60_000);
      expect((await service.authenticate(key)).ok).toBe(true);
      const forged = `${key.slice(0, key.lastIndexOf("_") + 1)}${"A".repeat(43)}`;
      expect(await service.authenticate(forged)).toMatchObject({ ok: false, reason: "invalid" });
    });
  });
}
