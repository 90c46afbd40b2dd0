import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  auth,
  CARDS,
  cardOf,
  countRows,
  expectFieldError,
  expectNoPan,
  expectProblem,
  INVALID_LUHN,
  randomBase62,
  tokenRowCount,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

for (const driver of DRIVERS) {
  describe(`idempotency on ${driver.name}`, () => {
    let vault: TestVault;
    let key: string;

    beforeAll(async () => {
      vault = await startTestVault(driver);
      key = await vault.newKey(vault.tenantId, ["tokens:write"]);
    });
    afterAll(async () => vault?.close());

    const newKey = () => `idem-${randomBase62(16)}`;
    const post = (
      body: unknown,
      idempotencyKey: string | undefined,
      apiKey = key,
      url = "/v1/tokens",
    ) =>
      vault.app.inject({
        method: "POST",
        url,
        headers: {
          ...auth(apiKey),
          ...(idempotencyKey === undefined ? {} : { "idempotency-key": idempotencyKey }),
        },
        payload: body as object,
      });
    // The vault stores an HMAC of the client's key, never the key itself.
    const storedKeyOf = async (tenantId: string, idempotencyKey: string) =>
      (await vault.core.idempotency.fingerprint(tenantId, idempotencyKey, "", {})).key;
    const storedKeys = async (tenantId: string, idempotencyKey: string) =>
      countRows(
        vault,
        "SELECT count(*) AS n FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
        [tenantId, await storedKeyOf(tenantId, idempotencyKey)],
      );

    it("same key and same body replays the first response, with one token row", async () => {
      const k = newKey();
      // dedupe off: without idempotency a second request would make a second token.
      const body = { card: cardOf(CARDS.visa), dedupe: false, metadata: { order: "1" } };
      const before = await tokenRowCount(vault);
      const first = await post(body, k);
      expect(first.statusCode, first.body).toBe(201);
      expect(first.headers["idempotent-replayed"]).toBeUndefined();
      const second = await post(body, k);
      expect(second.statusCode, second.body).toBe(201);
      expect(second.headers["idempotent-replayed"]).toBe("true");
      expect(second.headers["content-type"]).toMatch(/^application\/json/);
      expect(second.json()).toEqual(first.json());
      expect(second.body).toBe(first.body);
      // The same JSON with its keys in another order is the same request.
      const reordered = { metadata: { order: "1" }, dedupe: false, card: cardOf(CARDS.visa) };
      const third = await post(reordered, k);
      expect(third.statusCode, third.body).toBe(201);
      expect(third.headers["idempotent-replayed"]).toBe("true");
      expect(third.json()).toEqual(first.json());
      expect(await tokenRowCount(vault)).toBe(before + 1);
    });

    it("replays a batch response too", async () => {
      const k = newKey();
      const body = { cards: [{ card: cardOf(CARDS.visa2), dedupe: false }] };
      const before = await tokenRowCount(vault);
      const first = await post(body, k, key, "/v1/tokens/batch");
      expect(first.statusCode, first.body).toBe(200);
      const second = await post(body, k, key, "/v1/tokens/batch");
      expect(second.statusCode, second.body).toBe(200);
      expect(second.headers["idempotent-replayed"]).toBe("true");
      expect(second.json()).toEqual(first.json());
      expect(await tokenRowCount(vault)).toBe(before + 1);
    });

    it("same key with a different body is 422 IDEMPOTENCY_KEY_REUSED and creates nothing", async () => {
      const k = newKey();
      const first = await post({ card: cardOf(CARDS.mastercard), dedupe: false }, k);
      expect(first.statusCode, first.body).toBe(201);
      const before = await tokenRowCount(vault);
      const other = await post({ card: cardOf(CARDS.mastercard2), dedupe: false }, k);
      expectProblem(other, "IDEMPOTENCY_KEY_REUSED");
      expectNoPan(other.body, CARDS.mastercard, CARDS.mastercard2);
      // The same key on another route is another request, also refused.
      const onBatch = await post(
        { cards: [{ card: cardOf(CARDS.mastercard), dedupe: false }] },
        k,
        key,
        "/v1/tokens/batch",
      );
      expectProblem(onBatch, "IDEMPOTENCY_KEY_REUSED");
      expect(await tokenRowCount(vault)).toBe(before);
      // The original is still replayable.
      const replay = await post({ card: cardOf(CARDS.mastercard), dedupe: false }, k);
      expect(replay.headers["idempotent-replayed"]).toBe("true");
      expect(replay.json()).toEqual(first.json());
    });

    it("concurrent requests with one new key: one creates, the rest get 409 or the replay", async () => {
      const k = newKey();
      const body = { card: cardOf(CARDS.mastercard3), dedupe: false };
      const before = await tokenRowCount(vault);
      const responses = await Promise.all(Array.from({ length: 10 }, () => post(body, k)));
      const fresh = responses.filter(
        (r) => r.statusCode === 201 && r.headers["idempotent-replayed"] === undefined,
      );
      expect(fresh, responses.map((r) => `${r.statusCode} ${r.body}`).join("\n")).toHaveLength(1);
      const original = fresh[0]?.json();
      for (const res of responses) {
        if (res === fresh[0]) continue;
        if (res.statusCode === 409) {
          expectProblem(res, "IDEMPOTENCY_IN_FLIGHT");
        } else {
          expect(res.statusCode, res.body).toBe(201);
          expect(res.headers["idempotent-replayed"]).toBe("true");
          expect(res.json()).toEqual(original);
        }
        expectNoPan(res.body, CARDS.mastercard3);
      }
      expect(await tokenRowCount(vault)).toBe(before + 1);
      // Once the first has finished, the key replays.
      const after = await post(body, k);
      expect(after.statusCode, after.body).toBe(201);
      expect(after.headers["idempotent-replayed"]).toBe("true");
      expect(after.json()).toEqual(original);
    });

    it("a request whose key is in flight gets 409 IDEMPOTENCY_IN_FLIGHT", async () => {
      const k = newKey();
      const body = { card: cardOf(CARDS.mastercard4), dedupe: false };
      // Another node has claimed the key and not finished: the row is in flight with a live lock.
      const ref = await vault.core.idempotency.fingerprint(
        vault.tenantId,
        k,
        "POST /v1/tokens",
        body,
      );
      const claimed = await vault.core.idempotency.begin(ref);
      expect(claimed.kind).toBe("proceed");
      const before = await tokenRowCount(vault);
      const res = await post(body, k);
      expectProblem(res, "IDEMPOTENCY_IN_FLIGHT");
      expect(await tokenRowCount(vault)).toBe(before);
    });

    it("a request that fails validation is not stored: the key can be used with a valid body", async () => {
      const before = await tokenRowCount(vault);
      // Refused by the schema (unknown field) ...
      const schemaKey = newKey();
      const bad = await post({ card: cardOf(CARDS.amex), colour: "red" }, schemaKey);
      expectFieldError(bad, "colour", "UNKNOWN_FIELD");
      expect(await storedKeys(vault.tenantId, schemaKey)).toBe(0);
      const retry = await post({ card: cardOf(CARDS.amex), dedupe: false }, schemaKey);
      expect(retry.statusCode, retry.body).toBe(201);
      expect(retry.headers["idempotent-replayed"]).toBeUndefined();
      // ... and by the card rules (Luhn), which run after the key was claimed.
      const luhnKey = newKey();
      const luhn = await post({ card: cardOf(INVALID_LUHN[2]) }, luhnKey);
      expectFieldError(luhn, "card.number", "PAN_LUHN");
      expect(await storedKeys(vault.tenantId, luhnKey)).toBe(0);
      const fixed = await post({ card: cardOf(CARDS.amex2), dedupe: false }, luhnKey);
      expect(fixed.statusCode, fixed.body).toBe(201);
      expect(fixed.headers["idempotent-replayed"]).toBeUndefined();
      expect(await tokenRowCount(vault)).toBe(before + 2);
    });

    it("keys are per tenant: the same key in two tenants is two independent requests", async () => {
      const other = await vault.newTenant(["tokens:write"]);
      const k = newKey();
      const mine = await post({ card: cardOf(CARDS.discover), dedupe: false }, k);
      expect(mine.statusCode, mine.body).toBe(201);
      // A different body under the same key in the other tenant is not a reuse ...
      const theirs = await post({ card: cardOf(CARDS.discover2), dedupe: false }, k, other.key);
      expect(theirs.statusCode, theirs.body).toBe(201);
      expect(theirs.headers["idempotent-replayed"]).toBeUndefined();
      // ... and the same body is not a replay of this tenant's response.
      const same = await post({ card: cardOf(CARDS.discover), dedupe: false }, k, other.key);
      expectProblem(same, "IDEMPOTENCY_KEY_REUSED");
      const otherFresh = newKey();
      const first = await post({ card: cardOf(CARDS.discover), dedupe: false }, otherFresh);
      const cross = await post(
        { card: cardOf(CARDS.discover), dedupe: false },
        otherFresh,
        other.key,
      );
      expect(cross.statusCode, cross.body).toBe(201);
      expect(cross.headers["idempotent-replayed"]).toBeUndefined();
      expect(cross.json().id).not.toBe(first.json().id);
      expect(await storedKeys(vault.tenantId, k)).toBe(1);
      expect(await storedKeys(other.tenantId, k)).toBe(1);
    });

    it("an invalid Idempotency-Key header is 400 INVALID_IDEMPOTENCY_KEY and creates nothing", async () => {
      const before = await tokenRowCount(vault);
      const body = { card: cardOf(CARDS.jcb), dedupe: false };
      const bad = ["k".repeat(256), "clé-€", "key with spaces", "tab\tkey"];
      for (const header of bad) {
        const res = await vault.app.inject({
          method: "POST",
          url: "/v1/tokens",
          headers: { ...auth(key), "idempotency-key": header },
          payload: body,
        });
        expectProblem(res, "INVALID_IDEMPOTENCY_KEY");
        expectNoPan(res.body, CARDS.jcb);
      }
      expect(await tokenRowCount(vault)).toBe(before);
      // 255 printable ASCII characters is the longest valid key.
      const longest = await post(body, "k".repeat(255));
      expect(longest.statusCode, longest.body).toBe(201);
    });

    it("an Idempotency-Key that is a card number is never stored in clear", async () => {
      for (const header of [CARDS.mastercard4, `order-${CARDS.visa3}`]) {
        const res = await post({ card: cardOf(CARDS.discover), dedupe: false }, header);
        expect(res.statusCode, res.body).toBeLessThan(500);
        expectNoPan(res.body, CARDS.mastercard4, CARDS.visa3);
      }
      const { rows } = await vault.core.db.query<{ t: string }>(
        "SELECT i::text AS t FROM idempotency_keys i",
      );
      expectNoPan(rows.map((r) => r.t).join("\n"), CARDS.mastercard4, CARDS.visa3);
    });

    it("the stored idempotency record holds no card number", async () => {
      const k = newKey();
      const pan = CARDS.unionpay19;
      const res = await post({ card: cardOf(pan, { name: "Lin Hui" }), dedupe: false }, k);
      expect(res.statusCode, res.body).toBe(201);
      const batchKey = newKey();
      const batch = await post(
        { cards: [{ card: cardOf(CARDS.visa4), dedupe: false }] },
        batchKey,
        key,
        "/v1/tokens/batch",
      );
      expect(batch.statusCode, batch.body).toBe(200);
      const { rows } = await vault.core.db.query<{
        row: string;
        request_hash: string;
        response_body: string;
      }>(
        "SELECT i::text AS row, request_hash, response_body FROM idempotency_keys i WHERE key = ANY($1::text[])",
        [[await storedKeyOf(vault.tenantId, k), await storedKeyOf(vault.tenantId, batchKey)]],
      );
      expect(rows).toHaveLength(2);
      for (const row of rows) {
        expect(row.response_body.length).toBeGreaterThan(0);
        expectNoPan(row.row, pan, CARDS.visa4);
        expectNoPan(row.response_body, pan, CARDS.visa4);
        expectNoPan(row.request_hash, pan, CARDS.visa4);
        expect(row.row).not.toContain("Lin Hui");
      }
    });
  });
}
