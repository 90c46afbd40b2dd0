import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  auditRows,
  auth,
  CARDS,
  cardOf,
  EXP_MONTH,
  EXP_YEAR,
  expectFieldError,
  expectNoPan,
  expectProblem,
  keyIdOf,
  luhnValid,
  randomTokenId,
  spaced,
  TOKEN_ID,
  tokenExists,
  tokenize,
  tokenizeBody,
  tokenRowCount,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

const TOKEN_VIEW_KEYS = [
  "card",
  "created_at",
  "expires_at",
  "fingerprint",
  "format",
  "id",
  "metadata",
  "persistent",
].sort();
const CARD_VIEW_KEYS = ["bin", "brand", "exp_month", "exp_year", "last4"].sort();

for (const driver of DRIVERS) {
  describe(`tokens API on ${driver.name}`, () => {
    let vault: TestVault;
    let key: string;
    let otherTenant: { tenantId: string; key: string };

    beforeAll(async () => {
      vault = await startTestVault(driver);
      key = await vault.newKey(vault.tenantId, [
        "tokens:write",
        "tokens:read",
        "tokens:reveal",
        "tokens:delete",
      ]);
      otherTenant = await vault.newTenant([
        "tokens:write",
        "tokens:read",
        "tokens:reveal",
        "tokens:delete",
      ]);
    });
    afterAll(async () => vault?.close());

    const post = (body: unknown, apiKey = key) =>
      vault.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: auth(apiKey),
        payload: body as object,
      });
    const get = (id: string, apiKey = key) =>
      vault.app.inject({ method: "GET", url: `/v1/tokens/${id}`, headers: auth(apiKey) });
    const reveal = (id: string, purpose: string, apiKey = key) =>
      vault.app.inject({
        method: "POST",
        url: `/v1/tokens/${id}/reveal`,
        headers: auth(apiKey),
        payload: { purpose },
      });
    const remove = (id: string, apiKey = key) =>
      vault.app.inject({ method: "DELETE", url: `/v1/tokens/${id}`, headers: auth(apiKey) });

    it("POST /v1/tokens creates a random token: 201 with exactly the documented fields", async () => {
      const before = await tokenRowCount(vault, vault.tenantId);
      const startedAt = Date.now();
      const res = await post({ card: cardOf(CARDS.visa, { name: "Ada Lovelace" }) });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.headers["content-type"]).toMatch(/^application\/json/);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual([...TOKEN_VIEW_KEYS, "duplicate"].sort());
      expect(Object.keys(body.card).sort()).toEqual(CARD_VIEW_KEYS);
      expect(body.id).toMatch(TOKEN_ID);
      expect(body.format).toBe("random");
      expect(body.card).toEqual({
        brand: "visa",
        bin: CARDS.visa.slice(0, 8),
        last4: CARDS.visa.slice(-4),
        exp_month: EXP_MONTH,
        exp_year: EXP_YEAR,
      });
      expect(body.fingerprint).toMatch(/^[A-Za-z0-9_-]{20,}$/);
      expect(body.metadata).toEqual({});
      // No expiry asked for: the tenant's retention policy (30 days by default) applies.
      expect(Date.parse(body.expires_at) - Date.parse(body.created_at)).toBe(30 * 86_400_000);
      expect(body.persistent).toBe(false);
      expect(body.duplicate).toBe(false);
      const created = Date.parse(body.created_at);
      expect(new Date(created).toISOString()).toBe(body.created_at);
      expect(created).toBeGreaterThanOrEqual(startedAt - 5_000);
      expect(created).toBeLessThanOrEqual(Date.now() + 5_000);
      expectNoPan(res.body, CARDS.visa);
      expect(res.body).not.toContain("Ada Lovelace");
      expect(await tokenRowCount(vault, vault.tenantId)).toBe(before + 1);
      expect(await tokenExists(vault, vault.tenantId, body.id)).toBe(true);
      // The row holds no clear PAN in any column (the ciphertext is binary, checked as text too).
      const { rows } = await vault.core.db.query<{ t: string }>(
        "SELECT t::text AS t FROM tokens t WHERE id = $1",
        [body.id],
      );
      expectNoPan(rows[0]?.t ?? "", CARDS.visa);
      const creates = (await auditRows(vault, "token.create")).filter(
        (e) => e.object_id === body.id,
      );
      expect(creates).toHaveLength(1);
      expect(creates[0]).toMatchObject({
        tenant_id: vault.tenantId,
        actor: keyIdOf(key),
        outcome: "success",
      });
    });

    it("format card_alias: same length as the PAN, keeps BIN and last 4, fails Luhn, digits only", async () => {
      for (const pan of [CARDS.mastercard, CARDS.amex, CARDS.unionpay19]) {
        const res = await post({ card: cardOf(pan), format: "card_alias" });
        expect(res.statusCode, res.body).toBe(201);
        const body = res.json();
        const binLength = pan.length >= 16 ? 8 : 6;
        expect(body.format).toBe("card_alias");
        expect(body.id).toMatch(/^[0-9]+$/);
        expect(body.id).toHaveLength(pan.length);
        expect(body.id.slice(0, binLength)).toBe(pan.slice(0, binLength));
        expect(body.id.slice(-4)).toBe(pan.slice(-4));
        expect(body.id).not.toBe(pan);
        expect(luhnValid(body.id)).toBe(false);
        expect(body.card.bin).toBe(pan.slice(0, binLength));
        expectNoPan(res.body, pan);

        const read = await get(body.id);
        expect(read.statusCode, read.body).toBe(200);
        expect(read.json()).toMatchObject({ id: body.id, format: "card_alias" });
        const revealed = await reveal(body.id, "alias round trip");
        expect(revealed.statusCode, revealed.body).toBe(200);
        expect(revealed.json().card.number).toBe(pan);
      }
    });

    it("the same card again returns the existing token: 200, duplicate true, same id", async () => {
      const first = await post({ card: cardOf(CARDS.visa2) });
      expect(first.statusCode, first.body).toBe(201);
      const rowsAfterFirst = await tokenRowCount(vault, vault.tenantId);
      // Spaces are separators, not part of the number: still the same card.
      const again = await post({ card: cardOf(spaced(CARDS.visa2)) });
      expect(again.statusCode, again.body).toBe(200);
      expect(again.json()).toEqual({ ...first.json(), duplicate: true });
      expect(await tokenRowCount(vault, vault.tenantId)).toBe(rowsAfterFirst);
      const dedupes = (await auditRows(vault, "token.deduplicate")).filter(
        (e) => e.object_id === first.json().id,
      );
      expect(dedupes).toHaveLength(1);
    });

    it("concurrent requests for one new card make one token; the rest are its duplicates", async () => {
      const before = await tokenRowCount(vault, vault.tenantId);
      const responses = await Promise.all(
        Array.from({ length: 8 }, () => post({ card: cardOf(CARDS.discover2) })),
      );
      const statuses = responses.map((r) => r.statusCode).sort();
      expect(statuses, responses.map((r) => r.body).join("\n")).toEqual([
        200, 200, 200, 200, 200, 200, 200, 201,
      ]);
      const ids = new Set(responses.map((r) => r.json().id));
      expect(ids.size).toBe(1);
      for (const r of responses) expect(r.json().duplicate).toBe(r.statusCode === 200);
      expect(await tokenRowCount(vault, vault.tenantId)).toBe(before + 1);
    });

    it("dedupe: false creates a new token for a card already held (same fingerprint)", async () => {
      const first = await tokenize(vault, key, tokenizeBody(CARDS.visa3));
      const before = await tokenRowCount(vault, vault.tenantId);
      const res = await post({ card: cardOf(CARDS.visa3), dedupe: false });
      expect(res.statusCode, res.body).toBe(201);
      const body = res.json();
      expect(body.duplicate).toBe(false);
      expect(body.id).toMatch(TOKEN_ID);
      expect(body.id).not.toBe(first.id);
      expect(body.fingerprint).toBe(first.fingerprint);
      expect(await tokenRowCount(vault, vault.tenantId)).toBe(before + 1);
    });

    it("the same card in another tenant is a different token with a different fingerprint", async () => {
      const mine = await tokenize(vault, key, tokenizeBody(CARDS.visa4));
      const before = await tokenRowCount(vault, otherTenant.tenantId);
      const res = await post({ card: cardOf(CARDS.visa4) }, otherTenant.key);
      expect(res.statusCode, res.body).toBe(201);
      const theirs = res.json();
      expect(theirs.duplicate).toBe(false);
      expect(theirs.id).not.toBe(mine.id);
      // Fingerprints are keyed per tenant, so the same card in two tenants cannot be linked.
      expect(theirs.fingerprint).not.toBe(mine.fingerprint);
      expect(await tokenRowCount(vault, otherTenant.tenantId)).toBe(before + 1);
    });

    it("a different expiry is a different card record: a new token", async () => {
      const first = await tokenize(vault, key, tokenizeBody(CARDS.mastercard2));
      const res = await post({
        card: { number: CARDS.mastercard2, exp_month: 6, exp_year: EXP_YEAR + 1 },
      });
      expect(res.statusCode, res.body).toBe(201);
      const body = res.json();
      expect(body.duplicate).toBe(false);
      expect(body.id).not.toBe(first.id);
      expect(body.card).toMatchObject({ exp_month: 6, exp_year: EXP_YEAR + 1 });
      expect(body.fingerprint).toBe(first.fingerprint);
    });

    it("a card is good through its expiry month: this month is accepted, last month is not", async () => {
      const now = new Date();
      const thisMonth = { exp_month: now.getUTCMonth() + 1, exp_year: now.getUTCFullYear() };
      const last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
      const lastMonth = { exp_month: last.getUTCMonth() + 1, exp_year: last.getUTCFullYear() };
      const ok = await post({ card: { number: CARDS.amex, ...thisMonth }, dedupe: false });
      expect(ok.statusCode, ok.body).toBe(201);
      expect(ok.json().card).toMatchObject(thisMonth);
      const before = await tokenRowCount(vault);
      const expired = await post({ card: { number: CARDS.amex, ...lastMonth }, dedupe: false });
      expectFieldError(expired, "card.exp_year", "CARD_EXPIRED");
      expectNoPan(expired.body, CARDS.amex);
      expect(await tokenRowCount(vault)).toBe(before);
    });

    it("metadata round-trips through create and GET", async () => {
      const metadata = { order_id: "ord_1234", "customer.ref": "c-9", note: "façade ✓" };
      const res = await post({ card: cardOf(CARDS.mastercard3), metadata, dedupe: false });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json().metadata).toEqual(metadata);
      const read = await get(res.json().id);
      expect(read.statusCode, read.body).toBe(200);
      expect(read.json().metadata).toEqual(metadata);
    });

    it("expires_at round-trips; one in the past is refused with 400", async () => {
      const future = new Date(Date.now() + 30 * 24 * 3600 * 1000);
      future.setUTCMilliseconds(0);
      const res = await post({
        card: cardOf(CARDS.mastercard4),
        expires_at: future.toISOString(),
        dedupe: false,
      });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json().expires_at).toBe(future.toISOString());
      const read = await get(res.json().id);
      expect(read.json().expires_at).toBe(future.toISOString());

      const before = await tokenRowCount(vault);
      const past = await post({
        card: cardOf(CARDS.mastercard4),
        expires_at: new Date(Date.now() - 3600 * 1000).toISOString(),
        dedupe: false,
      });
      expectFieldError(past, "expires_at", "EXPIRES_AT_INVALID");
      expectNoPan(past.body, CARDS.mastercard4);
      expect(await tokenRowCount(vault)).toBe(before);
    });

    it("GET /v1/tokens/:id is the masked view: BIN and last 4 only", async () => {
      const created = await tokenize(
        vault,
        key,
        tokenizeBody(CARDS.discover, { metadata: { k: "v" } }),
      );
      const res = await get(created.id);
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual(TOKEN_VIEW_KEYS);
      const { duplicate: _duplicate, ...view } = created;
      expect(body).toEqual(view);
      expect(body.card).toEqual({
        brand: "discover",
        bin: CARDS.discover.slice(0, 8),
        last4: CARDS.discover.slice(-4),
        exp_month: EXP_MONTH,
        exp_year: EXP_YEAR,
      });
      expectNoPan(res.body, CARDS.discover);
    });

    it("reveal returns the card with no-store caching and audits the stated purpose", async () => {
      const created = await tokenize(vault, key, {
        card: cardOf(CARDS.jcb, { name: "Grace Hopper" }),
      });
      const purpose = `chargeback evidence ${randomUUID()}`;
      const res = await reveal(created.id, purpose);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers["cache-control"]).toBe("no-store");
      expect(res.json()).toEqual({
        id: created.id,
        card: {
          number: CARDS.jcb,
          exp_month: EXP_MONTH,
          exp_year: EXP_YEAR,
          name: "Grace Hopper",
          brand: "jcb",
        },
      });
      const events = (await auditRows(vault, "token.reveal")).filter(
        (e) => e.object_id === created.id,
      );
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        tenant_id: vault.tenantId,
        actor: keyIdOf(key),
        outcome: "success",
      });
      expect(events[0]?.details.purpose).toBe(purpose);
    });

    it("DELETE removes the token: 204, then 404 TOKEN_NOT_FOUND, and the row is gone", async () => {
      const created = await tokenize(vault, key, tokenizeBody(CARDS.amex2));
      const res = await remove(created.id);
      expect(res.statusCode, res.body).toBe(204);
      expect(res.body).toBe("");
      expect(await tokenExists(vault, vault.tenantId, created.id)).toBe(false);
      expectProblem(await get(created.id), "TOKEN_NOT_FOUND");
      expectProblem(await reveal(created.id, "after delete"), "TOKEN_NOT_FOUND");
      expectProblem(await remove(created.id), "TOKEN_NOT_FOUND");
      const deletes = (await auditRows(vault, "token.delete")).filter(
        (e) => e.object_id === created.id,
      );
      expect(deletes).toHaveLength(1);
      // Deleted means deleted: tokenizing the card again is a new token, not a duplicate.
      const again = await post({ card: cardOf(CARDS.amex2) });
      expect(again.statusCode, again.body).toBe(201);
      expect(again.json().id).not.toBe(created.id);
    });

    it("another tenant's token is the same 404 as a missing one, and is left untouched", async () => {
      const created = await tokenize(vault, key, tokenizeBody(CARDS.diners14));
      const missing = randomTokenId();
      const shape = (res: { json(): unknown }) => {
        const { code, title, status, type } = res.json() as Record<string, unknown>;
        return { code, title, status, type };
      };
      const attempts = [
        (id: string) => get(id, otherTenant.key),
        (id: string) => reveal(id, "cross-tenant", otherTenant.key),
        (id: string) => remove(id, otherTenant.key),
      ];
      for (const attempt of attempts) {
        const cross = await attempt(created.id);
        const absent = await attempt(missing);
        expectProblem(cross, "TOKEN_NOT_FOUND");
        expectProblem(absent, "TOKEN_NOT_FOUND");
        expect(shape(cross)).toEqual(shape(absent));
        expect(Object.keys(cross.json() as object).sort()).toEqual(
          Object.keys(absent.json() as object).sort(),
        );
        expect(cross.headers["content-type"]).toBe(absent.headers["content-type"]);
        expectNoPan(cross.body, CARDS.diners14);
      }
      expect(await tokenExists(vault, vault.tenantId, created.id)).toBe(true);
      const stillMine = await get(created.id);
      expect(stillMine.statusCode, stillMine.body).toBe(200);
      const reveals = (await auditRows(vault, "token.reveal")).filter(
        (e) => e.object_id === created.id,
      );
      expect(reveals).toEqual([]);
    });

    it("a card number used as a token id is a plain 404 that does not echo it", async () => {
      await tokenize(vault, key, tokenizeBody(CARDS.mastercard));
      for (const res of [
        await get(CARDS.mastercard),
        await reveal(CARDS.mastercard, "probe"),
        await remove(CARDS.mastercard),
      ]) {
        expectProblem(res, "TOKEN_NOT_FOUND");
        expectNoPan(res.body, CARDS.mastercard);
      }
    });

    it("GET /healthz and /readyz answer 200 without an API key", async () => {
      const health = await vault.app.inject({ method: "GET", url: "/healthz" });
      expect(health.statusCode, health.body).toBe(200);
      expect(health.json()).toEqual({ status: "ok" });
      const ready = await vault.app.inject({ method: "GET", url: "/readyz" });
      expect(ready.statusCode, ready.body).toBe(200);
      expect(ready.json()).toEqual({ status: "ready", store: driver.name, kek: "local" });
    });
  });
}
