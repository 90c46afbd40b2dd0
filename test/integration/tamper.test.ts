import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCore } from "../../src/app/core.js";
import { loadConfig } from "../../src/config/config.js";
import { buildApp } from "../../src/http/app.js";
import { createLogger } from "../../src/log/logger.js";
import { DRIVERS } from "../support/databases.js";
import {
  bearer,
  CARDS,
  card,
  panSpellings,
  withoutRequestId,
} from "../support/session-fixtures.js";
import type { TestVault } from "../support/vault-harness.js";
import { LogCapture, startTestVault } from "../support/vault-harness.js";

interface TokenRowBits {
  ciphertext: Buffer;
  dek_id: string;
}

for (const driver of DRIVERS) {
  describe(`tamper on ${driver.name}`, () => {
    let vault: TestVault;
    let tenantB: { tenantId: string; key: string };
    /** Every DECRYPTION_FAILED response body, with its request id blanked. */
    const failures: string[] = [];

    const scopes = ["tokens:write", "tokens:read", "tokens:reveal"] as const;

    async function tokenize(key: string, number: string): Promise<string> {
      const response = await vault.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: bearer(key),
        payload: { card: card(number), dedupe: false },
      });
      expect(response.statusCode, response.body).toBe(201);
      return response.json<{ id: string }>().id;
    }

    function reveal(key: string, id: string): Promise<LightMyRequestResponse> {
      return vault.app.inject({
        method: "POST",
        url: `/v1/tokens/${id}/reveal`,
        headers: bearer(key),
        payload: { purpose: "tamper test" },
      });
    }

    async function rowOf(tenantId: string, id: string): Promise<TokenRowBits> {
      const { rows } = await vault.core.db.query<TokenRowBits>(
        "SELECT ciphertext, dek_id FROM tokens WHERE tenant_id = $1 AND id = $2",
        [tenantId, id],
      );
      const row = rows[0];
      if (row === undefined) throw new Error(`no token ${id}`);
      return row;
    }

    async function setRow(tenantId: string, id: string, bits: TokenRowBits): Promise<void> {
      const { rowCount } = await vault.core.db.query(
        "UPDATE tokens SET ciphertext = $3, dek_id = $4 WHERE tenant_id = $1 AND id = $2",
        [tenantId, id, bits.ciphertext, bits.dek_id],
      );
      expect(rowCount).toBe(1);
    }

    async function failedRevealEvents(id: string): Promise<number> {
      const { rows } = await vault.core.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_events
          WHERE action = 'token.reveal' AND object_id = $1 AND outcome = 'failure'
            AND details->>'reason' = 'decryption_failed'`,
        [id],
      );
      return rows[0]?.n ?? -1;
    }

    async function panKeyOf(tenantId: string): Promise<string> {
      const { rows } = await vault.core.db.query<{ id: string }>(
        "SELECT id FROM data_keys WHERE owner = $1 AND purpose = 'pan'",
        [tenantId],
      );
      expect(rows).toHaveLength(1);
      return (rows[0] as { id: string }).id;
    }

    /** Reveals `id` and checks the one generic failure: status, code, no card data, audited. */
    async function expectGenericFailure(key: string, id: string, pan: string): Promise<void> {
      const before = await failedRevealEvents(id);
      const response = await reveal(key, id);
      expect(response.statusCode, response.body).toBe(500);
      expect(response.headers["content-type"]).toBe("application/problem+json; charset=utf-8");
      const body = response.json<Record<string, unknown>>();
      expect(body.code).toBe("DECRYPTION_FAILED");
      expect(body).not.toHaveProperty("card");
      expect(body).not.toHaveProperty("detail");
      for (const spelling of panSpellings(pan)) expect(response.body).not.toContain(spelling);
      expect(withoutRequestId(response.body)).not.toContain(pan.slice(-4));
      expect(await failedRevealEvents(id)).toBe(before + 1);
      failures.push(withoutRequestId(response.body));
    }

    beforeAll(async () => {
      vault = await startTestVault(driver);
      tenantB = await vault.newTenant([...scopes]);
    });
    afterAll(async () => vault?.close());

    it("reveals an untouched token (the baseline the tampering departs from)", async () => {
      const id = await tokenize(vault.adminKey, CARDS.visa);
      const response = await reveal(vault.adminKey, id);
      expect(response.statusCode).toBe(200);
      expect(response.json<{ card: { number: string } }>().card.number).toBe(CARDS.visa);
      expect(await failedRevealEvents(id)).toBe(0);
    });

    it("refuses a ciphertext with any one byte flipped", async () => {
      const id = await tokenize(vault.adminKey, CARDS.mastercard);
      const original = await rowOf(vault.tenantId, id);
      const length = original.ciphertext.length;
      // Version, DEK-id length, DEK id, nonce, body, tag.
      const positions = [0, 1, 2, 5, Math.floor(length / 2), length - 17, length - 1];
      for (const position of positions) {
        const flipped = Buffer.from(original.ciphertext);
        flipped[position] = (flipped[position] as number) ^ 0x01;
        await setRow(vault.tenantId, id, { ...original, ciphertext: flipped });
        await expectGenericFailure(vault.adminKey, id, CARDS.mastercard);
      }
      // Truncated, and empty.
      for (const short of [original.ciphertext.subarray(0, length - 1), Buffer.alloc(0)]) {
        await setRow(vault.tenantId, id, { ...original, ciphertext: short });
        await expectGenericFailure(vault.adminKey, id, CARDS.mastercard);
      }
      await setRow(vault.tenantId, id, original);
      expect((await reveal(vault.adminKey, id)).statusCode).toBe(200);
    });

    it("refuses a ciphertext copied onto another token of the same tenant", async () => {
      const source = await tokenize(vault.adminKey, CARDS.amex);
      const target = await tokenize(vault.adminKey, CARDS.discover);
      const targetOriginal = await rowOf(vault.tenantId, target);
      await setRow(vault.tenantId, target, await rowOf(vault.tenantId, source));
      await expectGenericFailure(vault.adminKey, target, CARDS.amex);
      await setRow(vault.tenantId, target, targetOriginal);
      expect((await reveal(vault.adminKey, target)).statusCode).toBe(200);
    });

    it("refuses a ciphertext (and its DEK id) copied onto another tenant's token", async () => {
      const source = await tokenize(vault.adminKey, CARDS.jcb);
      const target = await tokenize(tenantB.key, CARDS.diners14);
      await setRow(tenantB.tenantId, target, await rowOf(vault.tenantId, source));
      await expectGenericFailure(tenantB.key, target, CARDS.jcb);
      // The other direction, keeping the target's own DEK id.
      const back = await tokenize(vault.adminKey, CARDS.unionpay);
      const fromB = await rowOf(tenantB.tenantId, await tokenize(tenantB.key, CARDS.visaDebit));
      const backOriginal = await rowOf(vault.tenantId, back);
      await setRow(vault.tenantId, back, { ...backOriginal, ciphertext: fromB.ciphertext });
      await expectGenericFailure(vault.adminKey, back, CARDS.visaDebit);
    });

    it("refuses a token whose dek_id points at another tenant's or another purpose's key", async () => {
      const id = await tokenize(vault.adminKey, CARDS.visaClassic);
      const original = await rowOf(vault.tenantId, id);
      const { rows } = await vault.core.db.query<{ id: string }>(
        `SELECT id FROM data_keys WHERE NOT (owner = $1 AND purpose = 'pan') ORDER BY id`,
        [vault.tenantId],
      );
      const others = rows.map((r) => r.id);
      expect(others).toContain(await panKeyOf(tenantB.tenantId));
      // Tenant B's PAN key, this tenant's fingerprint key, the system audit and apikey keys.
      expect(others.length).toBeGreaterThanOrEqual(4);
      for (const dekId of others) {
        await setRow(vault.tenantId, id, { ...original, dek_id: dekId });
        await expectGenericFailure(vault.adminKey, id, CARDS.visaClassic);
      }
      await setRow(vault.tenantId, id, original);
      expect((await reveal(vault.adminKey, id)).statusCode).toBe(200);
    });

    it("refuses a token whose dek_id names no key at all", async () => {
      const id = await tokenize(vault.adminKey, CARDS.visaAlt);
      const original = await rowOf(vault.tenantId, id);
      // The foreign key forbids this through the API; a restored or hand-edited database need
      // not have it (and a destroyed DEK is exactly this state), so drop it for the test.
      const { rows } = await vault.core.db.query<{ conname: string }>(
        `SELECT conname FROM pg_constraint
          WHERE conrelid = 'tokens'::regclass AND contype = 'f' AND conname LIKE '%dek%'`,
      );
      expect(rows).toHaveLength(1);
      await vault.core.db.exec(`ALTER TABLE tokens DROP CONSTRAINT ${rows[0]?.conname}`);
      await setRow(vault.tenantId, id, { ...original, dek_id: "dek_doesnotexist000000" });
      await expectGenericFailure(vault.adminKey, id, CARDS.visaAlt);
    });

    it("refuses a PAN key whose wrapped form was edited (fresh core, nothing cached)", async () => {
      const tenantC = await vault.newTenant([...scopes]);
      const id = await tokenize(tenantC.key, CARDS.mastercardDebit);
      const dekId = await panKeyOf(tenantC.tenantId);
      const { rows } = await vault.core.db.query<{ wrapped: Buffer }>(
        "SELECT wrapped FROM data_keys WHERE id = $1",
        [dekId],
      );
      const wrapped = Buffer.from((rows[0] as { wrapped: Buffer }).wrapped);
      wrapped[wrapped.length - 3] = (wrapped[wrapped.length - 3] as number) ^ 0x80;
      await vault.core.db.query("UPDATE data_keys SET wrapped = $2 WHERE id = $1", [
        dekId,
        wrapped,
      ]);

      const config = loadConfig({ PAYVAULT_DATA_DIR: vault.dataDir }, vault.dataDir);
      const fresh = await openCore(config, { db: vault.core.db });
      const app = buildApp(
        { ...fresh, logger: createLogger("info", new LogCapture()) },
        { tls: undefined },
      );
      try {
        await app.ready();
        // The fresh core shares the KEK: an untouched tenant's token still reveals through it.
        const control = await tokenize(vault.adminKey, CARDS.amexAlt);
        const ok = await app.inject({
          method: "POST",
          url: `/v1/tokens/${control}/reveal`,
          headers: bearer(vault.adminKey),
          payload: { purpose: "control" },
        });
        expect(ok.statusCode, ok.body).toBe(200);

        const before = await failedRevealEvents(id);
        const response = await app.inject({
          method: "POST",
          url: `/v1/tokens/${id}/reveal`,
          headers: bearer(tenantC.key),
          payload: { purpose: "tamper test" },
        });
        expect(response.statusCode, response.body).toBe(500);
        expect(response.json<{ code: string }>().code).toBe("DECRYPTION_FAILED");
        for (const spelling of panSpellings(CARDS.mastercardDebit))
          expect(response.body).not.toContain(spelling);
        expect(await failedRevealEvents(id)).toBe(before + 1);
        failures.push(withoutRequestId(response.body));
      } finally {
        await app.close();
        await fresh.close();
      }
    });

    it("gives every one of those failures the byte-identical response", () => {
      // 7 flips + 2 truncations, 1 same-tenant move, 2 cross-tenant moves, ≥4 foreign DEKs,
      // 1 missing DEK, 1 edited wrapped DEK.
      expect(failures.length).toBeGreaterThanOrEqual(18);
      expect(new Set(failures).size).toBe(1);
      expect(JSON.parse(failures[0] as string)).toEqual({
        type: "urn:payvault:problem:decryption-failed",
        title: "The stored card data could not be decrypted.",
        status: 500,
        code: "DECRYPTION_FAILED",
        request_id: "-",
      });
    });
  });
}
