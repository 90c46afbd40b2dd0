import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

for (const driver of DRIVERS) {
  describe(`smoke on ${driver.name}`, () => {
    let vault: TestVault;
    beforeAll(async () => {
      vault = await startTestVault(driver);
    });
    afterAll(async () => vault?.close());

    it("tokenizes, reads, reveals and deletes", async () => {
      const auth = { authorization: `Bearer ${vault.adminKey}` };
      const created = await vault.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: auth,
        payload: {
          card: {
            number: "4242 4242 4242 4242",
            exp_month: 12,
            exp_year: 2030,
            name: "Ada Lovelace",
          },
        },
      });
      expect(created.statusCode, created.body).toBe(201);
      const token = created.json();
      const read = await vault.app.inject({
        method: "GET",
        url: `/v1/tokens/${token.id}`,
        headers: auth,
      });
      expect(read.statusCode, read.body).toBe(200);
      const revealed = await vault.app.inject({
        method: "POST",
        url: `/v1/tokens/${token.id}/reveal`,
        headers: auth,
        payload: { purpose: "test" },
      });
      expect(revealed.statusCode, revealed.body).toBe(200);
      expect(revealed.json().card.number).toBe("4242424242424242");
      const del = await vault.app.inject({
        method: "DELETE",
        url: `/v1/tokens/${token.id}`,
        headers: auth,
      });
      expect(del.statusCode).toBe(204);
      console.log(created.body, read.body, vault.logs.text);
    });
  });
}
