import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Core } from "../../src/app/core.js";
import { openCore } from "../../src/app/core.js";
import { loadConfig } from "../../src/config/config.js";
import { TENANT_SCOPES } from "../../src/domain/scopes.js";
import { buildApp } from "../../src/http/app.js";
import { SYSTEM_KEY_OWNER } from "../../src/keys/key-ring.js";
import { createLogger } from "../../src/log/logger.js";
import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import type { KeyRecordView, LifecycleClock } from "../../src/services/keys/key-lifecycle.js";
import { auth, CARDS, cardOf, expectProblem, tokenize } from "../support/api-fixtures.js";
import { runCli } from "../support/cli-runner.js";
import { cliStoreEnv } from "../support/cli-schema.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { LogCapture, startTestVault } from "../support/vault-harness.js";

const DAY_MS = 86_400_000;
const SLOW = 180_000;
const TOKEN_SCOPES = ["tokens:write", "tokens:read"] as const;

/** A clock the test moves by hand; the lifecycle's waits move it on instead of sleeping. */
class ManualClock implements LifecycleClock {
  constructor(private ms: number) {}
  now(): Date {
    return new Date(this.ms);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
  /** Time the lifecycle waited (after a rotation), moved on instead of slept. */
  slept = 0;
  async sleep(ms: number): Promise<void> {
    this.slept += ms;
    this.advance(ms);
  }
}

interface KekView {
  kind: string;
  environment: "live" | "test";
  kek_id: string;
  current_version: number;
  versions: { version: number; created_at: string | null }[];
  algorithm: string;
  strength_bits: number;
  location: string;
}

interface InventoryBody {
  keks: KekView[];
  keys: KeyRecordView[];
}

interface KeyRowBits {
  id: string;
  owner: string;
  purpose: string;
  environment: string;
  version: number;
  kek_id: string;
  kek_version: number;
}

async function keyRows(db: Core["db"]): Promise<KeyRowBits[]> {
  const { rows } = await db.query<KeyRowBits>(
    "SELECT id, owner, purpose, environment, version, kek_id, kek_version FROM data_keys ORDER BY id",
  );
  return rows;
}

for (const driver of DRIVERS) {
  describe(`GET /v1/sys/keys on ${driver.name}`, () => {
    let vault: TestVault;
    const clock = new ManualClock(Date.now());
    let tenantId: string;
    let sadKeyId: string;
    let destroyedId: string;
    let retiredId: string;

    const inventory = (key?: string) =>
      vault.app.inject({
        method: "GET",
        url: "/v1/sys/keys",
        ...(key === undefined ? {} : { headers: auth(key) }),
      });

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock });
      const tenant = await vault.newTenant([...TOKEN_SCOPES]);
      tenantId = tenant.tenantId;
      const testKey = await vault.newKey(tenantId, [...TOKEN_SCOPES], "test");
      await tokenize(vault, tenant.key, { card: cardOf(CARDS.visa), persistent: true });
      await tokenize(vault, tenant.key, { card: cardOf(CARDS.mastercard) });
      await tokenize(vault, testKey, { card: cardOf(CARDS.amex), persistent: true });
      // A sad key (for the CVC), a retired version and a destroyed key, so every state shows.
      sadKeyId = (await vault.core.keys.activeKey({ owner: tenantId, purpose: "sad" })).id;
      const spare = await vault.core.keys.activeKey({
        owner: tenantId,
        purpose: "pan",
        epoch: "2030-09",
      });
      await vault.core.lifecycle.destroyKey(spare.id, "test", "inventory test");
      destroyedId = spare.id;
      const { rotated } = await vault.core.lifecycle.rotateDek("pan", tenantId, "test");
      const { rows } = await vault.core.db.query<{ id: string }>(
        "SELECT id FROM data_keys WHERE owner = $1 AND purpose = 'pan' AND epoch = 'persistent' AND environment = 'live' AND version = 1",
        [tenantId],
      );
      retiredId = rows[0]?.id as string;
      expect(rotated.length).toBeGreaterThan(0);
      // Ten days after the keys were made, the rotation's wait for other nodes included.
      clock.advance(10 * DAY_MS - clock.slept);
    });
    afterAll(async () => vault?.close());

    it("lists both KEKs: local, 256-bit, where they live, their versions", async () => {
      const res = await inventory(vault.adminKey);
      expect(res.statusCode, res.body).toBe(200);
      const { keks } = res.json<InventoryBody>();
      expect(keks.map((k) => k.environment).sort()).toEqual(["live", "test"]);
      const [live, test] = [
        keks.find((k) => k.environment === "live") as KekView,
        keks.find((k) => k.environment === "test") as KekView,
      ];
      // pv_live_ and pv_test_ never share a KEK.
      expect(live.kek_id).not.toBe(test.kek_id);
      for (const kek of keks) {
        expect(kek).toMatchObject({
          kind: "local",
          strength_bits: 256,
          current_version: 1,
          algorithm: expect.stringMatching(/AES-256/),
          location: `file:${join(vault.dataDir, "kek.json")}`,
        });
        expect(kek.versions).toEqual([
          { version: 1, created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
        ]);
      }
    });

    it("lists every DEK, the vault's own keys included, with its lifecycle facts", async () => {
      const res = await inventory(vault.adminKey);
      expect(res.statusCode, res.body).toBe(200);
      const { keys, keks } = res.json<InventoryBody>();
      const rows = await keyRows(vault.core.db);
      expect(keys.map((k) => k.id).sort()).toEqual(rows.map((r) => r.id).sort());
      const byId = new Map(keys.map((k) => [k.id, k]));
      // The system keys (audit chain, API-key MACs) are there.
      for (const purpose of ["audit", "apikey"]) {
        expect(keys.some((k) => k.owner === SYSTEM_KEY_OWNER && k.purpose === purpose)).toBe(true);
      }
      for (const row of rows) {
        const view = byId.get(row.id) as KeyRecordView;
        expect(view).toMatchObject({
          owner: row.owner,
          purpose: row.purpose,
          environment: row.environment,
          version: row.version,
          algorithm: row.purpose === "pan" || row.purpose === "sad" ? "AES-256-GCM" : "HMAC-SHA256",
          strength_bits: 256,
          kek_id: row.kek_id,
          kek_version: row.kek_version,
          age_days: 10,
        });
        expect(view.kek_id).toBe(keks.find((k) => k.environment === row.environment)?.kek_id);
        if (view.state === "destroyed") expect(view.location).toBe("nowhere (destroyed)");
        else
          expect(view.location).toBe(
            `store, wrapped by local KEK ${row.kek_id} v${row.kek_version}`,
          );
      }
      // Cryptoperiods left, 10 days after creation: pan 365 days, sad 90, audit 365; fingerprint
      // and apikey keys have none; retired and destroyed keys have none left.
      const active = (purpose: string, owner = tenantId) =>
        keys.find(
          (k) =>
            k.owner === owner &&
            k.purpose === purpose &&
            k.state === "active" &&
            k.environment === "live",
        ) as KeyRecordView;
      expect(active("pan").cryptoperiod_days_left).toBe(355);
      expect(active("sad")).toMatchObject({ id: sadKeyId, cryptoperiod_days_left: 80 });
      expect(active("fingerprint").cryptoperiod_days_left).toBeNull();
      expect(active("audit", SYSTEM_KEY_OWNER).cryptoperiod_days_left).toBe(355);
      expect(active("apikey", SYSTEM_KEY_OWNER).cryptoperiod_days_left).toBeNull();
      // Uses: the PAN key's count against its limit (one token each way on the live keys).
      expect(active("pan").max_uses).toBe(2 ** 28);
      expect(active("pan").uses_reserved).toBeGreaterThanOrEqual(0);
      expect(byId.get(retiredId)).toMatchObject({
        state: "retired",
        cryptoperiod_days_left: null,
        retired_at: expect.any(String),
        destroyed_at: null,
      });
      expect(byId.get(retiredId)?.uses_reserved).toBeGreaterThan(0);
      expect(byId.get(destroyedId)).toMatchObject({
        state: "destroyed",
        cryptoperiod_days_left: null,
        destroyed_at: expect.any(String),
      });
      // Test-environment keys are listed with their own KEK.
      expect(keys.some((k) => k.owner === tenantId && k.environment === "test")).toBe(true);
      // No key material and no wrapped bytes in the listing.
      expect(res.body).not.toMatch(/wrapped"\s*:/);
      expect(res.body).not.toMatch(/material/);
    });

    it("needs sys:admin: every tenant scope alone is 403, no key is 401", async () => {
      const admin = await vault.newKey(vault.tenantId, [...TENANT_SCOPES]);
      expectProblem(await inventory(admin), "INSUFFICIENT_SCOPE");
      const tokens = await vault.newKey(vault.tenantId, [
        "tokens:write",
        "tokens:read",
        "tokens:reveal",
      ]);
      expectProblem(await inventory(tokens), "INSUFFICIENT_SCOPE");
      expectProblem(await inventory(), "AUTH_MISSING");
      const sys = await vault.newKey(vault.tenantId, ["sys:admin"]);
      expect((await inventory(sys)).statusCode).toBe(200);
    });
  });

  describe(`payvault keys status on ${driver.name}`, () => {
    let dataDir: string;
    let env: Record<string, string> = {};
    let drop: () => Promise<void> = async () => undefined;
    let http: InventoryBody;

    beforeAll(async () => {
      dataDir = await mkdtemp(join(tmpdir(), "payvault-keys-status-"));
      // A fresh schema when on PostgreSQL, named so the CLI child uses it too.
      ({ env, drop } = await cliStoreEnv(driver.name));
      // The vault in this process over the CLI's store: tokens in both environments, and the
      // HTTP inventory to compare the CLI with. Closing it releases the PGlite lock.
      const core = await openCore(loadConfig({ PAYVAULT_DATA_DIR: dataDir, ...env }, dataDir));
      const app = buildApp(
        { ...core, logger: createLogger("info", new LogCapture()) },
        { tls: undefined },
      );
      try {
        await app.ready();
        const boot = await bootstrapIfEmpty(core.db, core.tenants, core.apiKeys);
        if (boot === undefined) throw new Error("expected an empty store");
        const vaultish = { app } as unknown as TestVault;
        for (const environment of ["live", "test"] as const) {
          const key = (
            await core.apiKeys.create({
              tenantId: boot.tenantId,
              environment,
              name: "status",
              scopes: ["tokens:write"],
              actor: "test",
            })
          ).secret;
          await tokenize(vaultish, key, { card: cardOf(CARDS.visa), persistent: true });
          await tokenize(vaultish, key, { card: cardOf(CARDS.discover) });
        }
        const res = await app.inject({
          method: "GET",
          url: "/v1/sys/keys",
          headers: auth(boot.apiKey),
        });
        expect(res.statusCode, res.body).toBe(200);
        http = res.json<InventoryBody>();
      } finally {
        await app.close();
        await core.close();
      }
    }, SLOW);
    afterAll(async () => {
      await drop();
      if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
    });

    it(
      "--json lists the same KEKs and keys as GET /v1/sys/keys",
      async () => {
        const result = await runCli(["keys", "status", "--json"], { dataDir, env });
        expect(result.code, result.stderr).toBe(0);
        const cli = JSON.parse(result.stdout) as {
          keks: {
            kind: string;
            environment: string;
            kekId: string;
            currentVersion: number;
            strengthBits: number;
            location: string;
          }[];
          keys: KeyRecordView[];
        };
        expect(
          cli.keks.map((k) => [k.environment, k.kekId, k.kind, k.strengthBits]).sort(),
        ).toEqual(http.keks.map((k) => [k.environment, k.kek_id, k.kind, k.strength_bits]).sort());
        expect(cli.keys.map((k) => k.id).sort()).toEqual(http.keys.map((k) => k.id).sort());
        const httpById = new Map(http.keys.map((k) => [k.id, k]));
        for (const key of cli.keys) {
          const same = httpById.get(key.id) as KeyRecordView;
          for (const field of [
            "owner",
            "environment",
            "purpose",
            "epoch",
            "version",
            "algorithm",
            "strength_bits",
            "state",
            "kek_id",
            "kek_version",
            "location",
            "max_uses",
            "encrypt_until",
          ] as const) {
            expect(key[field], `${key.id} ${field}`).toEqual(same[field]);
          }
        }
        // Both environments, pan + fingerprint in each, and the system keys.
        expect(new Set(cli.keys.map((k) => `${k.environment}/${k.purpose}`))).toEqual(
          new Set([
            "live/pan",
            "live/fingerprint",
            "test/pan",
            "test/fingerprint",
            "live/audit",
            "live/apikey",
          ]),
        );
      },
      SLOW,
    );

    it(
      "the table lists every KEK and key with algorithm, state, period left and KEK",
      async () => {
        const result = await runCli(["keys", "status"], { dataDir, env });
        expect(result.code, result.stderr).toBe(0);
        const [kekPart, dekPart] = result.stdout.split("Data-encryption keys");
        expect(kekPart).toMatch(/^Key-encrypting keys\n/);
        for (const kek of http.keks) {
          const line = (kekPart as string).split("\n").find((l) => l.includes(kek.kek_id));
          expect(line, kek.kek_id).toBeDefined();
          expect(line).toMatch(new RegExp(`\\b${kek.environment}\\b`));
          expect(line).toMatch(/\blocal\b/);
          expect(line).toMatch(/\b256\b/);
        }
        const lines = (dekPart as string).split("\n");
        for (const key of http.keys) {
          const line = lines.find((l) => l.includes(key.id));
          expect(line, key.id).toBeDefined();
          expect(line).toContain(key.algorithm);
          expect(line).toContain(key.state);
          expect(line).toContain(`${key.kek_id} v${key.kek_version}`);
          if (key.cryptoperiod_days_left !== null) {
            expect(line).toMatch(new RegExp(`\\b${key.cryptoperiod_days_left}\\b`));
          }
          if (key.max_uses !== null) expect(line).toContain(`/${key.max_uses}`);
        }
      },
      SLOW,
    );
  });
}
