import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DecryptionError } from "../../src/crypto/decryption-error.js";
import type { EnvelopeContext } from "../../src/crypto/envelope.js";
import { envelopeDekId, openEnvelope } from "../../src/crypto/envelope.js";
import { Cvc } from "../../src/domain/cvc.js";
import type { CvcScope } from "../../src/ephemeral/cvc-store.js";
import {
  CvcStore,
  CvcStoreInputError,
  DEFAULT_CVC_TTL_MS,
  MAX_CVC_TTL_MS,
} from "../../src/ephemeral/cvc-store.js";
import { EphemeralStoreUnavailableError } from "../../src/ephemeral/ephemeral-store.js";
import { RedisEphemeralStore } from "../../src/ephemeral/redis-ephemeral-store.js";
import type { SqlClient } from "../../src/store/database.js";
import { DRIVERS } from "../support/databases.js";
import type { StoreAdapter, StoreHarness } from "../support/redis.js";
import {
  describeRedis,
  REDIS_URL,
  rawClient,
  redisRelay,
  removeKeys,
  STORE_ADAPTERS,
  testPrefix,
} from "../support/redis.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/** Test security codes (no real card is involved anywhere). */
const CVC = "737";
const CID = "7373";

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A token id of letters only, so no digit sequence in a key name can come from it. */
function tokenId(): string {
  return `tok_${[...randomBytes(22)].map((b) => LETTERS[b % LETTERS.length]).join("")}`;
}

/** Every row of every table of the vault's schema, as text (bytea as hex). */
async function dumpTables(db: SqlClient): Promise<Map<string, string>> {
  const { rows } = await db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables
      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const dump = new Map<string, string>();
  for (const { table_name } of rows) {
    const result = await db.query<{ dump: string }>(
      `SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') AS dump FROM "${table_name}" t`,
    );
    dump.set(table_name, result.rows[0]?.dump ?? "");
  }
  return dump;
}

function cvcSuite(adapter: StoreAdapter, vault: () => TestVault): void {
  let h: StoreHarness;
  let cvcs: CvcStore;
  let scope: CvcScope;
  let other: CvcScope;

  beforeAll(async () => {
    const v = vault();
    scope = { tenantId: v.tenantId, environment: "live" };
    other = { tenantId: (await v.newTenant(["tokens:write"])).tenantId, environment: "live" };
  });
  beforeEach(async () => {
    h = await adapter.open();
    cvcs = new CvcStore(h.store, vault().core.keys);
  });
  afterEach(async () => {
    await h.close();
  });

  const keyName = (s: CvcScope, token: string) =>
    `${h.prefix}cvc:${s.tenantId}:${s.environment}:${token}`;

  it("hands the CVC out once, masked, and holds nothing after", async () => {
    const token = tokenId();
    await cvcs.put(scope, token, CVC);
    const cvc = await cvcs.take(scope, token);
    expect(cvc).toBeInstanceOf(Cvc);
    expect(cvc?.revealDigits()).toBe(CVC);
    expect(String(cvc)).toBe("***");
    expect(JSON.stringify({ cvc })).toBe('{"cvc":"***"}');
    expect(await cvcs.take(scope, token)).toBeUndefined();
    expect((await h.raw()).size).toBe(0);
  });

  it("takes a 4-digit CID and a parsed Cvc as well", async () => {
    const token = tokenId();
    const parsed = Cvc.parse(CID, "amex");
    if (!parsed.ok) throw new Error("test CID must parse");
    await cvcs.put(scope, token, parsed.value);
    expect((await cvcs.take(scope, token))?.revealDigits()).toBe(CID);
  });

  it("replaces the CVC held for a token, and delete forgets it", async () => {
    const token = tokenId();
    await cvcs.put(scope, token, CVC);
    await cvcs.put(scope, token, CID);
    expect((await cvcs.take(scope, token))?.revealDigits()).toBe(CID);
    await cvcs.put(scope, token, CVC);
    await cvcs.delete(scope, token);
    expect(await cvcs.take(scope, token)).toBeUndefined();
  });

  it("is gone after its TTL", async () => {
    const token = tokenId();
    await cvcs.put(scope, token, CVC, adapter.shortTtlMs);
    await h.elapse(adapter.shortTtlMs);
    expect(await cvcs.take(scope, token)).toBeUndefined();
    expect((await h.raw()).size).toBe(0);
  });

  it("keeps it 15 minutes by default", async () => {
    const token = tokenId();
    await cvcs.put(scope, token, CVC);
    if (adapter.name === "redis") {
      const client = rawClient();
      const pttl = await client.pttl(keyName(scope, token));
      await client.quit();
      expect(pttl).toBeGreaterThan(DEFAULT_CVC_TTL_MS - 10_000);
      expect(pttl).toBeLessThanOrEqual(DEFAULT_CVC_TTL_MS);
    } else {
      await h.elapse(DEFAULT_CVC_TTL_MS - 1);
      const later = tokenId();
      await cvcs.put(scope, later, CVC);
      await h.elapse(1);
      expect(await cvcs.take(scope, token)).toBeUndefined();
      expect((await cvcs.take(scope, later))?.revealDigits()).toBe(CVC);
    }
  });

  it("refuses a TTL over 1 hour, and a malformed CVC, without the value in the error", async () => {
    const token = tokenId();
    for (const ttl of [MAX_CVC_TTL_MS + 1, 0, -1, 1.5, Number.NaN]) {
      const err = await cvcs.put(scope, token, CVC, ttl).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RangeError);
      expect(err).toMatchObject({ name: "CvcStoreInputError", code: "CVC_TTL_INVALID" });
    }
    await cvcs.put(scope, token, CVC, MAX_CVC_TTL_MS);
    await cvcs.delete(scope, token);
    for (const bad of ["73", "73737", "7a7", " 737", "", "٧٣٧"]) {
      const err = await cvcs.put(scope, token, bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CvcStoreInputError);
      expect(err).toMatchObject({ code: "CVC_INVALID" });
      if (bad.trim() !== "") expect((err as Error).message).not.toContain(bad.trim());
    }
    expect((await h.raw()).size).toBe(0);
  });

  it("gives nothing to another tenant, another environment or another token", async () => {
    const token = tokenId();
    await cvcs.put(scope, token, CVC);
    expect(await cvcs.take(other, token)).toBeUndefined();
    expect(await cvcs.take({ ...scope, environment: "test" }, token)).toBeUndefined();
    expect(await cvcs.take(scope, tokenId())).toBeUndefined();
    await cvcs.delete(other, token);
    expect((await cvcs.take(scope, token))?.revealDigits()).toBe(CVC);
  });

  it("does not decrypt a stored value copied to another token, tenant or environment", async () => {
    const token = tokenId();
    await cvcs.put(scope, token, CVC);
    const value = (await h.raw()).get(keyName(scope, token));
    if (value === undefined) throw new Error("expected the stored value");
    const elsewhere: [CvcScope, string][] = [
      [scope, tokenId()],
      [other, token],
      [{ ...scope, environment: "test" }, token],
    ];
    for (const [where, id] of elsewhere) {
      await h.store.put(keyName(where, id).slice(h.prefix.length), value, 60_000);
      await expect(cvcs.take(where, id)).rejects.toThrow(DecryptionError);
      // Single use even then: the copy is gone.
      expect(await cvcs.take(where, id)).toBeUndefined();
    }
    expect((await cvcs.take(scope, token))?.revealDigits()).toBe(CVC);
  });

  it("stores only a sad-key envelope under a key made of ids", async () => {
    const token = tokenId();
    await cvcs.put(scope, token, CVC);
    const firstKeys = [...(await h.raw()).keys()];
    await cvcs.put(scope, token, CID);
    const raw = await h.raw();
    // The key name is exactly prefix + ids: it is the same whatever the CVC.
    expect([...raw.keys()]).toEqual([keyName(scope, token)]);
    expect(firstKeys).toEqual([keyName(scope, token)]);
    const value = Buffer.from(raw.get(keyName(scope, token)) ?? []);

    // A version 0x01 envelope: header, DEK id, 12-byte nonce, ciphertext, 16-byte tag.
    const dekId = envelopeDekId(value);
    expect(value[0]).toBe(0x01);
    expect(value.length).toBe(2 + dekId.length + 12 + CID.length + 16);
    const ciphertext = value.subarray(2 + dekId.length + 12, 2 + dekId.length + 12 + CID.length);
    expect(ciphertext.equals(Buffer.from(CID, "ascii"))).toBe(false);

    // Under the tenant's `sad` DEK, apart from its PAN keys.
    const { rows } = await vault().core.db.query<{
      owner: string;
      purpose: string;
      environment: string;
    }>("SELECT owner, purpose, environment FROM data_keys WHERE id = $1", [dekId]);
    expect(rows).toEqual([{ owner: scope.tenantId, purpose: "sad", environment: "live" }]);

    // Bound to tenant, environment and token id: only the right context opens it.
    const dek = await vault().core.keys.keyById(dekId, scope.tenantId, "sad");
    const right: EnvelopeContext = {
      tenantId: scope.tenantId,
      objectId: `cvc:live:${token}`,
      purpose: "sad",
    };
    expect(openEnvelope(value, dek.material, right).toString("ascii")).toBe(CID);
    for (const wrong of [
      { ...right, tenantId: other.tenantId },
      { ...right, objectId: `cvc:test:${token}` },
      { ...right, objectId: `cvc:live:${tokenId()}` },
      { ...right, purpose: "pan" as const },
    ]) {
      expect(() => openEnvelope(value, dek.material, wrong)).toThrow(DecryptionError);
    }
  });

  it("never touches SQL: no row changes while a CVC is put and taken", async () => {
    const db = vault().core.db;
    // The first CVC of a tenant creates its `sad` DEK and reserves a block of uses on it (rows
    // that hold no CVC); from then on no statement runs at all.
    await cvcs.put(scope, tokenId(), CVC);
    const before = await dumpTables(db);
    const token = tokenId();
    await cvcs.put(scope, token, CVC);
    const envelope = Buffer.from((await h.raw()).get(keyName(scope, token)) ?? []);
    expect(envelope.length).toBeGreaterThan(0);
    const during = await dumpTables(db);
    expect(during).toEqual(before);
    for (const text of during.values()) {
      expect(text).not.toContain(envelope.toString("hex"));
      expect(text).not.toContain(token);
    }
    expect((await cvcs.take(scope, token))?.revealDigits()).toBe(CVC);
    expect(await dumpTables(db)).toEqual(before);

    const { rows } = await db.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()`,
    );
    expect(rows.length).toBeGreaterThan(0);
    expect(
      rows
        .map((r) => r.column_name)
        .filter((c) => /(^|_)(cvc|cvv2?|cvn|cid|security_code)(_|$)/i.test(c)),
    ).toEqual([]);
  });
}

for (const driver of DRIVERS) {
  describe(`CvcStore with the vault's key ring on ${driver.name}`, () => {
    let vault: TestVault;
    beforeAll(async () => {
      vault = await startTestVault(driver);
    });
    afterAll(async () => {
      await vault?.close();
    });
    for (const adapter of STORE_ADAPTERS) {
      adapter.describe(`on ${adapter.name}`, () => cvcSuite(adapter, () => vault));
    }
  });
}

describeRedis("CvcStore on two vault nodes sharing Redis", () => {
  const driver = DRIVERS[0];
  const prefix = testPrefix();
  const client = rawClient();
  let vault: TestVault;
  let nodeA: RedisEphemeralStore;
  let nodeB: RedisEphemeralStore;
  beforeAll(async () => {
    if (driver === undefined) throw new Error("no store driver");
    vault = await startTestVault(driver);
    nodeA = await RedisEphemeralStore.connect({ url: REDIS_URL, prefix });
    nodeB = await RedisEphemeralStore.connect({ url: REDIS_URL, prefix });
  });
  afterAll(async () => {
    await nodeA?.close();
    await nodeB?.close();
    await removeKeys(client, prefix);
    await client.quit();
    await vault?.close();
  });

  it("lets a CVC put on one node be taken on the other, exactly once", async () => {
    const scope: CvcScope = { tenantId: vault.tenantId, environment: "live" };
    const a = new CvcStore(nodeA, vault.core.keys);
    const b = new CvcStore(nodeB, vault.core.keys);
    const tokens = Array.from({ length: 10 }, tokenId);
    for (const token of tokens) await a.put(scope, token, CVC);
    for (const token of tokens) {
      const [fromA, fromB] = await Promise.all([a.take(scope, token), b.take(scope, token)]);
      expect([fromA, fromB].filter((c) => c !== undefined)).toHaveLength(1);
      expect((fromA ?? fromB)?.revealDigits()).toBe(CVC);
    }
  });

  it("fails fast with EphemeralStoreUnavailableError when Redis is gone, CVC not in it", async () => {
    const relay = await redisRelay();
    const store = await RedisEphemeralStore.connect({ url: relay.url, prefix });
    await relay.cut();
    const cvcs = new CvcStore(store, vault.core.keys);
    const scope: CvcScope = { tenantId: vault.tenantId, environment: "live" };
    const started = performance.now();
    const err = await cvcs.put(scope, tokenId(), CID).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(err).toBeInstanceOf(EphemeralStoreUnavailableError);
    expect(String((err as Error).message)).not.toContain(CID);
    await expect(cvcs.take(scope, tokenId())).rejects.toThrow(EphemeralStoreUnavailableError);
    await store.close();
  });
});
