import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  auditRows,
  auth,
  CARDS,
  cardOf,
  expectFieldError,
  keyIdOf,
  tokenize,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

interface Page {
  data: { id: string; occurred_at: string; actor: string; action: string; outcome: string }[];
  next_cursor: string | null;
}

for (const driver of DRIVERS) {
  describe(`GET /v1/audit/events on ${driver.name}`, () => {
    let vault: TestVault;
    let auditor: string;
    let writer: string;
    let other: { tenantId: string; key: string };

    beforeAll(async () => {
      vault = await startTestVault(driver);
      auditor = await vault.newKey(vault.tenantId, ["audit:read"]);
      writer = await vault.newKey(vault.tenantId, ["tokens:write"]);
      other = await vault.newTenant(["audit:read", "tokens:write"]);
      for (let i = 0; i < 5; i += 1)
        await tokenize(vault, writer, { card: cardOf(CARDS.visa), dedupe: false });
      await tokenize(vault, other.key, { card: cardOf(CARDS.visa), dedupe: false });
    });
    afterAll(async () => vault?.close());

    const read = async (key: string, query: string) => {
      const res = await vault.app.inject({
        method: "GET",
        url: `/v1/audit/events${query}`,
        headers: auth(key),
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as Page;
    };

    it("pages through the tenant's events in time order, and only the tenant's", async () => {
      const seen: Page["data"] = [];
      let cursor: string | null = "";
      while (cursor !== null) {
        const page: Page = await read(
          auditor,
          `?action=token.create&limit=2${cursor === "" ? "" : `&cursor=${cursor}`}`,
        );
        expect(page.data.length).toBeLessThanOrEqual(2);
        seen.push(...page.data);
        cursor = page.next_cursor;
      }
      expect(seen).toHaveLength(5);
      expect(new Set(seen.map((e) => e.id)).size).toBe(5);
      const times = seen.map((e) => e.occurred_at);
      expect([...times].sort()).toEqual(times);
      expect(seen.every((e) => e.action === "token.create" && e.outcome === "success")).toBe(true);
      // The other tenant sees its own one, never these.
      const theirs = await read(other.key, "?action=token.create");
      expect(theirs.data).toHaveLength(1);
      expect(theirs.data.some((e) => seen.some((s) => s.id === e.id))).toBe(false);
    });

    it("filters by time, and refuses bad filters with field errors", async () => {
      const future = new Date(Date.now() + 3_600_000).toISOString();
      expect((await read(auditor, `?since=${encodeURIComponent(future)}`)).data).toHaveLength(0);
      for (const [query, field] of [
        ["?limit=0", "limit"],
        ["?limit=501", "limit"],
        ["?since=yesterday", "since"],
        ["?action=DROP%20TABLE", "action"],
      ] as const) {
        const res = await vault.app.inject({
          method: "GET",
          url: `/v1/audit/events${query}`,
          headers: auth(auditor),
        });
        expect(res.statusCode, query).toBe(400);
        expect(res.json()).toMatchObject({ code: "VALIDATION_FAILED" });
        expect(JSON.stringify(res.json())).toContain(field);
      }
      expectFieldError(
        await vault.app.inject({
          method: "GET",
          url: "/v1/audit/events?cursor=bm90LWEtY3Vyc29y",
          headers: auth(auditor),
        }),
        "cursor",
        "INVALID_FORMAT",
      );
    });

    it("each read of the trail is itself an audit.read event (PCI DSS 10.2.1.3)", async () => {
      const before = (await auditRows(vault, "audit.read")).length;
      await read(auditor, "?limit=3");
      const events = await auditRows(vault, "audit.read");
      expect(events).toHaveLength(before + 1);
      expect(events).toContainEqual(
        expect.objectContaining({
          tenant_id: vault.tenantId,
          actor: keyIdOf(auditor),
          outcome: "success",
          details: expect.objectContaining({ events: 3 }),
        }),
      );
    });
  });
}
