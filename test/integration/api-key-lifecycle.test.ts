import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { expandScopes, TENANT_SCOPES } from "../../src/domain/scopes.js";
import {
  auditRows,
  auth,
  expectFieldError,
  expectProblem,
  keyIdOf,
  randomBase62,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import { ManualClock } from "../support/redis.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

interface KeyJson {
  id: string;
  api_key?: string;
  name: string;
  environment: string;
  scopes: string[];
  expires_at: string | null;
  revoked_at: string | null;
  allowed_ips: string[];
  client_cert_sha256: string | null;
  rotated_to: string | null;
  last_used_at: string | null;
  use_count: number;
  status: string;
  previous?: KeyJson;
}

for (const driver of DRIVERS) {
  describe(`API key lifecycle on ${driver.name}`, () => {
    const clock = new ManualClock(Date.now());
    let vault: TestVault;
    let admin: string;

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock });
      // A tenant administrator who holds (so may hand out) every tenant scope.
      admin = await vault.newKey(vault.tenantId, [...TENANT_SCOPES]);
    });
    afterAll(async () => vault?.close());

    const api = (
      method: "GET" | "POST" | "DELETE",
      url: string,
      key: string,
      payload?: object,
      remoteAddress = "127.0.0.1",
    ) =>
      vault.app.inject({
        method,
        url,
        headers: auth(key),
        remoteAddress,
        ...(payload === undefined ? {} : { payload }),
      });
    const create = async (payload: object, key = admin) => {
      const res = await api("POST", "/v1/api-keys", key, payload);
      expect(res.statusCode, res.body).toBe(201);
      return res.json() as KeyJson & { api_key: string };
    };
    /** A call that needs only audit:read, and answers 200 whenever the key is accepted. */
    const use = (key: string, remoteAddress?: string) =>
      api("GET", "/v1/audit/events?limit=1", key, undefined, remoteAddress);

    it("creates a key with exactly the scopes and roles asked for; the secret is shown once", async () => {
      const created = await create({
        name: "checkout",
        roles: ["tokenizer"],
        scopes: ["audit:read"],
      });
      expect(created.scopes).toEqual(["tokens:write", "capture", "audit:read"]);
      expect(created.api_key).toMatch(/^pv_live_[0-9A-Za-z]{22}_[0-9A-Za-z]{43}$/);
      expect(created).toMatchObject({ environment: "live", status: "active", use_count: 0 });
      const one = await api("GET", `/v1/api-keys/${created.id}`, admin);
      const list = await api("GET", "/v1/api-keys", admin);
      for (const res of [one, list]) {
        expect(res.statusCode).toBe(200);
        expect(res.body).not.toContain(created.api_key.split("_")[3]);
        expect(res.body).not.toMatch(/api_key|secret_mac/);
      }
      expect((list.json() as { data: KeyJson[] }).data.map((k) => k.id)).toContain(created.id);
      const events = await auditRows(vault, "apikey.create");
      expect(events.find((e) => e.object_id === created.id)).toMatchObject({
        actor: keyIdOf(admin),
        outcome: "success",
      });
      // A test-environment key from a live caller, when asked.
      expect(
        (await create({ name: "t", scopes: ["tokens:read"], environment: "test" })).api_key,
      ).toMatch(/^pv_test_/);
    });

    it("refuses a key without scopes, with a past expiry or a bad range (400), nothing written", async () => {
      const before = (await vault.core.apiKeys.list(vault.tenantId)).length;
      expectFieldError(
        await api("POST", "/v1/api-keys", admin, { name: "none" }),
        "scopes",
        "SCOPES_REQUIRED",
      );
      expectFieldError(
        await api("POST", "/v1/api-keys", admin, {
          name: "old",
          scopes: ["tokens:read"],
          expires_at: new Date(clock.now().getTime() - 1000).toISOString(),
        }),
        "expires_at",
        "EXPIRES_AT_INVALID",
      );
      for (const bad of ["10.0.0.0/33", "300.1.1.1", "example.com", "10.0.0.0/", "::1/129"]) {
        expectFieldError(
          await api("POST", "/v1/api-keys", admin, {
            name: "r",
            scopes: ["tokens:read"],
            allowed_ips: ["192.0.2.0/24", bad],
          }),
          "allowed_ips.1",
          "INVALID_CIDR",
        );
      }
      expectProblem(
        await api("POST", "/v1/api-keys", admin, { name: "x", scopes: ["tokens:frobnicate"] }),
        "VALIDATION_FAILED",
      );
      expect((await vault.core.apiKeys.list(vault.tenantId)).length).toBe(before);
    });

    it("a caller hands out only scopes it holds (no escalation)", async () => {
      const tenantAdmin = await vault.newKey(vault.tenantId, expandScopes(["tenant_admin"]));
      for (const scopes of [["tokens:reveal"], ["sys:admin"], ["tokens:write"]]) {
        expectProblem(
          await api("POST", "/v1/api-keys", tenantAdmin, { name: "esc", scopes }),
          "SCOPE_NOT_GRANTABLE",
        );
      }
      expectProblem(
        await api("POST", "/v1/api-keys", tenantAdmin, { name: "esc", roles: ["revealer"] }),
        "SCOPE_NOT_GRANTABLE",
      );
      // Rotating a key hands out its scopes again: the same rule.
      const revealer = await create({ name: "rev", roles: ["revealer"] });
      expectProblem(
        await api("POST", `/v1/api-keys/${revealer.id}/rotate`, tenantAdmin, {}),
        "SCOPE_NOT_GRANTABLE",
      );
      expect(
        await (await create({ name: "ok", scopes: ["audit:read"] }, tenantAdmin)).scopes,
      ).toEqual(["audit:read"]);
    });

    it("sys:admin is never granted over HTTP, even by a holder: operators come from the CLI", async () => {
      // The bootstrap key holds every scope, sys:admin included.
      for (const payload of [
        { name: "second operator", scopes: ["sys:admin"] },
        { name: "second operator", roles: ["operator"] },
      ])
        expectProblem(
          await api("POST", "/v1/api-keys", vault.adminKey, payload),
          "SCOPE_NOT_GRANTABLE",
        );
      expectProblem(
        await api("POST", "/v1/admin-users", vault.adminKey, {
          username: `operator-${randomBase62(8)}`,
          roles: ["operator"],
        }),
        "SCOPE_NOT_GRANTABLE",
      );
    });

    it("a tenant administrator cannot revoke an operator's key; it can revoke any tenant key", async () => {
      const tenantAdmin = await vault.newKey(vault.tenantId, expandScopes(["tenant_admin"]));
      const operator = keyIdOf(await vault.newKey(vault.tenantId, ["sys:admin"]));
      expectProblem(
        await api("DELETE", `/v1/api-keys/${operator}`, tenantAdmin),
        "SCOPE_NOT_GRANTABLE",
      );
      const revealer = keyIdOf(await vault.newKey(vault.tenantId, ["tokens:reveal"]));
      expect((await api("DELETE", `/v1/api-keys/${revealer}`, tenantAdmin)).statusCode).toBe(204);
    });

    it("a test-environment key makes test keys only", async () => {
      const testAdmin = await vault.newKey(vault.tenantId, [...TENANT_SCOPES], "test");
      expectFieldError(
        await api("POST", "/v1/api-keys", testAdmin, {
          name: "live",
          scopes: ["tokens:read"],
          environment: "live",
        }),
        "environment",
        "INVALID_VALUE",
      );
      const made = await api("POST", "/v1/api-keys", testAdmin, {
        name: "test",
        scopes: ["tokens:read"],
      });
      expect((made.json() as { api_key: string }).api_key).toMatch(/^pv_test_/);
    });

    it("an expiring key works until its expiry, then is 401 AUTH_EXPIRED", async () => {
      const created = await create({
        name: "temp",
        scopes: ["audit:read"],
        expires_at: new Date(clock.now().getTime() + 60_000).toISOString(),
      });
      expect((await use(created.api_key)).statusCode).toBe(200);
      clock.advance(60_001);
      expectProblem(await use(created.api_key), "AUTH_EXPIRED");
      expect((await api("GET", `/v1/api-keys/${created.id}`, admin)).json()).toMatchObject({
        status: "expired",
      });
    });

    it("allowed client ranges: inside works, outside is 403 CLIENT_IP_NOT_ALLOWED", async () => {
      const created = await create({
        name: "ranged",
        scopes: ["audit:read"],
        allowed_ips: ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"],
      });
      expect(created.allowed_ips).toEqual(["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"]);
      for (const ip of ["203.0.113.9", "::ffff:203.0.113.200", "2001:db8:1::5", "198.51.100.7"])
        expect((await use(created.api_key, ip)).statusCode, ip).toBe(200);
      for (const ip of ["203.0.114.1", "198.51.100.8", "2001:db9::1", "127.0.0.1"]) {
        expectProblem(await use(created.api_key, ip), "CLIENT_IP_NOT_ALLOWED");
      }
      const denied = (await auditRows(vault, "auth.failure")).filter((e) => e.actor === created.id);
      expect(denied.map((e) => e.details.ip)).toEqual(
        expect.arrayContaining(["203.0.114.1", "2001:db9::1"]),
      );
    });

    it("rotation: both secrets work during the overlap, then only the new one", async () => {
      const old = await create({
        name: "rotating",
        scopes: ["audit:read"],
        allowed_ips: ["127.0.0.0/8"],
      });
      const res = await api("POST", `/v1/api-keys/${old.id}/rotate`, admin, {
        overlap_seconds: 3600,
      });
      expect(res.statusCode, res.body).toBe(201);
      const next = res.json() as KeyJson & { api_key: string };
      expect(next.api_key).not.toBe(old.api_key);
      expect(next).toMatchObject({
        name: "rotating",
        scopes: ["audit:read"],
        allowed_ips: ["127.0.0.0/8"],
        status: "active",
      });
      expect(next.previous).toMatchObject({ id: old.id, rotated_to: next.id, status: "rotating" });
      expect((await use(old.api_key)).statusCode).toBe(200);
      expect((await use(next.api_key)).statusCode).toBe(200);
      clock.advance(3_600_001);
      expectProblem(await use(old.api_key), "AUTH_EXPIRED");
      expect((await use(next.api_key)).statusCode).toBe(200);
      // An old key cannot be rotated again; its successor can.
      expectProblem(
        await api("POST", `/v1/api-keys/${old.id}/rotate`, admin, {}),
        "API_KEY_NOT_ROTATABLE",
      );
      const events = await auditRows(vault, "apikey.rotate");
      expect(events.find((e) => e.object_id === old.id)).toMatchObject({
        actor: keyIdOf(admin),
        details: expect.objectContaining({ successor: next.id }),
      });
    });

    it("rotation without an overlap (the default) ends the old secret at once", async () => {
      for (const body of [{ overlap_seconds: 0 }, {}]) {
        const old = await create({ name: "now", scopes: ["audit:read"] });
        const res = await api("POST", `/v1/api-keys/${old.id}/rotate`, admin, body);
        expect(res.statusCode).toBe(201);
        expectProblem(await use(old.api_key), "AUTH_EXPIRED");
      }
      const old = await create({ name: "now", scopes: ["audit:read"] });
      expectProblem(
        await api("POST", `/v1/api-keys/${old.id}/rotate`, admin, { overlap_seconds: 604_801 }),
        "VALIDATION_FAILED",
      );
    });

    it("revocation is immediate; revoking again succeeds; another tenant's key is 404", async () => {
      const created = await create({ name: "doomed", scopes: ["audit:read"] });
      expect((await use(created.api_key)).statusCode).toBe(200);
      expect((await api("DELETE", `/v1/api-keys/${created.id}`, admin)).statusCode).toBe(204);
      expectProblem(await use(created.api_key), "AUTH_REVOKED");
      expect((await api("DELETE", `/v1/api-keys/${created.id}`, admin)).statusCode).toBe(204);
      expectProblem(
        await api("POST", `/v1/api-keys/${created.id}/rotate`, admin, {}),
        "API_KEY_NOT_ROTATABLE",
      );
      const other = await vault.newTenant(expandScopes(["tenant_admin"]));
      const mine = await create({ name: "mine", scopes: ["audit:read"] });
      for (const res of [
        await api("GET", `/v1/api-keys/${mine.id}`, other.key),
        await api("DELETE", `/v1/api-keys/${mine.id}`, other.key),
        await api("POST", `/v1/api-keys/${mine.id}/rotate`, other.key, {}),
      ])
        expectProblem(res, "API_KEY_NOT_FOUND");
      expect((await use(mine.api_key)).statusCode).toBe(200);
      const listed = (await api("GET", "/v1/api-keys", other.key)).json() as { data: KeyJson[] };
      expect(listed.data.map((k) => k.id)).not.toContain(mine.id);
    });

    it("counts uses and records the last-used time (flushed in batches)", async () => {
      const created = await create({ name: "counted", scopes: ["audit:read"] });
      const usedAt = clock.now().toISOString();
      for (let i = 0; i < 7; i += 1) expect((await use(created.api_key)).statusCode).toBe(200);
      // A refused request (right id, wrong secret) is not a use.
      const forged = `${created.api_key.slice(0, created.api_key.lastIndexOf("_") + 1)}${randomBase62(43)}`;
      expectProblem(await use(forged), "AUTH_INVALID");
      const res = await api("GET", `/v1/api-keys/${created.id}`, admin);
      expect(res.json()).toMatchObject({ use_count: 7, last_used_at: usedAt });
    });

    it("verification takes one path whether or not the key id exists", async () => {
      const real = await create({ name: "probe", scopes: ["audit:read"] });
      const [, env, id] = real.api_key.split("_") as [string, string, string];
      const wrongSecret = `pv_${env}_${id}_${randomBase62(43)}`;
      const unknownId = `pv_${env}_${randomBase62(22)}_${randomBase62(43)}`;
      const spy = vi.spyOn(vault.core.keys, "activeKey");
      const calls: unknown[][][] = [];
      for (const presented of [wrongSecret, unknownId]) {
        spy.mockClear();
        const res = await use(presented);
        expectProblem(res, "AUTH_INVALID");
        calls.push(spy.mock.calls.map((c) => c.slice(0, 2)));
      }
      spy.mockRestore();
      // The same MAC under the same key is computed for both.
      expect(calls[0]).toEqual(calls[1]);
      expect(calls[0]?.filter((call) => call[1] === "apikey")).toHaveLength(1);
    });
  });

  describe(`the client address behind trusted proxies on ${driver.name}`, () => {
    let vault: TestVault;
    beforeAll(async () => {
      vault = await startTestVault(driver, {
        env: { PAYVAULT_TRUSTED_PROXIES: "127.0.0.1, 10.1.0.0/16" },
      });
    });
    afterAll(async () => vault?.close());

    it("believes X-Forwarded-For only from a configured proxy", async () => {
      const { secret } = await vault.core.apiKeys.create({
        tenantId: vault.tenantId,
        environment: "live",
        name: "ranged",
        scopes: ["audit:read"],
        actor: "test",
        allowedCidrs: ["203.0.113.0/24"],
      });
      const call = (remoteAddress: string, forwarded: string) =>
        vault.app.inject({
          method: "GET",
          url: "/v1/audit/events?limit=1",
          headers: { ...auth(secret), "x-forwarded-for": forwarded },
          remoteAddress,
        });
      expect((await call("127.0.0.1", "203.0.113.5")).statusCode).toBe(200);
      expect((await call("10.1.2.3", "203.0.113.5")).statusCode).toBe(200);
      // From anyone else the header is the client's own claim, and ignored.
      expectProblem(await call("198.51.100.1", "203.0.113.5"), "CLIENT_IP_NOT_ALLOWED");
      expectProblem(await call("127.0.0.1", "198.51.100.1"), "CLIENT_IP_NOT_ALLOWED");
    });
  });
}
