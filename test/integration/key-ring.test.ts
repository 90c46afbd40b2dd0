import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { DecryptionError } from "../../src/crypto/decryption-error.js";
import type { Purpose } from "../../src/crypto/envelope.js";
import { openEnvelope, sealEnvelope } from "../../src/crypto/envelope.js";
import type {
  Environment,
  KekDescription,
  KeyContext,
  KeyManager,
  WrappedKey,
} from "../../src/keys/key-manager.js";
import { kekOf } from "../../src/keys/key-manager.js";
import type { DataKey, KeyPolicy, KeySlot } from "../../src/keys/key-ring.js";
import { ACTIVE_RECHECK_MS, KeyRing, SYSTEM_KEY_OWNER } from "../../src/keys/key-ring.js";
import { LocalKeyManager } from "../../src/keys/local-key-manager.js";
import { AuditTrail } from "../../src/services/audit/audit-trail.js";
import type { Clock } from "../../src/services/clock.js";
import type { DataKeyRow } from "../../src/store/data-keys-repo.js";
import type { Database } from "../../src/store/database.js";
import { migrate } from "../../src/store/migrate.js";
import type { TestDatabase } from "../support/databases.js";
import { DRIVERS } from "../support/databases.js";

const DAY_MS = 86_400_000;

/** A clock the test moves by hand (the KeyRing reads cryptoperiods from it). */
class ManualClock implements Clock {
  constructor(private ms: number) {}
  now(): Date {
    return new Date(this.ms);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

/**
 * Instrumentation, not a mock: every call goes to the real LocalKeyManager; unwraps are counted
 * per DEK id, so the tests can see how often the KEK backend is reached.
 */
class CountingKeyManager implements KeyManager {
  readonly unwraps = new Map<string, number>();
  wraps = 0;
  constructor(private readonly inner: KeyManager) {}
  get kind() {
    return this.inner.kind;
  }
  get totalUnwraps(): number {
    return [...this.unwraps.values()].reduce((a, b) => a + b, 0);
  }
  wrapKey(key: Uint8Array, context: KeyContext): Promise<WrappedKey> {
    this.wraps += 1;
    return this.inner.wrapKey(key, context);
  }
  unwrapKey(wrapped: WrappedKey, context: KeyContext): Promise<Buffer> {
    this.unwraps.set(context.dekId, (this.unwraps.get(context.dekId) ?? 0) + 1);
    return this.inner.unwrapKey(wrapped, context);
  }
  rewrapKey(wrapped: WrappedKey, context: KeyContext): Promise<WrappedKey> {
    return this.inner.rewrapKey(wrapped, context);
  }
  rotateKek(environment: Environment): Promise<KekDescription> {
    return this.inner.rotateKek(environment);
  }
  describe(): readonly KekDescription[] {
    return this.inner.describe();
  }
  checkHealth(): Promise<void> {
    return this.inner.checkHealth();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Short cryptoperiods and a tiny use budget, so the tests can cross them. */
const POLICY: KeyPolicy = {
  cryptoperiodMs: {
    pan: 10 * DAY_MS,
    sad: 3 * DAY_MS,
    fingerprint: 30 * DAY_MS,
    audit: 365 * DAY_MS,
  },
  maxUses: { pan: 5, sad: 5 },
  reserveBlock: 2,
};

/** Policy without a use limit, for the cache tests (many uses of one key). */
const ROOMY: KeyPolicy = {
  cryptoperiodMs: { pan: 10 * DAY_MS, audit: 365 * DAY_MS },
  maxUses: { pan: 1_000_000 },
  reserveBlock: 64,
};

let ownerCount = 0;
function newOwner(): string {
  ownerCount += 1;
  return `ten_keyring${ownerCount}x${Date.now().toString(36)}`;
}

const PAN_CONTEXT = (tenantId: string, objectId: string) =>
  ({ tenantId, objectId, purpose: "pan" }) as const;

for (const driver of DRIVERS) {
  describe(`KeyRing on ${driver.name}`, () => {
    let database: TestDatabase;
    let db: Database;
    let dir: string;
    let local: LocalKeyManager;
    let counting: CountingKeyManager;
    let clock: ManualClock;
    const rings: KeyRing[] = [];

    /** A ring on the shared store and KEK, as core.ts wires one (audit events with every key). */
    function newRing(
      options: { cacheTtlMs?: number; releaseGraceMs?: number; policy?: KeyPolicy } = {},
    ): KeyRing {
      let audit: AuditTrail | undefined;
      const ring = new KeyRing(db, counting, clock, {
        cacheTtlMs: options.cacheTtlMs ?? 60_000,
        ...(options.releaseGraceMs === undefined ? {} : { releaseGraceMs: options.releaseGraceMs }),
        policy: options.policy ?? POLICY,
        auditCreation: (key) => (audit as AuditTrail).keyCreated(key),
      });
      audit = new AuditTrail(ring, clock);
      rings.push(ring);
      return ring;
    }

    async function rowOf(id: string): Promise<DataKeyRow> {
      const { rows } = await db.query<DataKeyRow>(
        `SELECT id, owner, purpose, environment, epoch, version, algorithm, wrapped, kek_id,
                kek_version, created_at, encrypt_until, max_uses::float8 AS max_uses,
                uses_reserved::float8 AS uses_reserved, retired_at, destroyed_at
           FROM data_keys WHERE id = $1`,
        [id],
      );
      const row = rows[0];
      if (row === undefined) throw new Error(`no key ${id}`);
      return row;
    }

    async function slotRows(slot: Required<KeySlot>): Promise<DataKeyRow[]> {
      const { rows } = await db.query<{ id: string }>(
        `SELECT id FROM data_keys WHERE owner = $1 AND purpose = $2 AND environment = $3 AND epoch = $4
          ORDER BY version`,
        [slot.owner, slot.purpose, slot.environment, slot.epoch],
      );
      return Promise.all(rows.map((r) => rowOf(r.id)));
    }

    beforeAll(async () => {
      database = await driver.open();
      db = database.db;
      await migrate(db);
      dir = await mkdtemp(join(tmpdir(), "payvault-keyring-"));
      local = await LocalKeyManager.open(join(dir, "kek.json"), { create: true });
      counting = new CountingKeyManager(local);
      clock = new ManualClock(Date.UTC(2030, 0, 15, 12));
    });
    afterEach(() => {
      for (const ring of rings.splice(0)) ring.close();
    });
    afterAll(async () => {
      await local?.close();
      await database?.drop();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    });

    it("key records carry environment, epoch, version, algorithm, cryptoperiod end and use limit", async () => {
      const ring = newRing();
      const owner = newOwner();
      const created = clock.now().getTime();
      const pan = await ring.activeKey({
        owner,
        purpose: "pan",
        environment: "test",
        epoch: "2030-02",
      });
      const sad = await ring.activeKey({ owner, purpose: "sad", environment: "live" });
      const fingerprint = await ring.activeKey({ owner, purpose: "fingerprint" });

      const expectations: [DataKey, Purpose, Environment, string, string, number | null][] = [
        [pan, "pan", "test", "2030-02", "AES-256-GCM", 5],
        [sad, "sad", "live", "", "AES-256-GCM", 5],
        [fingerprint, "fingerprint", "live", "", "HMAC-SHA256", null],
      ];
      for (const [key, purpose, environment, epoch, algorithm, maxUses] of expectations) {
        const row = await rowOf(key.id);
        expect(key.id).toMatch(/^dek_/);
        expect(key.material).toHaveLength(32);
        expect(row).toMatchObject({
          owner,
          purpose,
          environment,
          epoch,
          version: 1,
          algorithm,
          kek_id: kekOf(local, environment).kekId,
          kek_version: kekOf(local, environment).currentVersion,
          max_uses: maxUses,
          uses_reserved: 0,
          retired_at: null,
          destroyed_at: null,
        });
        expect(row.created_at.getTime()).toBe(created);
        expect(row.encrypt_until?.getTime()).toBe(
          created + (POLICY.cryptoperiodMs[purpose] as number),
        );
        // The key is stored only wrapped: the raw bytes are nowhere in the record.
        expect(row.wrapped).not.toBeNull();
        expect((row.wrapped as Buffer).includes(key.material)).toBe(false);
        // Its creation is in the audit trail.
        const { rows } = await db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM audit_events WHERE action = 'key.create' AND object_id = $1",
          [key.id],
        );
        expect(rows[0]?.n).toBe(1);
      }
    });

    it("past its time cryptoperiod a key only decrypts and version 2 takes over", async () => {
      const ring = newRing();
      const owner = newOwner();
      const slot = { owner, purpose: "pan", environment: "live", epoch: "persistent" } as const;
      const v1 = await ring.activeKey(slot, undefined, 1);
      expect(v1.version).toBe(1);
      const envelope = sealEnvelope({
        dekId: v1.id,
        key: v1.material,
        plaintext: Buffer.from("card payload"),
        context: PAN_CONTEXT(owner, "tok_1"),
      });
      // Still inside the period: the same key.
      clock.advance(10 * DAY_MS - 1);
      expect((await ring.activeKey(slot, undefined, 1)).id).toBe(v1.id);
      clock.advance(2);
      const v2 = await ring.activeKey(slot, undefined, 1);
      expect(v2.version).toBe(2);
      expect(v2.id).not.toBe(v1.id);
      expect(
        Buffer.compare(v2.material, (await ring.keyById(v1.id, owner, "pan")).material),
      ).not.toBe(0);
      const [row1, row2] = await slotRows(slot);
      expect(row1?.retired_at?.getTime()).toBe(clock.now().getTime());
      expect(row1?.encrypt_until?.getTime()).toBeLessThanOrEqual(clock.now().getTime());
      expect(row2).toMatchObject({ version: 2, retired_at: null });
      expect(row2?.encrypt_until?.getTime()).toBe(clock.now().getTime() + 10 * DAY_MS);
      // Without uses too (a plain activeKey), the new version is the current one.
      expect((await ring.activeKey(slot)).id).toBe(v2.id);
      // The retired version still decrypts what it encrypted, looked up by id (a fresh ring too).
      const old = await ring.keyById(v1.id, owner, "pan");
      expect(openEnvelope(envelope, old.material, PAN_CONTEXT(owner, "tok_1")).toString()).toBe(
        "card payload",
      );
      const other = await newRing().keyById(v1.id, owner, "pan");
      expect(openEnvelope(envelope, other.material, PAN_CONTEXT(owner, "tok_1")).toString()).toBe(
        "card payload",
      );
      // A ring that had never seen the slot also starts on version 2.
      expect((await newRing().activeKey(slot, undefined, 1)).id).toBe(v2.id);
    });

    it("past its use count (5, reserved 2 at a time) the 6th use gets version 2", async () => {
      const ring = newRing();
      const owner = newOwner();
      const slot = { owner, purpose: "pan", environment: "live", epoch: "2030-03" } as const;
      const versions: number[] = [];
      for (let i = 0; i < 5; i++) versions.push((await ring.activeKey(slot, undefined, 1)).version);
      expect(versions).toEqual([1, 1, 1, 1, 1]);
      let [row1] = await slotRows(slot);
      expect(row1).toMatchObject({ uses_reserved: 5, max_uses: 5, retired_at: null });
      const sixth = await ring.activeKey(slot, undefined, 1);
      expect(sixth.version).toBe(2);
      const rows = await slotRows(slot);
      [row1] = rows;
      expect(rows).toHaveLength(2);
      expect(row1?.uses_reserved).toBe(5);
      expect(row1?.retired_at).not.toBeNull();
      expect(rows[1]).toMatchObject({
        version: 2,
        uses_reserved: 2,
        max_uses: 5,
        retired_at: null,
      });
      // A block bigger than the limit is refused rather than over-using a key.
      await expect(ring.activeKey(slot, undefined, 6)).rejects.toThrow(RangeError);
    });

    it("a recheck that finds the same key keeps this node's reserved uses (no block burnt every 30 s)", async () => {
      const ring = newRing({ policy: ROOMY });
      const owner = newOwner();
      const slot = { owner, purpose: "pan", environment: "live", epoch: "2030-04" } as const;
      await ring.activeKey(slot, undefined, 1);
      expect((await slotRows(slot))[0]?.uses_reserved).toBe(64);
      const realNow = Date.now;
      const later = realNow() + ACTIVE_RECHECK_MS + 1_000;
      vi.spyOn(Date, "now").mockImplementation(() => later);
      try {
        // Past the recheck: the ring reads the slot again, finds the same key, and spends from
        // the block it already holds.
        for (let i = 0; i < 10; i++) await ring.activeKey(slot, undefined, 1);
      } finally {
        vi.restoreAllMocks();
      }
      expect((await slotRows(slot))[0]?.uses_reserved).toBe(64);
    });

    it("two rings on one store, concurrently, never use a key more than max_uses times", async () => {
      const a = newRing();
      const b = newRing();
      const owner = newOwner();
      const slot = { owner, purpose: "sad", environment: "live", epoch: "" } as const;
      const calls = 60;
      const keys = await Promise.all(
        Array.from({ length: calls }, (_, i) =>
          (i % 2 === 0 ? a : b).activeKey(slot, undefined, 1),
        ),
      );
      const usesById = new Map<string, number>();
      for (const key of keys) usesById.set(key.id, (usesById.get(key.id) ?? 0) + 1);
      for (const [id, uses] of usesById) {
        expect(uses, `key ${id} handed out ${uses} times`).toBeLessThanOrEqual(5);
      }
      const rows = await slotRows(slot);
      expect(rows.length).toBeGreaterThanOrEqual(Math.ceil(calls / 5));
      expect(rows.map((r) => r.version)).toEqual(rows.map((_, i) => i + 1));
      for (const row of rows) {
        expect(row.uses_reserved).toBeLessThanOrEqual(row.max_uses as number);
        // Every use handed out was reserved in the store.
        expect(usesById.get(row.id) ?? 0).toBeLessThanOrEqual(row.uses_reserved);
      }
      // Only the newest version can still encrypt.
      expect(rows.filter((r) => r.retired_at === null).map((r) => r.version)).toEqual([
        rows.length,
      ]);
    });

    it("the cache keeps the KEK backend off the hot path: one unwrap per key", async () => {
      const writer = newRing({ policy: ROOMY });
      const owner = newOwner();
      const panSlot = { owner, purpose: "pan", environment: "live", epoch: "persistent" } as const;
      const existing = await writer.activeKey({ owner, purpose: "pan", epoch: "2030-04" });
      const before = new Map(counting.unwraps);
      const wrapsBefore = counting.wraps;
      const ring = newRing({ policy: ROOMY });
      let panId = "";
      for (let i = 0; i < 200; i++) {
        panId = (await ring.activeKey(panSlot, undefined, 1)).id;
        await ring.keyById(panId, owner, "pan");
        await ring.activeKey({ owner, purpose: "fingerprint" });
      }
      // Concurrent first loads of a key made elsewhere share one unwrap.
      const loaded = await Promise.all(
        Array.from({ length: 50 }, () => ring.keyById(existing.id, owner, "pan")),
      );
      expect(new Set(loaded.map((k) => k.id))).toEqual(new Set([existing.id]));
      for (let i = 0; i < 50; i++) await ring.keyById(existing.id, owner, "pan");
      const fingerprintId = (await ring.activeKey({ owner, purpose: "fingerprint" })).id;
      const delta = (id: string) => (counting.unwraps.get(id) ?? 0) - (before.get(id) ?? 0);
      expect(delta(panId)).toBe(1);
      expect(delta(fingerprintId)).toBe(1);
      expect(delta(existing.id)).toBe(1);
      // Two keys created (pan, fingerprint): nothing else went to the backend.
      expect(counting.wraps - wrapsBefore).toBe(2);
    });

    it("evicted keys stay intact for the release grace, are zeroed after it, and reload on the next use; the vault's own keys stay", async () => {
      const ring = newRing({ cacheTtlMs: 100, releaseGraceMs: 1_000, policy: ROOMY });
      const owner = newOwner();
      const key = await ring.activeKey({ owner, purpose: "pan", epoch: "persistent" });
      const material = key.material;
      const copy = Buffer.from(material);
      const audit = await ring.activeKey(SYSTEM_KEY_OWNER, "audit");
      const auditCopy = Buffer.from(audit.material);
      expect(copy.equals(Buffer.alloc(32))).toBe(false);
      const unwrapsBefore = counting.unwraps.get(key.id) ?? 0;
      // The sweeper runs every min(ttl, grace, 60 s) = 100 ms: by 400 ms the key is evicted, so
      // the next use unwraps it again; the copy a caller still holds is untouched.
      await new Promise((resolve) => setTimeout(resolve, 400));
      const again = await ring.keyById(key.id, owner, "pan");
      expect(counting.unwraps.get(key.id), "evicted: the next use unwraps again").toBe(
        unwrapsBefore + 1,
      );
      expect(again.material).not.toBe(material);
      expect(again.material.equals(copy)).toBe(true);
      expect(material.equals(copy), "a handed-out key is not zeroed within the grace").toBe(true);
      const deadline = Date.now() + 4_000;
      while (!material.equals(Buffer.alloc(32)) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(
        material.equals(Buffer.alloc(32)),
        "evicted key material is zeroed after the grace",
      ).toBe(true);
      expect(audit.material.equals(auditCopy), "the audit key stays resident").toBe(true);
    });

    it("forget() (destruction) zeroes a key at once, and a zeroed key seals nothing", async () => {
      const ring = newRing({ policy: ROOMY });
      const owner = newOwner();
      const key = await ring.activeKey({ owner, purpose: "pan", epoch: "persistent" });
      ring.forget(key.id);
      expect(key.material.equals(Buffer.alloc(32))).toBe(true);
      expect(() =>
        sealEnvelope({
          dekId: key.id,
          key: key.material,
          plaintext: Buffer.from("card payload"),
          context: PAN_CONTEXT(owner, "tok_1"),
        }),
      ).toThrow();
    });

    it("sad keys are DEKs of their own: a PAN envelope does not open with the sad key", async () => {
      const ring = newRing();
      const owner = newOwner();
      const pan = await ring.activeKey({ owner, purpose: "pan", epoch: "persistent" });
      const sad = await ring.activeKey({ owner, purpose: "sad" });
      expect(sad.id).not.toBe(pan.id);
      expect(sad.purpose).toBe("sad");
      expect(sad.material.equals(pan.material)).toBe(false);
      const envelope = sealEnvelope({
        dekId: pan.id,
        key: pan.material,
        plaintext: Buffer.from("pan payload"),
        context: PAN_CONTEXT(owner, "tok_2"),
      });
      expect(() => openEnvelope(envelope, sad.material, PAN_CONTEXT(owner, "tok_2"))).toThrow(
        DecryptionError,
      );
      expect(() =>
        openEnvelope(envelope, sad.material, {
          tenantId: owner,
          objectId: "tok_2",
          purpose: "sad",
        }),
      ).toThrow(DecryptionError);
      // The ring never hands out a pan key for sad use or the reverse, even by id.
      await expect(ring.keyById(pan.id, owner, "sad")).rejects.toThrow(DecryptionError);
      await expect(ring.keyById(sad.id, owner, "pan")).rejects.toThrow(DecryptionError);
      const [panRow, sadRow] = [await rowOf(pan.id), await rowOf(sad.id)];
      expect(panRow.purpose).toBe("pan");
      expect(sadRow.purpose).toBe("sad");
      expect(sadRow.algorithm).toBe("AES-256-GCM");
    });

    it("live and test never share a DEK, and their DEKs are wrapped under different KEKs", async () => {
      const ring = newRing();
      const owner = newOwner();
      for (const [purpose, epoch] of [
        ["pan", "persistent"],
        ["pan", "2030-05"],
        ["sad", ""],
        ["fingerprint", ""],
      ] as const) {
        const live = await ring.activeKey({ owner, purpose, environment: "live", epoch });
        const test = await ring.activeKey({ owner, purpose, environment: "test", epoch });
        expect(live.id).not.toBe(test.id);
        expect(live.environment).toBe("live");
        expect(test.environment).toBe("test");
        expect(live.material.equals(test.material)).toBe(false);
        const [liveRow, testRow] = [await rowOf(live.id), await rowOf(test.id)];
        expect(liveRow.kek_id).toBe(kekOf(local, "live").kekId);
        expect(testRow.kek_id).toBe(kekOf(local, "test").kekId);
        expect(liveRow.kek_id).not.toBe(testRow.kek_id);
      }
      // Across the whole store: no DEK is wrapped under the other environment's KEK.
      const { rows } = await db.query<{ environment: Environment; kek_id: string }>(
        "SELECT DISTINCT environment, kek_id FROM data_keys",
      );
      for (const row of rows) expect(row.kek_id).toBe(kekOf(local, row.environment).kekId);
    });
  });
}
