import { randomUUID } from "node:crypto";
import { CompactEncrypt, importJWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMaintenance } from "../../src/services/maintenance.js";
import { auth, CARDS, EXP_MONTH, EXP_YEAR, expectProblem } from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

interface Jwk extends Record<string, unknown> {
  kid: string;
  alg: string;
}

for (const driver of DRIVERS) {
  describe(`capture key rotation on ${driver.name}`, () => {
    let vault: TestVault;
    let writer: string;
    let now = new Date();
    const clock = { now: () => now };

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock });
      writer = await vault.newKey(vault.tenantId, ["capture"]);
    });
    afterAll(async () => vault?.close());

    const ecKeys = async () =>
      (
        (await vault.app.inject({ method: "GET", url: "/v1/capture/jwks" })).json() as {
          keys: Jwk[];
        }
      ).keys.filter((k) => k.alg === "ECDH-ES+A256KW");

    async function tokenizeWith(jwk: Jwk, number: string) {
      const session = (
        await vault.app.inject({
          method: "POST",
          url: "/v1/capture/sessions",
          headers: auth(writer),
          payload: { origins: ["https://shop.example"] },
        })
      ).json() as { id: string; session: string };
      const iat = Math.floor(now.getTime() / 1000);
      const claims = {
        iss: session.id,
        aud: "https://vault.test",
        iat,
        exp: iat + 300,
        jti: randomUUID(),
        card: { number, exp_month: EXP_MONTH, exp_year: EXP_YEAR },
      };
      const payload = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(claims)))
        .setProtectedHeader({ alg: jwk.alg, enc: "A256GCM", kid: jwk.kid, cty: "JWT" })
        .encrypt(await importJWK(jwk, jwk.alg));
      return vault.app.inject({
        method: "POST",
        url: "/v1/capture/tokenize",
        payload: { session: session.session, payload },
      });
    }

    it("a rotated key is published after the new one and accepted for the overlap, then refused", async () => {
      const [before] = await ecKeys();
      const rotated = await vault.core.joseKeys.rotate("test");
      expect(rotated.retired).toHaveLength(3);
      const keys = await ecKeys();
      expect(keys).toHaveLength(2);
      expect(keys[1]?.kid).toBe(before?.kid);
      expect(keys[0]?.kid).not.toBe(before?.kid);
      // Inside the overlap both keys work.
      expect((await tokenizeWith(keys[0] as Jwk, CARDS.visa)).statusCode).toBe(201);
      expect((await tokenizeWith(before as Jwk, CARDS.visa2)).statusCode).toBe(201);
      // Past it (1 h) the old key is gone from the JWKS and refused like any bad payload.
      now = new Date(now.getTime() + 3_600_000 + 1_000);
      expect((await ecKeys()).map((k) => k.kid)).toEqual([keys[0]?.kid]);
      expectProblem(await tokenizeWith(before as Jwk, CARDS.visa3), "JWE_INVALID");
      expect((await tokenizeWith(keys[0] as Jwk, CARDS.visa3)).statusCode).toBe(201);
      const { rows } = await vault.core.db.query<{ action: string }>(
        "SELECT action FROM audit_events WHERE action = 'jose_key.rotate'",
      );
      expect(rows).toHaveLength(3);
    });

    it("a session verified once (and cached) is refused once it expires", async () => {
      const { session } = (
        await vault.app.inject({
          method: "POST",
          url: "/v1/capture/sessions",
          headers: auth(writer),
          payload: { origins: ["https://shop.example"], ttl_seconds: 60 },
        })
      ).json() as { session: string };
      await expect(vault.core.captureSessions.verify(session)).resolves.toBeDefined();
      await expect(vault.core.captureSessions.verify(session)).resolves.toBeDefined();
      // Past its exp plus the 30 s allowed for nodes' clocks.
      now = new Date(now.getTime() + 60_000 + 31_000);
      await expect(vault.core.captureSessions.verify(session)).rejects.toThrow(
        "the capture session is invalid or has expired",
      );
    });

    it("the maintenance pass replaces keys past their cryptoperiod (90 days), once however many passes run", async () => {
      const before = (await vault.core.joseKeys.describe()).filter((k) => k.retiredAt === null);
      expect(before).toHaveLength(3);
      expect((await runMaintenance(vault.core, false)).joseKeysRotated).toBe(0);
      now = new Date(now.getTime() + 91 * 86_400_000);
      // Two passes at once, as two nodes would run them: the keys rotate once.
      const [a, b] = await Promise.all([
        runMaintenance(vault.core, false),
        runMaintenance(vault.core, false),
      ]);
      expect(a.joseKeysRotated + b.joseKeysRotated).toBe(3);
      // The admin access-token key has its own cryptoperiod and rotates once too.
      expect(a.accessTokenKeysRotated + b.accessTokenKeysRotated).toBe(1);
      const after = (await vault.core.joseKeys.describe()).filter((k) => k.retiredAt === null);
      expect(after).toHaveLength(3);
      expect(after.map((k) => k.kid).some((kid) => before.some((k) => k.kid === kid))).toBe(false);
      expect((await runMaintenance(vault.core, false)).joseKeysRotated).toBe(0);
    });
  });
}
