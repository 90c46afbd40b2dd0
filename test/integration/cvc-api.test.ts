import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auth, CARDS, cardOf, expectFieldError, tokenize } from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/** Every text value in every table of the vault's schema, as one string. */
async function everythingStored(vault: TestVault): Promise<string> {
  const { rows: tables } = await vault.core.db.query<{ name: string }>(
    `SELECT quote_ident(table_name) AS name FROM information_schema.tables
      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`,
  );
  const dumps: string[] = [];
  for (const { name } of tables) {
    const { rows } = await vault.core.db.query(`SELECT * FROM ${name}`);
    dumps.push(JSON.stringify(rows));
  }
  return dumps.join("\n");
}

for (const driver of DRIVERS) {
  describe(`CVC with the tokenize API on ${driver.name}`, () => {
    let vault: TestVault;
    let key: string;

    beforeAll(async () => {
      vault = await startTestVault(driver);
      key = await vault.newKey(vault.tenantId, ["tokens:write", "tokens:read"]);
    });
    afterAll(async () => vault?.close());

    it("holds a CVC sent with the card in the ephemeral store, once, and never in SQL", async () => {
      const cvc = "737";
      const token = await tokenize(vault, key, { card: cardOf(CARDS.visa3, { cvc }) });
      const until = Date.parse(String(token.cvc_expires_at));
      expect(until - Date.now()).toBeGreaterThan(14 * 60_000);
      expect(until - Date.now()).toBeLessThanOrEqual(15 * 60_000);
      const stored = await everythingStored(vault);
      expect(stored).toContain(token.id);
      expect(stored).not.toMatch(/"cvc"|cvc_/i);
      const scope = { tenantId: vault.tenantId, environment: "live" as const };
      const taken = await vault.core.cvcs.take(scope, token.id);
      expect(taken?.revealDigits()).toBe(cvc);
      expect(await vault.core.cvcs.take(scope, token.id), "single use").toBeUndefined();
      expect(vault.logs.text).not.toContain(`"${cvc}"`);
    });

    it("a duplicate card holds the new CVC on the existing token", async () => {
      const first = await tokenize(vault, key, { card: cardOf(CARDS.mastercard) });
      expect(first.cvc_expires_at).toBeUndefined();
      const again = await tokenize(vault, key, { card: cardOf(CARDS.mastercard, { cvc: "123" }) });
      expect(again.duplicate).toBe(true);
      expect(again.id).toBe(first.id);
      const taken = await vault.core.cvcs.take(
        { tenantId: vault.tenantId, environment: "live" },
        first.id,
      );
      expect(taken?.revealDigits()).toBe("123");
    });

    it("a CVC of the wrong length for the brand is a field error, and nothing is written", async () => {
      const res = await vault.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: auth(key),
        payload: { card: cardOf(CARDS.visa4, { cvc: "12345" }) },
      });
      expectFieldError(res, "card.cvc", "CVC_INVALID");
    });
  });
}
