import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Core } from "../../src/app/core.js";
import { openCore } from "../../src/app/core.js";
import { loadConfig } from "../../src/config/config.js";
import { DecryptionError } from "../../src/crypto/decryption-error.js";
import { openEnvelope } from "../../src/crypto/envelope.js";
import { buildApp } from "../../src/http/app.js";
import { KeyDestroyedError, KeyRing } from "../../src/keys/key-ring.js";
import { createLogger } from "../../src/log/logger.js";
import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import type { Clock } from "../../src/services/clock.js";
import { runMaintenance } from "../../src/services/maintenance.js";
import type { RetentionReport } from "../../src/services/retention.js";
import { decodeCardPayload } from "../../src/services/tokens/card-payload.js";
import {
  auditRows,
  auth,
  CARDS,
  cardOf,
  countRows,
  expectFieldError,
  expectProblem,
  tokenExists,
  tokenize,
} from "../support/api-fixtures.js";
import type { CliResult } from "../support/cli-runner.js";
import { runCli } from "../support/cli-runner.js";
import { cliStoreEnv } from "../support/cli-schema.js";
import type { Driver } from "../support/databases.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { LogCapture, startTestVault } from "../support/vault-harness.js";

/** The CLI records the OS account that ran it ($USER is not trusted). */
const CLI_ACTOR = `cli:${userInfo().username}`;

/**
 * Retention and secure deletion (issue 3, point 5; PCI DSS 3.2.1, 3.7.5): the retention policy
 * (default, per tenant, per token, persistent), epoch-scoped PAN keys, expiry before purge, the
 * purge and crypto-shredding (core, maintenance job and CLI), and the retention report.
 */

const DAY = 86_400_000;
const HOUR = 3_600_000;
const SLOW = 180_000;

/** A clock the test moves by hand. */
class TestClock implements Clock {
  constructor(private t: number) {}
  now(): Date {
    return new Date(this.t);
  }
  set(at: Date | number): void {
    this.t = typeof at === "number" ? at : at.getTime();
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

// A year ahead, so every test card (expiring December, three years on) stays valid throughout.
const Y = new Date().getUTCFullYear() + 1;
const at = (month: number, day: number, hour = 0) => new Date(Date.UTC(Y, month - 1, day, hour));
/** 10 January: the default 30 days end on 9 February (epoch Y-02), 7 days on 17 January (Y-01). */
const T0 = at(1, 10);
const epoch = (month: number) => `${Y}-${String(month).padStart(2, "0")}`;

const ALL_SCOPES = ["tokens:write", "tokens:read", "tokens:reveal", "tokens:delete"] as const;

interface StoredToken {
  id: string;
  dek_id: string;
  ciphertext: Buffer;
  expires_at: Date | null;
  persistent: boolean;
  epoch: string;
}

async function storedTokens(core: Core, tenantId: string): Promise<StoredToken[]> {
  const { rows } = await core.db.query<StoredToken>(
    `SELECT t.id, t.dek_id, t.ciphertext, t.expires_at, t.persistent, k.epoch
       FROM tokens t JOIN data_keys k ON k.id = t.dek_id WHERE t.tenant_id = $1`,
    [tenantId],
  );
  return rows.map((r) => ({ ...r, ciphertext: Buffer.from(r.ciphertext) }));
}

async function storedToken(core: Core, tenantId: string, id: string): Promise<StoredToken> {
  const row = (await storedTokens(core, tenantId)).find((t) => t.id === id);
  if (row === undefined) throw new Error(`no stored token ${id}`);
  return row;
}

interface KeyRow {
  id: string;
  owner: string;
  purpose: string;
  epoch: string;
  wrapped: Buffer | null;
  destroyed_at: Date | null;
}

async function dataKey(core: Core, id: string): Promise<KeyRow> {
  const { rows } = await core.db.query<KeyRow>(
    "SELECT id, owner, purpose, epoch, wrapped, destroyed_at FROM data_keys WHERE id = $1",
    [id],
  );
  if (rows[0] === undefined) throw new Error(`no data key ${id}`);
  return rows[0];
}

/** Decrypts a copied token ciphertext the way reveal does: the DEK by id, then the envelope. */
async function decryptCopy(core: Core, tenantId: string, row: StoredToken): Promise<string> {
  const key = await core.keys.keyById(row.dek_id, tenantId, "pan");
  const plaintext = openEnvelope(row.ciphertext, key.material, {
    tenantId,
    objectId: row.id,
    purpose: "pan",
  });
  return decodeCardPayload(plaintext).number;
}

async function rejection(attempt: Promise<unknown>): Promise<unknown> {
  return attempt.then(
    () => undefined,
    (err: unknown) => err,
  );
}

/** A KeyRing with an empty cache on the same store and KEK: what a restarted node would see. */
function freshRing(core: Core, clock: Clock): KeyRing {
  return new KeyRing(core.db, core.keyManager, clock, {
    cacheTtlMs: 60_000,
    auditCreation: () => Promise.reject(new Error("this ring must not create keys")),
  });
}

function post(vault: TestVault, key: string, body: Record<string, unknown>) {
  return vault.app.inject({ method: "POST", url: "/v1/tokens", headers: auth(key), payload: body });
}

function reveal(vault: TestVault, key: string, id: string) {
  return vault.app.inject({
    method: "POST",
    url: `/v1/tokens/${id}/reveal`,
    headers: auth(key),
    payload: { purpose: "retention test" },
  });
}

async function revealedNumber(vault: TestVault, key: string, id: string): Promise<string> {
  const res = await reveal(vault, key, id);
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { card: { number: string } }).card.number;
}

for (const driver of DRIVERS) {
  describe(`retention policy on ${driver.name}`, () => {
    const clock = new TestClock(T0.getTime());
    let vault: TestVault;

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock });
    });
    afterAll(async () => vault?.close());

    it("defaults to 30 days; persistent tokens never expire; persistent with expires_at is refused", async () => {
      clock.set(T0);
      const { tenantId, key } = await vault.newTenant([...ALL_SCOPES]);
      const plain = await tokenize(vault, key, { card: cardOf(CARDS.visa) });
      expect(plain.expires_at).toBe(new Date(T0.getTime() + 30 * DAY).toISOString());
      expect(plain.persistent).toBe(false);
      expect((await storedToken(vault.core, tenantId, plain.id)).expires_at?.getTime()).toBe(
        T0.getTime() + 30 * DAY,
      );

      const stored = await tokenize(vault, key, {
        card: cardOf(CARDS.mastercard),
        persistent: true,
      });
      expect(stored.expires_at).toBeNull();
      expect(stored.persistent).toBe(true);
      const row = await storedToken(vault.core, tenantId, stored.id);
      expect(row.expires_at).toBeNull();
      expect(row.persistent).toBe(true);
      // GET shows the same retention.
      const got = await vault.app.inject({
        method: "GET",
        url: `/v1/tokens/${stored.id}`,
        headers: auth(key),
      });
      expect(got.json()).toMatchObject({ expires_at: null, persistent: true });

      const before = await countRows(
        vault,
        "SELECT count(*) AS n FROM tokens WHERE tenant_id = $1",
        [tenantId],
      );
      const conflict = await post(vault, key, {
        card: cardOf(CARDS.amex),
        persistent: true,
        expires_at: at(3, 1).toISOString(),
      });
      expectFieldError(conflict, "persistent", "RETENTION_CONFLICT");
      expect(
        await countRows(vault, "SELECT count(*) AS n FROM tokens WHERE tenant_id = $1", [tenantId]),
      ).toBe(before);
    });

    it("applies the tenant's retention policy (audited) to new tokens; a token's own expires_at wins", async () => {
      clock.set(T0);
      const { tenantId, key } = await vault.newTenant([...ALL_SCOPES]);
      const earlier = await tokenize(vault, key, { card: cardOf(CARDS.visa) });

      const updated = await vault.core.tenants.setRetention(tenantId, 7, "test:operator");
      expect(updated.retentionDays).toBe(7);
      const events = (await auditRows(vault, "tenant.update")).filter(
        (e) => e.tenant_id === tenantId,
      );
      expect(events).toEqual([
        expect.objectContaining({
          actor: "test:operator",
          object_id: tenantId,
          outcome: "success",
          details: { retention_days: 7 },
        }),
      ]);

      const later = await tokenize(vault, key, { card: cardOf(CARDS.mastercard) });
      expect(later.expires_at).toBe(new Date(T0.getTime() + 7 * DAY).toISOString());
      // The policy is not retroactive: the earlier token keeps its 30 days.
      expect((await storedToken(vault.core, tenantId, earlier.id)).expires_at?.toISOString()).toBe(
        new Date(T0.getTime() + 30 * DAY).toISOString(),
      );
      const explicit = at(5, 20, 12).toISOString();
      const own = await tokenize(vault, key, {
        card: cardOf(CARDS.amex),
        expires_at: explicit,
      });
      expect(own.expires_at).toBe(explicit);
      // persistent still beats the policy.
      const stored = await tokenize(vault, key, {
        card: cardOf(CARDS.discover),
        persistent: true,
      });
      expect(stored.expires_at).toBeNull();

      // Other tenants keep the default.
      const other = await vault.newTenant(["tokens:write"]);
      const theirs = await tokenize(vault, other.key, { card: cardOf(CARDS.visa) });
      expect(theirs.expires_at).toBe(new Date(T0.getTime() + 30 * DAY).toISOString());

      await expect(vault.core.tenants.setRetention(tenantId, 0, "test")).rejects.toThrow(
        RangeError,
      );
      expect((await vault.core.tenants.get(tenantId))?.retentionDays).toBe(7);
    });

    it("gives each retention month its own PAN DEK (epoch YYYY-MM); persistent tokens share the 'persistent' key", async () => {
      clock.set(T0);
      const a = await vault.newTenant([...ALL_SCOPES]);
      const feb1 = await tokenize(vault, a.key, { card: cardOf(CARDS.visa) });
      const feb2 = await tokenize(vault, a.key, { card: cardOf(CARDS.visa2) });
      const jun = await tokenize(vault, a.key, {
        card: cardOf(CARDS.visa3),
        expires_at: at(6, 15).toISOString(),
      });
      const p1 = await tokenize(vault, a.key, { card: cardOf(CARDS.amex), persistent: true });
      const p2 = await tokenize(vault, a.key, { card: cardOf(CARDS.amex2), persistent: true });
      await vault.core.tenants.setRetention(a.tenantId, 7, "test");
      const jan = await tokenize(vault, a.key, { card: cardOf(CARDS.discover) });
      // Another tenant's February token: another key, even in the same epoch.
      const b = await vault.newTenant(["tokens:write"]);
      const bFeb = await tokenize(vault, b.key, { card: cardOf(CARDS.visa) });

      const rows = new Map(
        (await storedTokens(vault.core, a.tenantId)).map((row) => [row.id, row]),
      );
      const of = (id: string) => rows.get(id) as StoredToken;
      expect(of(feb1.id).epoch).toBe(epoch(2));
      expect(of(feb2.id).epoch).toBe(epoch(2));
      expect(of(jun.id).epoch).toBe(epoch(6));
      expect(of(jan.id).epoch).toBe(epoch(1));
      expect(of(p1.id).epoch).toBe("persistent");
      expect(of(p2.id).epoch).toBe("persistent");

      expect(of(feb2.id).dek_id).toBe(of(feb1.id).dek_id);
      expect(of(p2.id).dek_id).toBe(of(p1.id).dek_id);
      const deks = [feb1, jun, jan, p1].map((t) => of(t.id).dek_id);
      expect(new Set(deks).size).toBe(4);
      const bRow = await storedToken(vault.core, b.tenantId, bFeb.id);
      expect(bRow.epoch).toBe(epoch(2));
      expect(deks).not.toContain(bRow.dek_id);

      for (const dek of deks) {
        const key = await dataKey(vault.core, dek);
        expect(key).toMatchObject({ owner: a.tenantId, purpose: "pan", destroyed_at: null });
      }
      // Each still decrypts its own tokens.
      expect(await revealedNumber(vault, a.key, feb2.id)).toBe(CARDS.visa2);
      expect(await revealedNumber(vault, a.key, p2.id)).toBe(CARDS.amex2);
      expect(await revealedNumber(vault, a.key, jan.id)).toBe(CARDS.discover);
    });

    it("hides a token past its retention (404 on GET, reveal, delete) even before the purge", async () => {
      clock.set(T0);
      const { tenantId, key } = await vault.newTenant([...ALL_SCOPES]);
      const doomed = await tokenize(vault, key, {
        card: cardOf(CARDS.visa),
        expires_at: new Date(T0.getTime() + 2 * HOUR).toISOString(),
      });
      const kept = await tokenize(vault, key, { card: cardOf(CARDS.mastercard) });
      clock.advance(2 * HOUR - 1);
      expect(await revealedNumber(vault, key, doomed.id)).toBe(CARDS.visa);

      clock.advance(1); // exactly at expires_at: past retention
      const get = await vault.app.inject({
        method: "GET",
        url: `/v1/tokens/${doomed.id}`,
        headers: auth(key),
      });
      expectProblem(get, "TOKEN_NOT_FOUND");
      expectProblem(await reveal(vault, key, doomed.id), "TOKEN_NOT_FOUND");
      const del = await vault.app.inject({
        method: "DELETE",
        url: `/v1/tokens/${doomed.id}`,
        headers: auth(key),
      });
      expectProblem(del, "TOKEN_NOT_FOUND");
      // Not purged yet: the row is still in the store, only unreachable.
      expect(await tokenExists(vault, tenantId, doomed.id)).toBe(true);
      // The other token is untouched.
      expect(await revealedNumber(vault, key, kept.id)).toBe(CARDS.mastercard);
    });

    it("tokenizing a card whose token expired (not purged yet) gives a new token and purges the old one", async () => {
      clock.set(T0);
      const { tenantId, key } = await vault.newTenant([...ALL_SCOPES]);
      const first = await tokenize(vault, key, { card: cardOf(CARDS.jcb) });
      // Before expiry the same card is a duplicate.
      const again = await tokenize(vault, key, { card: cardOf(CARDS.jcb) });
      expect(again).toMatchObject({ id: first.id, duplicate: true });

      clock.set(T0.getTime() + 31 * DAY);
      const res = await post(vault, key, { card: cardOf(CARDS.jcb) });
      expect(res.statusCode, res.body).toBe(201);
      const fresh = res.json() as { id: string; duplicate: boolean; expires_at: string };
      expect(fresh.duplicate).toBe(false);
      expect(fresh.id).not.toBe(first.id);
      expect(fresh.expires_at).toBe(new Date(T0.getTime() + 61 * DAY).toISOString());
      expect(await tokenExists(vault, tenantId, first.id)).toBe(false);
      expect(await revealedNumber(vault, key, fresh.id)).toBe(CARDS.jcb);
      const purges = (await auditRows(vault, "token.purge")).filter(
        (e) => e.object_id === first.id,
      );
      expect(purges).toEqual([
        expect.objectContaining({
          tenant_id: tenantId,
          outcome: "success",
          details: expect.objectContaining({ reason: "retention", count: 1 }),
        }),
      ]);

      // The batch route does the same.
      const second = await tokenize(vault, key, { card: cardOf(CARDS.unionpay19) });
      clock.set(T0.getTime() + 62 * DAY);
      const batch = await vault.app.inject({
        method: "POST",
        url: "/v1/tokens/batch",
        headers: auth(key),
        payload: { cards: [{ card: cardOf(CARDS.unionpay19) }] },
      });
      expect(batch.statusCode, batch.body).toBe(200);
      const [item] = (
        batch.json() as { results: { status: number; duplicate: boolean; token: { id: string } }[] }
      ).results;
      expect(item).toMatchObject({ status: 201, duplicate: false });
      expect(item?.token.id).not.toBe(second.id);
      expect(await tokenExists(vault, tenantId, second.id)).toBe(false);
      expect((await auditRows(vault, "token.purge")).map((e) => e.object_id)).toContain(second.id);
    });

    it("a duplicate card never comes back with another retention than the request asked for", async () => {
      clock.set(T0);
      const { key } = await vault.newTenant([...ALL_SCOPES]);
      // A 30-day token exists; the merchant now stores the card as a credential.
      await tokenize(vault, key, { card: cardOf(CARDS.diners14) });
      const stored = await tokenize(vault, key, {
        card: cardOf(CARDS.diners14),
        persistent: true,
      });
      // Whatever token it gets, it must not be purged in 30 days.
      expect(stored).toMatchObject({ persistent: true, expires_at: null });

      // And a token asked to live until June must not be one that is purged in February.
      await tokenize(vault, key, { card: cardOf(CARDS.mastercard3) });
      const june = at(6, 15).toISOString();
      const longer = await tokenize(vault, key, {
        card: cardOf(CARDS.mastercard3),
        expires_at: june,
      });
      expect(longer.expires_at).toBe(june);
    });
  });

  describe(`purge and crypto-shredding on ${driver.name}`, () => {
    const clock = new TestClock(T0.getTime());
    let vault: TestVault | undefined;
    afterEach(async () => {
      await vault?.close();
      vault = undefined;
    });

    /**
     * A vault at T0 with, in the default tenant: two tokens retained to 9 February (epoch Y-02),
     * one persistent, one retained to 15 June (Y-06). Returns the stored rows.
     */
    async function seeded() {
      clock.set(T0);
      const v = await startTestVault(driver, { clock });
      vault = v;
      const key = await v.newKey(v.tenantId, [...ALL_SCOPES]);
      const feb = [
        await tokenize(v, key, { card: cardOf(CARDS.visa) }),
        await tokenize(v, key, { card: cardOf(CARDS.mastercard) }),
      ];
      const persistent = await tokenize(v, key, { card: cardOf(CARDS.amex), persistent: true });
      const june = await tokenize(v, key, {
        card: cardOf(CARDS.discover),
        expires_at: at(6, 15).toISOString(),
      });
      const rows = await storedTokens(v.core, v.tenantId);
      const row = (id: string) => rows.find((r) => r.id === id) as StoredToken;
      return {
        vault: v,
        key,
        feb: feb.map((t) => row(t.id)),
        persistent: row(persistent.id),
        june: row(june.id),
      };
    }

    it("purges expired tokens and destroys their epoch DEK: the copied ciphertext can no longer be decrypted", async () => {
      const { vault: v, key, feb, persistent, june } = await seeded();
      const tenantId = v.tenantId;
      const febDek = feb[0]?.dek_id as string;
      expect(feb[1]?.dek_id).toBe(febDek);
      expect(feb[0]?.epoch).toBe(epoch(2));

      // The copies an attacker could keep (a backup, WAL, a dead tuple): ciphertext + key id.
      const copies = feb.map((r) => ({ ...r, ciphertext: Buffer.from(r.ciphertext) }));
      // Before the purge they DO decrypt with the key the vault holds.
      expect(await decryptCopy(v.core, tenantId, copies[0] as StoredToken)).toBe(CARDS.visa);
      expect(await decryptCopy(v.core, tenantId, copies[1] as StoredToken)).toBe(CARDS.mastercard);
      const before = freshRing(v.core, clock);
      try {
        expect((await before.keyById(febDek, tenantId, "pan")).material).toHaveLength(32);
      } finally {
        before.close();
      }
      const wrappedBefore = Buffer.from((await dataKey(v.core, febDek)).wrapped as Buffer);

      // Past the retention (9 February) and past the end of the epoch month (1 March).
      clock.set(at(3, 1, 1));
      const result = await v.core.retention.purge("test:purge");
      expect(result.tokensPurged).toBe(2);
      expect(result.keysDestroyed).toEqual([febDek]);

      // The rows are gone.
      for (const copy of copies) expect(await tokenExists(v, tenantId, copy.id)).toBe(false);
      // The DEK is destroyed: no wrapped material left in its row (nor anywhere in data_keys).
      const destroyed = await dataKey(v.core, febDek);
      expect(destroyed.wrapped).toBeNull();
      expect(destroyed.destroyed_at?.toISOString()).toBe(at(3, 1, 1).toISOString());
      expect(
        await countRows(
          v,
          "SELECT count(*) AS n FROM data_keys WHERE id = $1 AND wrapped IS NOT NULL",
          [febDek],
        ),
      ).toBe(0);
      expect(
        await countRows(v, "SELECT count(*) AS n FROM data_keys WHERE wrapped = $1", [
          wrappedBefore,
        ]),
      ).toBe(0);

      // Audited: the purge (per tenant, with the count) and the destruction.
      const purges = (await auditRows(v, "token.purge")).filter((e) => e.tenant_id === tenantId);
      expect(purges).toEqual([
        expect.objectContaining({
          actor: "test:purge",
          outcome: "success",
          details: expect.objectContaining({ reason: "retention", count: 2 }),
        }),
      ]);
      expect(await auditRows(v, "key.destroy")).toEqual([
        expect.objectContaining({
          tenant_id: tenantId,
          actor: "test:purge",
          object_id: febDek,
          outcome: "success",
          details: expect.objectContaining({ purpose: "pan", epoch: epoch(2) }),
        }),
      ]);

      // The copied ciphertext cannot be decrypted any more: not by this node's ring (its cache
      // was zeroed and dropped), not by a fresh one (a restarted node).
      for (const copy of copies) {
        const err = await rejection(decryptCopy(v.core, tenantId, copy));
        expect(err).toBeInstanceOf(KeyDestroyedError);
        expect((err as KeyDestroyedError).keyId).toBe(febDek);
      }
      const after = freshRing(v.core, clock);
      try {
        expect(await rejection(after.keyById(febDek, tenantId, "pan"))).toBeInstanceOf(
          KeyDestroyedError,
        );
      } finally {
        after.close();
      }
      // Nor by the surviving keys of the tenant (the envelope names its own DEK).
      for (const survivor of [persistent, june]) {
        const k = await v.core.keys.keyById(survivor.dek_id, tenantId, "pan");
        expect(() =>
          openEnvelope((copies[0] as StoredToken).ciphertext, k.material, {
            tenantId,
            objectId: (copies[0] as StoredToken).id,
            purpose: "pan",
          }),
        ).toThrow(DecryptionError);
      }

      // Persistent tokens and tokens of an epoch not over survive, with their keys.
      expect(await revealedNumber(v, key, persistent.id)).toBe(CARDS.amex);
      expect(await revealedNumber(v, key, june.id)).toBe(CARDS.discover);
      for (const survivor of [persistent, june]) {
        const k = await dataKey(v.core, survivor.dek_id);
        expect(k.destroyed_at).toBeNull();
        expect(k.wrapped).not.toBeNull();
      }

      // The inventory shows the key destroyed, living nowhere.
      const record = (await v.core.lifecycle.inventory()).keys.find((k) => k.id === febDek);
      expect(record).toMatchObject({ state: "destroyed", location: "nowhere (destroyed)" });

      // A second purge has nothing to do.
      expect(await v.core.retention.purge("test:purge")).toEqual({
        tokensPurged: 0,
        keysDestroyed: [],
      });
    });

    it("keeps an epoch's DEK while its month is not over, even with no token left", async () => {
      const { vault: v, feb } = await seeded();
      const febDek = feb[0]?.dek_id as string;
      clock.set(at(2, 20)); // retention over (9 February), epoch February not over
      const first = await v.core.retention.purge("test:purge");
      expect(first.tokensPurged).toBe(2);
      expect(first.keysDestroyed).toEqual([]);
      expect((await dataKey(v.core, febDek)).wrapped).not.toBeNull();

      clock.set(at(3, 1)); // the first instant after the epoch
      const second = await v.core.retention.purge("test:purge");
      expect(second).toEqual({ tokensPurged: 0, keysDestroyed: [febDek] });
      expect((await dataKey(v.core, febDek)).wrapped).toBeNull();
    });

    it("keeps an epoch's DEK while any token still uses it", async () => {
      clock.set(T0);
      const v = await startTestVault(driver, { clock });
      vault = v;
      const key = await v.newKey(v.tenantId, [...ALL_SCOPES]);
      // Same epoch (February), different retention ends.
      const early = await tokenize(v, key, {
        card: cardOf(CARDS.visa),
        expires_at: at(2, 3).toISOString(),
      });
      const late = await tokenize(v, key, {
        card: cardOf(CARDS.mastercard),
        expires_at: at(2, 25).toISOString(),
      });
      const dek = (await storedToken(v.core, v.tenantId, early.id)).dek_id;
      expect((await storedToken(v.core, v.tenantId, late.id)).dek_id).toBe(dek);

      clock.set(at(2, 10));
      expect(await v.core.retention.purge("test:purge")).toEqual({
        tokensPurged: 1,
        keysDestroyed: [],
      });
      expect(await tokenExists(v, v.tenantId, early.id)).toBe(false);
      expect(await revealedNumber(v, key, late.id)).toBe(CARDS.mastercard);
      expect((await dataKey(v.core, dek)).destroyed_at).toBeNull();

      // Even once the epoch is over, a token still under the key (here one whose retention an
      // operator extended in the store) keeps it alive: a key is never shredded under live data.
      await v.core.db.query("UPDATE tokens SET expires_at = $2 WHERE id = $1", [late.id, at(4, 1)]);
      clock.set(at(3, 2));
      expect(await v.core.retention.purge("test:purge")).toEqual({
        tokensPurged: 0,
        keysDestroyed: [],
      });
      expect((await dataKey(v.core, dek)).wrapped).not.toBeNull();
      expect(await revealedNumber(v, key, late.id)).toBe(CARDS.mastercard);
    });

    it("the scheduled maintenance pass purges and shreds the same way", async () => {
      const { vault: v, key, feb, persistent } = await seeded();
      const febDek = feb[0]?.dek_id as string;
      clock.set(at(3, 5));
      const report = await runMaintenance(v.core, false);
      expect(report).toMatchObject({ tokensPurged: 2, keysDestroyed: 1 });
      for (const row of feb) expect(await tokenExists(v, v.tenantId, row.id)).toBe(false);
      expect((await dataKey(v.core, febDek)).wrapped).toBeNull();
      expect(
        await rejection(decryptCopy(v.core, v.tenantId, feb[0] as StoredToken)),
      ).toBeInstanceOf(KeyDestroyedError);
      expect(await auditRows(v, "key.destroy")).toEqual([
        expect.objectContaining({ actor: "system:maintenance", object_id: febDek }),
      ]);
      expect(await revealedNumber(v, key, persistent.id)).toBe(CARDS.amex);
    });

    it("the retention report lists what is due (overdue flagged), purge runs, destroyed keys and persistent counts", async () => {
      clock.set(T0);
      const v = await startTestVault(driver, { clock });
      vault = v;
      const a = await v.newTenant([...ALL_SCOPES]);
      const b = await v.newTenant([...ALL_SCOPES]);
      await v.core.tenants.setRetention(b.tenantId, 7, "test");
      await tokenize(v, a.key, { card: cardOf(CARDS.visa) }); // 9 Feb
      await tokenize(v, a.key, { card: cardOf(CARDS.mastercard) }); // 9 Feb
      await tokenize(v, a.key, { card: cardOf(CARDS.amex), persistent: true });
      await tokenize(v, a.key, { card: cardOf(CARDS.amex2), persistent: true });
      const bJan = await tokenize(v, b.key, { card: cardOf(CARDS.visa) }); // 17 Jan
      const bDek = (await storedToken(v.core, b.tenantId, bJan.id)).dek_id;

      clock.set(at(1, 20));
      const first = await v.core.retention.report({ sinceDays: 92, horizonDays: 92 });
      expect(first.generated_at).toBe(at(1, 20).toISOString());
      expect(first.due).toEqual([
        {
          tenant_id: b.tenantId,
          environment: "live",
          epoch: epoch(1),
          tokens: 1,
          first_expiry: at(1, 17).toISOString(),
          last_expiry: at(1, 17).toISOString(),
          overdue: true,
        },
        {
          tenant_id: a.tenantId,
          environment: "live",
          epoch: epoch(2),
          tokens: 2,
          first_expiry: at(2, 9).toISOString(),
          last_expiry: at(2, 9).toISOString(),
          overdue: false,
        },
      ]);
      expect(first.purged).toEqual([]);
      expect(first.destroyed_keys).toEqual([]);
      expect(first.persistent).toEqual([{ tenant_id: a.tenantId, environment: "live", tokens: 2 }]);
      // The horizon bounds what is due.
      const near = await v.core.retention.report({ horizonDays: 5 });
      expect(near.due.map((d) => d.tenant_id)).toEqual([b.tenantId]);

      expect(await v.core.retention.purge("test:purge")).toEqual({
        tokensPurged: 1,
        keysDestroyed: [],
      });
      clock.set(at(2, 2)); // January is over: B's January key goes
      expect(await v.core.retention.purge("test:purge")).toEqual({
        tokensPurged: 0,
        keysDestroyed: [bDek],
      });

      const second: RetentionReport = await v.core.retention.report();
      expect(second.due).toEqual([
        expect.objectContaining({ tenant_id: a.tenantId, epoch: epoch(2), overdue: false }),
      ]);
      expect(second.purged).toEqual([
        {
          id: expect.stringMatching(/^purge_/),
          actor: "test:purge",
          ran_at: at(1, 20).toISOString(),
          tokens_purged: 1,
          keys_destroyed: 0,
        },
        {
          id: expect.stringMatching(/^purge_/),
          actor: "test:purge",
          ran_at: at(2, 2).toISOString(),
          tokens_purged: 0,
          keys_destroyed: 1,
        },
      ]);
      expect(second.destroyed_keys).toEqual([
        {
          id: bDek,
          owner: b.tenantId,
          environment: "live",
          epoch: epoch(1),
          destroyed_at: at(2, 2).toISOString(),
        },
      ]);
      expect(second.persistent).toEqual([
        { tenant_id: a.tenantId, environment: "live", tokens: 2 },
      ]);
      // Purge runs and destructions older than `since` drop out of the report.
      clock.set(at(2, 2).getTime() + 10 * DAY);
      const later = await v.core.retention.report({ sinceDays: 5 });
      expect(later.purged).toEqual([]);
      expect(later.destroyed_keys).toEqual([]);
    });
  });

  describe(`retention from the CLI on ${driver.name}`, () => {
    let store: CliStore;
    beforeAll(async () => {
      store = await cliStore(driver);
    });
    afterAll(async () => store?.drop());

    it(
      "tenants set-retention, retention report --json and purge: expired tokens go, their epoch key is shredded",
      async () => {
        // The CLI runs on the real clock: seed three months back, so retention and the epoch
        // month of the early tokens are over today.
        const now = new Date();
        const t0 = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 3, 5));
        const clock = new TestClock(t0.getTime());
        const seededVault = await store.open(clock);
        const { tenantId, key } = await seededVault.newTenant([...ALL_SCOPES]);
        const gone = [
          await tokenize(seededVault, key, { card: cardOf(CARDS.visa) }),
          await tokenize(seededVault, key, { card: cardOf(CARDS.mastercard) }),
        ];
        const kept = await tokenize(seededVault, key, {
          card: cardOf(CARDS.amex),
          persistent: true,
        });
        const soon = new Date(now.getTime() + 10 * DAY);
        const upcoming = await tokenize(seededVault, key, {
          card: cardOf(CARDS.discover),
          expires_at: soon.toISOString(),
        });
        const rows = await storedTokens(seededVault.core, tenantId);
        const goneRows = gone.map((g) => rows.find((r) => r.id === g.id) as StoredToken);
        const dek = goneRows[0]?.dek_id as string;
        const goneEpoch = goneRows[0]?.epoch as string;
        expect(await decryptCopy(seededVault.core, tenantId, goneRows[0] as StoredToken)).toBe(
          CARDS.visa,
        );
        await seededVault.close();

        const before = parseReport(ok(await store.cli(["retention", "report", "--json"])));
        expect(before.due).toEqual([
          expect.objectContaining({
            tenant_id: tenantId,
            epoch: goneEpoch,
            tokens: 2,
            overdue: true,
          }),
          expect.objectContaining({
            tenant_id: tenantId,
            epoch: epochOfDate(soon),
            tokens: 1,
            overdue: false,
          }),
        ]);
        expect(before.persistent).toEqual([
          { tenant_id: tenantId, environment: "live", tokens: 1 },
        ]);

        const purged = ok(
          await store.cli(["purge", "--json"], {
            USER: "carol" /* ignored: the OS account counts */,
          }),
        );
        expect(JSON.parse(purged.stdout)).toEqual({ tokensPurged: 2, keysDestroyed: [dek] });

        const after = parseReport(ok(await store.cli(["retention", "report", "--json"])));
        expect(after.due).toEqual([
          expect.objectContaining({ epoch: epochOfDate(soon), overdue: false }),
        ]);
        expect(after.purged).toEqual([
          expect.objectContaining({ actor: CLI_ACTOR, tokens_purged: 2, keys_destroyed: 1 }),
        ]);
        expect(after.destroyed_keys).toEqual([
          expect.objectContaining({ id: dek, owner: tenantId, epoch: goneEpoch }),
        ]);
        const table = ok(await store.cli(["retention", "report"]));
        expect(table.stdout).toMatch(/Destroyed keys \(crypto-shredded\)/);
        expect(table.stdout).toContain(dek);

        const reopened = await store.open(new TestClock(Date.now()));
        try {
          for (const row of goneRows)
            expect(await tokenExists(reopened, tenantId, row.id)).toBe(false);
          expect((await dataKey(reopened.core, dek)).wrapped).toBeNull();
          expect(
            await rejection(decryptCopy(reopened.core, tenantId, goneRows[0] as StoredToken)),
          ).toBeInstanceOf(KeyDestroyedError);
          expect(await auditRows(reopened, "key.destroy")).toEqual([
            expect.objectContaining({ actor: CLI_ACTOR, object_id: dek }),
          ]);
          const adminKey = await reopened.newKey(tenantId, ["tokens:reveal"]);
          expect(await revealedNumber(reopened, adminKey, kept.id)).toBe(CARDS.amex);
          expect(await revealedNumber(reopened, adminKey, upcoming.id)).toBe(CARDS.discover);
        } finally {
          await reopened.close();
        }
      },
      SLOW,
    );

    it(
      "tenants set-retention --days N changes the policy for new tokens (audited with the OS user)",
      async () => {
        const first = await store.open(new TestClock(Date.now()));
        const { tenantId } = await first.newTenant(["tokens:write"]);
        await first.close();

        const set = ok(
          await store.cli(["tenants", "set-retention", tenantId, "--days", "7", "--json"], {
            USER: "dave",
          }),
        );
        expect(JSON.parse(set.stdout)).toEqual([{ id: tenantId, retention_days: "7" }]);

        const clock = new TestClock(Date.now());
        const second = await store.open(clock);
        try {
          const key = await second.newKey(tenantId, ["tokens:write"]);
          const created = await tokenize(second, key, { card: cardOf(CARDS.visa4) });
          expect(created.expires_at).toBe(new Date(clock.now().getTime() + 7 * DAY).toISOString());
          expect(
            (await auditRows(second, "tenant.update")).filter((e) => e.tenant_id === tenantId),
          ).toEqual([
            expect.objectContaining({ actor: CLI_ACTOR, details: { retention_days: 7 } }),
          ]);
        } finally {
          await second.close();
        }
      },
      SLOW,
    );
  });
}

function epochOfDate(date: Date): string {
  return `${date.getUTCFullYear()}-${String(date.getUTCMonth() + 1).padStart(2, "0")}`;
}

function ok(result: CliResult): CliResult {
  expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
  return result;
}

function parseReport(result: CliResult): RetentionReport {
  return JSON.parse(result.stdout) as RetentionReport;
}

/** A vault opened in-process on the CLI's store (same data directory, KEK file and database). */
type DirVault = TestVault;

interface CliStore {
  cli(args: readonly string[], env?: Record<string, string>): Promise<CliResult>;
  /** Opens the store in-process; close it before running the CLI (PGlite is single-process). */
  open(clock: Clock): Promise<DirVault>;
  drop(): Promise<void>;
}

/**
 * A store the CLI child and the test share: PGlite in a data directory, or (postgres driver) a
 * fresh schema named through the connection string's search_path.
 */
async function cliStore(driver: Driver): Promise<CliStore> {
  const dataDir = await mkdtemp(join(tmpdir(), "payvault-retention-cli-"));
  const { env, drop: dropSchema } = await cliStoreEnv(driver.name);
  let tenants = 0;
  return {
    cli: (args, extra = {}) => runCli(args, { dataDir, env: { ...env, ...extra } }),
    async open(clock) {
      const config = loadConfig({ PAYVAULT_DATA_DIR: dataDir, ...env }, dataDir);
      const core = await openCore(config, { clock });
      const app = buildApp(
        { ...core, logger: createLogger("info", new LogCapture()) },
        { tls: undefined },
      );
      await app.ready();
      const boot = await bootstrapIfEmpty(core.db, core.tenants, core.apiKeys);
      const newKey = async (tenantId: string, scopes: Parameters<TestVault["newKey"]>[1]) =>
        (
          await core.apiKeys.create({
            tenantId,
            environment: "live",
            name: "t",
            scopes,
            actor: "t",
          })
        ).secret;
      return {
        core,
        app,
        logs: new LogCapture(),
        dataDir,
        tenantId: boot?.tenantId ?? "",
        adminKey: boot?.apiKey ?? "",
        newKey,
        async newTenant(scopes) {
          const tenant = await core.tenants.create(`cli-tenant-${++tenants}`, "test");
          return { tenantId: tenant.id, key: await newKey(tenant.id, scopes) };
        },
        async close() {
          await app.close();
          await core.sealer.sealPending().catch(() => undefined);
          await core.close();
        },
      };
    },
    async drop() {
      await dropSchema();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
