import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pkcs11js from "pkcs11js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AwsKmsKeyManager } from "../../src/keys/aws-kms-key-manager.js";
import type { KeyManager } from "../../src/keys/key-manager.js";
import { kekOf } from "../../src/keys/key-manager.js";
import { Pkcs11KeyManager } from "../../src/keys/pkcs11-key-manager.js";
import {
  auditCount,
  auth,
  CARDS,
  cardOf,
  countRows,
  expectFieldError,
  expectProblem,
  tokenize,
  tokenRowCount,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { KmsStandin } from "../support/kms-standin.js";
import { startKmsStandin } from "../support/kms-standin.js";
import type { SoftHsmToken } from "../support/softhsm.js";
import { createSoftHsmToken, softhsmAvailable } from "../support/softhsm.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/**
 * Key-service faults (issue 3, "Faults and bad input"): with the HSM or KMS unreachable, a vault
 * answers 503 KEY_SERVICE_UNAVAILABLE where it needs the KEK, writes nothing partial, reports
 * not ready, and recovers on its own when the service returns. Run against the real adapters:
 * aws-kms through the SDK against the local KMS stand-in, pkcs11 against SoftHSM2.
 */

/** Small, so a DEK leaves the cache within the test; the sweeper runs at the same interval. */
const CACHE_TTL_MS = 600;
/** Long enough for any DEK last used before it to have been evicted. */
const EVICTED_AFTER_MS = 3 * CACHE_TTL_MS;
const SCOPES = ["tokens:write", "tokens:read", "tokens:reveal"] as const;

interface Outage {
  /** Makes the key service unreachable. */
  down(): Promise<void>;
  /** Brings it back (the vault is not told). */
  up(): Promise<void>;
}

function reveal(vault: TestVault, key: string, id: string) {
  return vault.app.inject({
    method: "POST",
    url: `/v1/tokens/${id}/reveal`,
    headers: auth(key),
    payload: { purpose: "fault test" },
  });
}

function readyz(vault: TestVault) {
  return vault.app.inject({ method: "GET", url: "/readyz" });
}

async function dekOf(vault: TestVault, tokenId: string): Promise<string> {
  const { rows } = await vault.core.db.query<{ dek_id: string }>(
    "SELECT dek_id FROM tokens WHERE id = $1",
    [tokenId],
  );
  return rows[0]?.dek_id as string;
}

/**
 * The fault scenario, the same for every adapter: a vault in service, the key service lost,
 * then back, with the vault never restarted.
 */
function faultSuite(getVault: () => TestVault, outage: Outage): void {
  it("answers 503 KEY_SERVICE_UNAVAILABLE with nothing written while the key service is down, and recovers on its own", async () => {
    const vault = getVault();
    const before = await vault.newTenant([...SCOPES]);
    expect((await readyz(vault)).statusCode).toBe(200);
    const early = await tokenize(vault, before.key, { card: cardOf(CARDS.visa) });
    expect((await reveal(vault, before.key, early.id)).statusCode).toBe(200);

    await outage.down();
    try {
      // Keys still in the cache keep the key service off the hot path.
      const cached = await tokenize(vault, before.key, { card: cardOf(CARDS.mastercard) });
      expect(cached.duplicate).toBe(false);

      const ready = await readyz(vault);
      expect(ready.statusCode).toBe(503);
      expectProblem(ready, "NOT_READY");

      // A new tenant has no DEK yet: creating one needs the KEK.
      const fresh = await vault.newTenant([...SCOPES]);
      const tokens = await tokenRowCount(vault);
      const creates = await auditCount(vault, "token.create");
      const deks = await countRows(vault, "SELECT count(*) AS n FROM data_keys WHERE owner = $1", [
        fresh.tenantId,
      ]);
      expect(deks).toBe(0);
      const refused = await vault.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: auth(fresh.key),
        payload: { card: cardOf(CARDS.amex) },
      });
      expectProblem(refused, "KEY_SERVICE_UNAVAILABLE");
      expect(refused.body).not.toContain(CARDS.amex);
      const batch = await vault.app.inject({
        method: "POST",
        url: "/v1/tokens/batch",
        headers: auth(fresh.key),
        payload: { cards: [{ card: cardOf(CARDS.amex) }, { card: cardOf(CARDS.discover) }] },
      });
      expectProblem(batch, "KEY_SERVICE_UNAVAILABLE");
      expect(await tokenRowCount(vault)).toBe(tokens);
      expect(await auditCount(vault, "token.create")).toBe(creates);
      expect(
        await countRows(vault, "SELECT count(*) AS n FROM data_keys WHERE owner = $1", [
          fresh.tenantId,
        ]),
      ).toBe(0);

      // Once the tenant's DEK has left the cache, a reveal needs the KEK too.
      await sleep(EVICTED_AFTER_MS);
      const uncached = await reveal(vault, before.key, early.id);
      expectProblem(uncached, "KEY_SERVICE_UNAVAILABLE");
      expect(uncached.body).not.toContain(CARDS.visa);
      // The masked view needs no key: reads go on.
      const masked = await vault.app.inject({
        method: "GET",
        url: `/v1/tokens/${early.id}`,
        headers: auth(before.key),
      });
      expect(masked.statusCode, masked.body).toBe(200);

      // The same vault, untouched, once the key service is back.
      await outage.up();
      const readyAgain = await readyz(vault);
      expect(readyAgain.statusCode, readyAgain.body).toBe(200);
      const revealed = await reveal(vault, before.key, early.id);
      expect(revealed.statusCode, revealed.body).toBe(200);
      expect((revealed.json() as { card: { number: string } }).card.number).toBe(CARDS.visa);
      const created = await vault.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: auth(fresh.key),
        payload: { card: cardOf(CARDS.amex) },
      });
      expect(created.statusCode, created.body).toBe(201);
      const id = (created.json() as { id: string }).id;
      const back = await reveal(vault, fresh.key, id);
      expect(back.statusCode, back.body).toBe(200);
      expect((back.json() as { card: { number: string } }).card.number).toBe(CARDS.amex);
      expect((await reveal(vault, before.key, cached.id)).statusCode).toBe(200);
      expect(await tokenRowCount(vault)).toBe(tokens + 1);
    } finally {
      await outage.up();
    }
  });

  it("a KEK rotation ceremony approved during the outage fails with 503 and is marked failed, not executed", async () => {
    const vault = getVault();
    const second = await vault.newKey(vault.tenantId, ["sys:admin"]);
    const version = kekOf(vault.core.keyManager, "live").currentVersion;
    const proposed = await vault.app.inject({
      method: "POST",
      url: "/v1/sys/ceremonies",
      headers: auth(vault.adminKey),
      payload: { action: "kek.rotate", params: { environment: "live" } },
    });
    expect(proposed.statusCode, proposed.body).toBe(201);
    const id = (proposed.json() as { id: string }).id;
    await outage.down();
    try {
      const approved = await vault.app.inject({
        method: "POST",
        url: `/v1/sys/ceremonies/${id}/approve`,
        headers: auth(second),
      });
      expectProblem(approved, "KEY_SERVICE_UNAVAILABLE");
    } finally {
      await outage.up();
    }
    const row = await vault.core.ceremonies.get(id);
    expect(row.state).toBe("failed");
    expect(kekOf(vault.core.keyManager, "live").currentVersion).toBe(version);
    const { rows } = await vault.core.db.query<{ outcome: string }>(
      "SELECT outcome FROM audit_events WHERE object_id = $1 AND action = 'ceremony.approve' ORDER BY txid, id",
      [id],
    );
    expect(rows.map((r) => r.outcome)).toEqual(["success", "failure"]);
  });
}

let standin: KmsStandin;
beforeAll(async () => {
  standin = await startKmsStandin();
});
afterAll(async () => standin?.stop());

for (const driver of DRIVERS) {
  describe(`aws-kms (local KMS stand-in) faults on ${driver.name}`, () => {
    let vault: TestVault;
    let manager: KeyManager;
    beforeAll(async () => {
      manager = await AwsKmsKeyManager.open({
        keyIds: { live: await standin.createKey(), test: await standin.createKey() },
        region: "us-east-1",
        endpoint: standin.endpoint,
        credentials: { accessKeyId: "AKIDPAYVAULTTEST", secretAccessKey: "payvault-test-secret" },
        requestTimeoutMs: 1000,
      });
      vault = await startTestVault(driver, { keyManager: manager, keyCacheTtlMs: CACHE_TTL_MS });
    });
    afterAll(async () => vault?.close());

    it("wraps the vault's DEKs in KMS: Encrypt on tokenize, Decrypt after eviction", async () => {
      const { key } = await vault.newTenant([...SCOPES]);
      const from = standin.requests.length;
      const token = await tokenize(vault, key, { card: cardOf(CARDS.visa2) });
      expect(standin.requests.slice(from)).toContain("Encrypt");
      const { rows } = await vault.core.db.query<{ kek_id: string }>(
        "SELECT kek_id FROM data_keys WHERE id = $1",
        [await dekOf(vault, token.id)],
      );
      expect(rows[0]?.kek_id).toBe(kekOf(manager, "live").kekId);
      await sleep(EVICTED_AFTER_MS);
      const mark = standin.requests.length;
      expect((await reveal(vault, key, token.id)).statusCode).toBe(200);
      expect(standin.requests.slice(mark)).toContain("Decrypt");
    });

    it("refuses a custodians.rekey proposal: custodian shares exist only with the local KEK", async () => {
      const res = await vault.app.inject({
        method: "POST",
        url: "/v1/sys/ceremonies",
        headers: auth(vault.adminKey),
        payload: { action: "custodians.rekey", params: { shares: 3, threshold: 2 } },
      });
      expectFieldError(res, "action", "INVALID_PARAMETER");
      expect(
        await countRows(
          vault,
          "SELECT count(*) AS n FROM key_ceremonies WHERE action = 'custodians.rekey'",
        ),
      ).toBe(0);
    });

    faultSuite(() => vault, {
      down: () => standin.stop(),
      up: () => standin.restart().catch(() => undefined),
    });
  });
}

const available = softhsmAvailable();
const inCi = (process.env.CI ?? "") !== "" && process.env.CI !== "false";
if (!available) {
  describe("pkcs11 (SoftHSM2) faults", () => {
    it.skipIf(!inCi)("has SoftHSM2 to run against in CI", () => {
      expect.fail("SoftHSM2 is missing: apt-get install softhsm2 (.ci/run does)");
    });
  });
}

describe.skipIf(!available)("pkcs11 (SoftHSM2) vault", () => {
  let token: SoftHsmToken;
  beforeAll(async () => {
    token = await createSoftHsmToken({ tokenLabel: "payvault-faults" });
  });
  afterAll(async () => token?.cleanup());

  /**
   * Takes the HSM away under the adapter: the library is finalized from outside (as a crashed or
   * restarted HSM client would leave it) and cannot initialize again until the configuration
   * is back.
   */
  const hsmOutage: Outage = {
    async down() {
      const p11 = new pkcs11js.PKCS11();
      p11.load(token.module);
      try {
        p11.C_Initialize();
      } catch {
        // Already initialized by the adapter: that is the state we want to break.
      }
      p11.C_Finalize();
      process.env.SOFTHSM2_CONF = join(token.confPath, "..", "missing.conf");
    },
    async up() {
      process.env.SOFTHSM2_CONF = token.confPath;
    },
  };

  for (const driver of DRIVERS) {
    describe(`on ${driver.name}`, () => {
      let vault: TestVault;
      let manager: Pkcs11KeyManager;
      beforeAll(async () => {
        manager = await Pkcs11KeyManager.open({
          module: token.module,
          tokenLabel: token.tokenLabel,
          pin: token.pin,
          labelPrefix: `payvault-faults-${driver.name}`,
          create: true,
        });
        vault = await startTestVault(driver, { keyManager: manager, keyCacheTtlMs: CACHE_TTL_MS });
      });
      afterAll(async () => vault?.close());

      it("tokenizes and reveals end to end with every DEK wrapped inside the HSM", async () => {
        const { key } = await vault.newTenant([...SCOPES]);
        const created = await tokenize(vault, key, { card: cardOf(CARDS.discover2) });
        const testKey = await vault.newKey(
          vault.tenantId,
          ["tokens:write", "tokens:reveal"],
          "test",
        );
        const testToken = await tokenize(vault, testKey, { card: cardOf(CARDS.visa3) });
        const { rows } = await vault.core.db.query<{ id: string; kek_id: string }>(
          "SELECT id, kek_id FROM data_keys",
        );
        expect(rows.length).toBeGreaterThan(0);
        for (const row of rows) expect(row.kek_id).toMatch(/^pkcs11:payvault-faults\//);
        // After eviction the DEKs come back out of the HSM.
        await sleep(EVICTED_AFTER_MS);
        const revealed = await reveal(vault, key, created.id);
        expect(revealed.statusCode, revealed.body).toBe(200);
        expect((revealed.json() as { card: { number: string } }).card.number).toBe(CARDS.discover2);
        const revealedTest = await reveal(vault, testKey, testToken.id);
        expect((revealedTest.json() as { card: { number: string } }).card.number).toBe(CARDS.visa3);
        // Live and test DEKs are under different KEK objects.
        const { rows: byEnv } = await vault.core.db.query<{ environment: string; kek_id: string }>(
          "SELECT DISTINCT environment, kek_id FROM data_keys",
        );
        const live = byEnv.filter((r) => r.environment === "live").map((r) => r.kek_id);
        const test = byEnv.filter((r) => r.environment === "test").map((r) => r.kek_id);
        expect(live).toEqual([kekOf(manager, "live").kekId]);
        expect(test).toEqual([kekOf(manager, "test").kekId]);
        const inventory = await vault.app.inject({
          method: "GET",
          url: "/v1/sys/keys",
          headers: auth(vault.adminKey),
        });
        expect(inventory.json()).toMatchObject({
          keks: expect.arrayContaining([
            expect.objectContaining({ kind: "pkcs11", environment: "live" }),
          ]),
        });
      });

      faultSuite(() => vault, hsmOutage);
    });
  }
});
