import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditRows, auth, expectFieldError, expectProblem } from "../../support/api-fixtures.js";
import { DRIVERS } from "../../support/databases.js";
import type { TestVault } from "../../support/vault-harness.js";
import { startTestVault } from "../../support/vault-harness.js";

interface DestinationJson {
  id: string;
  host: string;
  path_prefix: string;
  created_at: string;
}

for (const driver of DRIVERS) {
  describe(`forward destinations on ${driver.name}`, () => {
    let vault: TestVault;
    const create = (payload: Record<string, unknown>, key = vault.adminKey) =>
      vault.app.inject({
        method: "POST",
        url: "/v1/forward/destinations",
        headers: auth(key),
        payload,
      });
    const list = async (key = vault.adminKey) => {
      const res = await vault.app.inject({
        method: "GET",
        url: "/v1/forward/destinations",
        headers: auth(key),
      });
      expect(res.statusCode).toBe(200);
      return (res.json() as { destinations: DestinationJson[] }).destinations;
    };
    const remove = (id: string, key = vault.adminKey) =>
      vault.app.inject({
        method: "DELETE",
        url: `/v1/forward/destinations/${id}`,
        headers: auth(key),
      });

    beforeAll(async () => {
      vault = await startTestVault(driver);
    });
    afterAll(async () => vault?.close());

    it("creates, lists and deletes, auditing each change", async () => {
      const res = await create({ host: "API.Stripe.com.", path_prefix: "/v1/payment_intents" });
      expect(res.statusCode, res.body).toBe(201);
      const created = res.json() as DestinationJson;
      expect(created.id).toMatch(/^fwd_[0-9A-Za-z]+$/);
      expect(created).toMatchObject({ host: "api.stripe.com", path_prefix: "/v1/payment_intents" });
      expect(Object.keys(created).sort()).toEqual(["created_at", "host", "id", "path_prefix"]);
      const withPort = await create({ host: "processor.example:8443", path_prefix: "/" });
      expect(withPort.statusCode, withPort.body).toBe(201);
      expect((withPort.json() as DestinationJson).host).toBe("processor.example:8443");
      const v6 = await create({ host: "[2001:db8::1]:443", path_prefix: "/pay" });
      expect((v6.json() as DestinationJson).host).toBe("[2001:db8::1]");
      expect((await list()).map((d) => d.id)).toContain(created.id);

      const creates = await auditRows(vault, "forward_destination.create");
      expect(creates.find((e) => e.object_id === created.id)?.details).toEqual({
        host: "api.stripe.com",
        path_prefix: "/v1/payment_intents",
      });

      expect((await remove(created.id)).statusCode).toBe(204);
      expect((await list()).map((d) => d.id)).not.toContain(created.id);
      const deletes = await auditRows(vault, "forward_destination.delete");
      expect(deletes.map((e) => e.object_id)).toContain(created.id);
      expectProblem(await remove(created.id), "FORWARD_DESTINATION_NOT_FOUND");
    });

    it("a duplicate (after normalization) is 409 and writes nothing", async () => {
      expect((await create({ host: "dup.example", path_prefix: "/v1" })).statusCode).toBe(201);
      const before = (await auditRows(vault, "forward_destination.create")).length;
      expectProblem(
        await create({ host: "DUP.example:443", path_prefix: "/v1" }),
        "FORWARD_DESTINATION_EXISTS",
      );
      expect(await auditRows(vault, "forward_destination.create")).toHaveLength(before);
    });

    it("refuses wildcards, schemes, paths, userinfo, bad ports and unnormalized prefixes", async () => {
      for (const host of [
        "*.stripe.com",
        "https://api.stripe.com",
        "api.stripe.com/v1",
        "user@api.stripe.com",
        "api.stripe.com:0",
        "api.stripe.com:70000",
        "0177.0.0.1",
        "::1",
        "",
      ]) {
        const res = await create({ host, path_prefix: "/" });
        expect(res.statusCode, host).toBe(400);
        expect(res.json().code).toBe("VALIDATION_FAILED");
      }
      expectFieldError(
        await create({ host: "a.example", path_prefix: "/v1/../admin" }),
        "path_prefix",
        "INVALID_VALUE",
      );
      expectFieldError(
        await create({ host: "a.example", path_prefix: "/v1//x" }),
        "path_prefix",
        "INVALID_VALUE",
      );
      expectFieldError(
        await create({ host: "a.example", path_prefix: "v1" }),
        "path_prefix",
        "INVALID_VALUE",
      );
    });

    it("another tenant's destination is a 404 and is not listed", async () => {
      const other = await vault.newTenant(["tenant:admin"]);
      const res = await create({ host: "theirs.example", path_prefix: "/" }, other.key);
      const theirs = res.json() as DestinationJson;
      expect((await list()).map((d) => d.id)).not.toContain(theirs.id);
      expectProblem(await remove(theirs.id), "FORWARD_DESTINATION_NOT_FOUND");
      expect((await list(other.key)).map((d) => d.id)).toEqual([theirs.id]);
    });

    it("needs tenant:admin (a proxy:forward key cannot widen its own allowlist)", async () => {
      const forwardOnly = await vault.newKey(vault.tenantId, ["proxy:forward"]);
      expectProblem(
        await create({ host: "evil.example", path_prefix: "/" }, forwardOnly),
        "INSUFFICIENT_SCOPE",
      );
    });
  });
}
