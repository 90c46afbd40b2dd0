import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  auditCount,
  auth,
  CARDS,
  cardOf,
  EXP_MONTH,
  EXP_YEAR,
  expectFieldError,
  expectNoPan,
  INVALID_LUHN,
  TOKEN_ID,
  tokenize,
  tokenizeBody,
  tokenRowCount,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

interface ItemResult {
  status: number;
  duplicate?: boolean;
  token?: {
    id: string;
    format: string;
    card: { brand: string; bin: string; last4: string; exp_month: number; exp_year: number };
    fingerprint: string;
  };
  error?: { code: string; title: string; errors: { field: string; code: string }[] };
}

for (const driver of DRIVERS) {
  describe(`tokens batch on ${driver.name}`, () => {
    let vault: TestVault;
    let key: string;

    beforeAll(async () => {
      vault = await startTestVault(driver);
      key = await vault.newKey(vault.tenantId, ["tokens:write", "tokens:reveal"]);
    });
    afterAll(async () => vault?.close());

    const batch = (cards: unknown) =>
      vault.app.inject({
        method: "POST",
        url: "/v1/tokens/batch",
        headers: auth(key),
        payload: { cards } as object,
      });
    const reveal = (id: string) =>
      vault.app.inject({
        method: "POST",
        url: `/v1/tokens/${id}/reveal`,
        headers: auth(key),
        payload: { purpose: "batch check" },
      });

    it("returns one result per item, in order, with per-item errors and field paths", async () => {
      const valid = [CARDS.visa, CARDS.mastercard, CARDS.amex];
      const before = await tokenRowCount(vault);
      const creates = await auditCount(vault, "token.create");
      const res = await batch([
        { card: cardOf(valid[0] as string) },
        { card: cardOf(valid[1] as string), format: "card_alias" },
        { card: cardOf(valid[2] as string), metadata: { row: "2" } },
        { card: cardOf(INVALID_LUHN[0]) },
        { card: { number: CARDS.discover, exp_month: "12", exp_year: EXP_YEAR } },
      ]);
      expect(res.statusCode, res.body).toBe(200);
      const { results } = res.json() as { results: ItemResult[] };
      expect(results).toHaveLength(5);
      valid.forEach((pan, i) => {
        const item = results[i] as ItemResult;
        expect(item.status, JSON.stringify(item)).toBe(201);
        expect(item.duplicate).toBe(false);
        expect(item.error).toBeUndefined();
        expect(item.token?.card.last4).toBe(pan.slice(-4));
        expect(item.token?.card.bin).toBe(pan.slice(0, pan.length >= 16 ? 8 : 6));
        expect(item.token?.card).toMatchObject({ exp_month: EXP_MONTH, exp_year: EXP_YEAR });
      });
      expect(results[0]?.token?.id).toMatch(TOKEN_ID);
      expect(results[1]?.token?.format).toBe("card_alias");
      expect(results[1]?.token?.id).toHaveLength(CARDS.mastercard.length);
      expect(new Set(results.slice(0, 3).map((r) => r.token?.id)).size).toBe(3);

      const luhn = results[3] as ItemResult;
      expect(luhn.status).toBe(400);
      expect(luhn.token).toBeUndefined();
      expect(luhn.error?.code).toBe("VALIDATION_FAILED");
      expect(luhn.error?.errors).toContainEqual(
        expect.objectContaining({ field: "cards.3.card.number", code: "PAN_LUHN" }),
      );
      const shape = results[4] as ItemResult;
      expect(shape.status).toBe(400);
      expect(shape.error?.code).toBe("VALIDATION_FAILED");
      expect(shape.error?.errors).toContainEqual(
        expect.objectContaining({ field: "cards.4.card.exp_month", code: "INVALID_TYPE" }),
      );
      // Each item's errors name that item only.
      for (const e of luhn.error?.errors ?? []) expect(e.field).toMatch(/^cards\.3\./);
      for (const e of shape.error?.errors ?? []) expect(e.field).toMatch(/^cards\.4\./);
      expectNoPan(res.body, ...valid, INVALID_LUHN[0], CARDS.discover);
      expect(await tokenRowCount(vault)).toBe(before + 3);
      expect(await auditCount(vault, "token.create")).toBe(creates + 3);

      // Every created token reveals to the card it was made from.
      for (const [i, pan] of valid.entries()) {
        const revealed = await reveal(results[i]?.token?.id as string);
        expect(revealed.statusCode, revealed.body).toBe(200);
        expect(revealed.json().card.number).toBe(pan);
      }
    });

    it("two identical cards in one batch: the second is a duplicate of the first", async () => {
      const before = await tokenRowCount(vault);
      const res = await batch([
        { card: cardOf(CARDS.visa2) },
        { card: cardOf(CARDS.jcb) },
        { card: cardOf(CARDS.visa2) },
      ]);
      expect(res.statusCode, res.body).toBe(200);
      const { results } = res.json() as { results: ItemResult[] };
      expect(results.map((r) => [r.status, r.duplicate])).toEqual([
        [201, false],
        [201, false],
        [200, true],
      ]);
      expect(results[2]?.token).toEqual(results[0]?.token);
      expect(results[1]?.token?.id).not.toBe(results[0]?.token?.id);
      expect(await tokenRowCount(vault)).toBe(before + 2);
    });

    it("a card tokenized before the batch comes back as duplicate: true with its token", async () => {
      const existing = await tokenize(vault, key, tokenizeBody(CARDS.visa3));
      const res = await batch([{ card: cardOf(CARDS.visa4) }, { card: cardOf(CARDS.visa3) }]);
      expect(res.statusCode, res.body).toBe(200);
      const { results } = res.json() as { results: ItemResult[] };
      expect(results[0]).toMatchObject({ status: 201, duplicate: false });
      expect(results[1]).toMatchObject({ status: 200, duplicate: true });
      expect(results[1]?.token?.id).toBe(existing.id);
      expect(results[1]?.token?.fingerprint).toBe(existing.fingerprint);
    });

    it("dedupe: false in an item makes a new token even for a card already held", async () => {
      const existing = await tokenize(vault, key, tokenizeBody(CARDS.mastercard2));
      const res = await batch([{ card: cardOf(CARDS.mastercard2), dedupe: false }]);
      const { results } = res.json() as { results: ItemResult[] };
      expect(results[0]).toMatchObject({ status: 201, duplicate: false });
      expect(results[0]?.token?.id).not.toBe(existing.id);
    });

    it("accepts exactly 1,000 items", async () => {
      const before = await tokenRowCount(vault);
      const cards = Array.from({ length: 1000 }, () => ({
        card: cardOf(CARDS.unionpay19),
        dedupe: false,
      }));
      const res = await batch(cards);
      expect(res.statusCode, res.body.slice(0, 500)).toBe(200);
      const { results } = res.json() as { results: ItemResult[] };
      expect(results).toHaveLength(1000);
      expect(results.every((r) => r.status === 201)).toBe(true);
      expect(new Set(results.map((r) => r.token?.id)).size).toBe(1000);
      expect(await tokenRowCount(vault)).toBe(before + 1000);
    });

    it("more than 1,000 items is refused with 400 and nothing is stored", async () => {
      const before = await tokenRowCount(vault);
      const cards = Array.from({ length: 1001 }, () => ({
        card: cardOf(CARDS.discover2),
        dedupe: false,
      }));
      const res = await batch(cards);
      expectFieldError(res, "cards", "TOO_LONG");
      expectNoPan(res.body, CARDS.discover2);
      expect(await tokenRowCount(vault)).toBe(before);
    });

    it("an empty batch is refused with 400", async () => {
      const before = await tokenRowCount(vault);
      expectFieldError(await batch([]), "cards", "TOO_SHORT");
      expect(await tokenRowCount(vault)).toBe(before);
    });

    it("an item that is not an object fails the request's shape: 400, nothing stored", async () => {
      const before = await tokenRowCount(vault);
      const res = await batch([{ card: cardOf(CARDS.amex2) }, CARDS.amex2]);
      expectFieldError(res, "cards.1", "INVALID_TYPE");
      expectNoPan(res.body, CARDS.amex2);
      expect(await tokenRowCount(vault)).toBe(before);
    });
  });
}
