import { createHash, randomBytes } from "node:crypto";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AuditEventRow } from "../../src/audit/audit-event.js";
import { buildEventRow } from "../../src/audit/audit-event.js";
import { newId } from "../../src/crypto/random.js";
import type { ApiKeyRow } from "../../src/store/api-keys-repo.js";
import {
  findApiKey,
  insertApiKey,
  listApiKeys,
  revokeApiKey,
} from "../../src/store/api-keys-repo.js";
import {
  findEventsInRange,
  findLastSeal,
  findSealHorizon,
  findSeals,
  insertAuditEvent,
  insertSeal,
} from "../../src/store/audit-repo.js";
import type { DataKeyRow } from "../../src/store/data-keys-repo.js";
import {
  findDataKey,
  findLatestDataKey,
  insertDataKeyAudited,
} from "../../src/store/data-keys-repo.js";
import type { Database } from "../../src/store/database.js";
import {
  claimIdempotencyKey,
  completeIdempotencyKey,
  findIdempotencyKey,
  purgeIdempotencyKeys,
  reclaimIdempotencyKey,
  releaseIdempotencyKey,
} from "../../src/store/idempotency-repo.js";
import { MIGRATIONS_DIR, MigrationError, migrate } from "../../src/store/migrate.js";
import {
  countTenants,
  findTenant,
  insertTenant,
  listTenants,
} from "../../src/store/tenants-repo.js";
import type { TokenRow } from "../../src/store/tokens-repo.js";
import {
  deleteTokenAudited,
  findTokenAudited,
  findTokenByDedupeKey,
  findTokensByDedupeKeys,
  insertTokenAudited,
  insertTokensAudited,
} from "../../src/store/tokens-repo.js";
import type { TestDatabase } from "../support/databases.js";
import { DRIVERS } from "../support/databases.js";

/** An API key row's lifecycle columns at their defaults (no expiry, any address, no binding). */
const KEY_LIFECYCLE_DEFAULTS: Pick<
  ApiKeyRow,
  "expires_at" | "allowed_cidrs" | "client_cert_sha256" | "rotated_to" | "created_by"
> = {
  expires_at: null,
  allowed_cidrs: [],
  client_cert_sha256: null,
  rotated_to: null,
  created_by: null,
};

const MAC_KEY = { id: "dek_contract_audit", material: randomBytes(32) };
const T0 = new Date("2026-01-02T03:04:05.678Z");

function auditRow(action: string, objectId: string | undefined, tenantId = "ten_a"): AuditEventRow {
  return buildEventRow(
    {
      tenantId,
      actor: "key_contract",
      action: action as never,
      objectId,
      outcome: "success",
      details: { note: "contract", n: 1, ok: true },
    },
    T0,
    MAC_KEY,
  );
}

async function auditIds(db: Database): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    'SELECT id FROM audit_events ORDER BY id COLLATE "C"',
  );
  return rows.map((r) => r.id);
}

for (const driver of DRIVERS) {
  describe(`store contract on ${driver.name}`, () => {
    describe("migrations", () => {
      let test: TestDatabase;
      let dir: string;
      beforeEach(async () => {
        test = await driver.open();
        dir = await mkdtemp(join(tmpdir(), "payvault-migrations-"));
      });
      afterEach(async () => {
        await test.drop();
        await rm(dir, { recursive: true, force: true });
      });

      it("applies the shipped migrations once; a second run is a no-op", async () => {
        expect(await migrate(test.db)).toEqual([1, 2, 3, 4, 5, 6, 7]);
        expect(await migrate(test.db)).toEqual([]);
        const { rows } = await test.db.query<{ version: number; name: string; checksum: string }>(
          "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
        );
        const checksumOf = async (file: string) =>
          createHash("sha256")
            .update(await readFile(join(MIGRATIONS_DIR, file), "utf8"))
            .digest("hex");
        expect(rows).toEqual([
          { version: 1, name: "initial", checksum: await checksumOf("001_initial.sql") },
          {
            version: 2,
            name: "key_lifecycle",
            checksum: await checksumOf("002_key_lifecycle.sql"),
          },
          {
            version: 3,
            name: "rotation_dedupe",
            checksum: await checksumOf("003_rotation_dedupe.sql"),
          },
          { version: 4, name: "capture", checksum: await checksumOf("004_capture.sql") },
          {
            version: 5,
            name: "access_control",
            checksum: await checksumOf("005_access_control.sql"),
          },
          { version: 6, name: "admin_users", checksum: await checksumOf("006_admin_users.sql") },
          {
            version: 7,
            name: "payment_edge",
            checksum: await checksumOf("007_payment_edge.sql"),
          },
        ]);
        const tables = await test.db.query<{ table_name: string }>(
          `SELECT table_name FROM information_schema.tables
            WHERE table_schema = current_schema() ORDER BY table_name`,
        );
        expect(tables.rows.map((r) => r.table_name)).toEqual(
          expect.arrayContaining([
            "api_keys",
            "audit_events",
            "data_keys",
            "idempotency_keys",
            "key_ceremonies",
            "key_rotation_jobs",
            "purge_runs",
            "schema_migrations",
            "tenants",
            "tokens",
          ]),
        );
      });

      it("refuses an applied migration whose file changed, and applies nothing more", async () => {
        await copyFile(join(MIGRATIONS_DIR, "001_initial.sql"), join(dir, "001_initial.sql"));
        expect(await migrate(test.db, dir)).toEqual([1]);
        await writeFile(join(dir, "001_initial.sql"), "-- edited\n", { flag: "a" });
        await writeFile(join(dir, "002_more.sql"), "CREATE TABLE contract_more (id int);\n");
        await expect(migrate(test.db, dir)).rejects.toThrow(MigrationError);
        await expect(migrate(test.db, dir)).rejects.toThrow(/migration 1 \(initial\) changed/);
        const { rows } = await test.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM information_schema.tables
            WHERE table_schema = current_schema() AND table_name = 'contract_more'`,
        );
        expect(rows[0]?.n).toBe(0);
      });

      it("applies a new migration, and rolls back one that fails as a whole", async () => {
        await copyFile(join(MIGRATIONS_DIR, "001_initial.sql"), join(dir, "001_initial.sql"));
        await writeFile(join(dir, "002_more.sql"), "CREATE TABLE contract_more (id int);\n");
        expect(await migrate(test.db, dir)).toEqual([1, 2]);
        await writeFile(
          join(dir, "003_broken.sql"),
          "CREATE TABLE contract_half (id int);\nSELECT * FROM no_such_table;\n",
        );
        await expect(migrate(test.db, dir)).rejects.toThrow();
        const { rows } = await test.db.query<{ table_name: string }>(
          `SELECT table_name FROM information_schema.tables
            WHERE table_schema = current_schema()
              AND table_name IN ('contract_more', 'contract_half')`,
        );
        expect(rows.map((r) => r.table_name)).toEqual(["contract_more"]);
        const versions = await test.db.query<{ version: number }>(
          "SELECT version FROM schema_migrations ORDER BY version",
        );
        expect(versions.rows.map((r) => r.version)).toEqual([1, 2]);
      });
    });

    describe("repositories", () => {
      const scopeOf = (tenantId: string) => ({ tenantId, environment: "live" as const, now: T0 });
      let test: TestDatabase;
      let db: Database;
      const dek: DataKeyRow = {
        id: "dek_contract_pan",
        owner: "ten_a",
        purpose: "pan",
        version: 1,
        wrapped: randomBytes(60),
        kek_id: "kek_contract",
        kek_version: 1,
        created_at: T0,
        environment: "live",
        epoch: "",
        algorithm: "AES-256-GCM",
        encrypt_until: null,
        max_uses: null,
        uses_reserved: 0,
        retired_at: null,
        destroyed_at: null,
      };

      function tokenRow(id: string, tenantId: string, dedupeKey: string | null): TokenRow {
        return {
          tenant_id: tenantId,
          id,
          format: "random",
          brand: "visa",
          bin: "42424242",
          last4: "4242",
          exp_month: 12,
          exp_year: 2030,
          fingerprint: `fp_${dedupeKey ?? id}`,
          dedupe_key: dedupeKey,
          dek_id: dek.id,
          ciphertext: randomBytes(80),
          metadata: { order: "o-1" },
          created_at: T0,
          expires_at: null,
          environment: "live",
          persistent: true,
          fingerprint_key_id: dek.id,
        };
      }

      beforeAll(async () => {
        test = await driver.open();
        db = test.db;
        await migrate(db);
        for (const id of ["ten_a", "ten_b"]) {
          await insertTenant(db, { id, name: id, created_at: T0, retention_days: 30 });
        }
        expect(await insertDataKeyAudited(db, dek, auditRow("key.create", dek.id))).toBe(true);
      });
      afterAll(async () => test?.drop());

      it("tenants: insert, find, list in creation order, count", async () => {
        await insertTenant(db, {
          id: "ten_c",
          name: "acme",
          created_at: new Date(T0.getTime() + 1000),
          retention_days: 30,
        });
        expect(await findTenant(db, "ten_c")).toEqual({
          id: "ten_c",
          name: "acme",
          created_at: new Date(T0.getTime() + 1000),
          retention_days: 30,
        });
        expect(await findTenant(db, "ten_none")).toBeUndefined();
        expect((await listTenants(db)).map((t) => t.id)).toEqual(["ten_a", "ten_b", "ten_c"]);
        expect(await countTenants(db)).toBe(3);
        await expect(
          insertTenant(db, { id: "ten_c", name: "again", created_at: T0, retention_days: 30 }),
        ).rejects.toBeDefined();
      });

      it("api keys: insert, find, list (all or per tenant), revoke once", async () => {
        const row = (id: string, tenant: string, at: number): ApiKeyRow => ({
          id,
          tenant_id: tenant,
          environment: "test",
          name: `name ${id}`,
          scopes: ["tokens:read", "tokens:write"],
          secret_mac: randomBytes(32),
          created_at: new Date(T0.getTime() + at),
          revoked_at: null,
          ...KEY_LIFECYCLE_DEFAULTS,
        });
        const k1 = row("key_one", "ten_a", 1);
        const k2 = row("key_two", "ten_b", 2);
        await insertApiKey(db, k1);
        await insertApiKey(db, k2);
        const found = await findApiKey(db, "key_one");
        expect(found).toEqual(k1);
        expect(Buffer.isBuffer(found?.secret_mac)).toBe(true);
        expect(found?.created_at).toBeInstanceOf(Date);
        expect(await findApiKey(db, "key_none")).toBeUndefined();
        expect((await listApiKeys(db, undefined)).map((k) => k.id)).toEqual(["key_one", "key_two"]);
        expect((await listApiKeys(db, "ten_b")).map((k) => k.id)).toEqual(["key_two"]);
        const at = new Date(T0.getTime() + 5000);
        expect(await revokeApiKey(db, "key_one", at)).toBe(true);
        expect(await revokeApiKey(db, "key_one", new Date())).toBe(false);
        expect(await revokeApiKey(db, "key_none", at)).toBe(false);
        expect((await findApiKey(db, "key_one"))?.revoked_at).toEqual(at);
        expect((await findApiKey(db, "key_two"))?.revoked_at).toBeNull();
        await expect(insertApiKey(db, row("key_orphan", "ten_none", 3))).rejects.toBeDefined();
      });

      it("data keys: latest version wins; a duplicate version is refused with false", async () => {
        const v2: DataKeyRow = { ...dek, id: "dek_contract_pan_v2", version: 2 };
        const created = auditRow("key.create", v2.id);
        expect(await insertDataKeyAudited(db, v2, created)).toBe(true);
        const raced = auditRow("key.create", "dek_contract_racer");
        const racer = { ...v2, id: "dek_contract_racer" };
        expect(await insertDataKeyAudited(db, racer, raced)).toBe(false);
        expect(await findDataKey(db, "dek_contract_racer")).toBeUndefined();
        // The creation is audited with the key, and the losing racer records nothing.
        expect(await auditIds(db)).toContain(created.id);
        expect(await auditIds(db)).not.toContain(raced.id);
        const latest = await findLatestDataKey(db, {
          owner: "ten_a",
          purpose: "pan",
          environment: "live",
          epoch: "",
        });
        expect(latest).toEqual(v2);
        expect(Buffer.isBuffer(latest?.wrapped)).toBe(true);
        expect(await findDataKey(db, dek.id)).toEqual(dek);
        expect(
          await findLatestDataKey(db, {
            owner: "ten_a",
            purpose: "fingerprint",
            environment: "live",
            epoch: "",
          }),
        ).toBeUndefined();
        expect(
          await findLatestDataKey(db, {
            owner: "ten_b",
            purpose: "pan",
            environment: "live",
            epoch: "",
          }),
        ).toBeUndefined();
      });

      it("tokens: insertTokenAudited writes both rows, or neither on a dedupe conflict", async () => {
        const first = tokenRow("tok_first", "ten_a", "dd_1");
        const event = auditRow("token.create", first.id);
        expect(await insertTokenAudited(db, first, event)).toBe(true);
        expect(await auditIds(db)).toContain(event.id);

        const before = await auditIds(db);
        const clash = tokenRow("tok_clash", "ten_a", "dd_1");
        const clashEvent = auditRow("token.create", clash.id);
        expect(await insertTokenAudited(db, clash, clashEvent)).toBe(false);
        expect(await auditIds(db)).toEqual(before);
        // Same id again (a card-alias collision) is also a quiet false.
        expect(
          await insertTokenAudited(
            db,
            tokenRow("tok_first", "ten_a", "dd_other"),
            auditRow("token.create", "tok_first"),
          ),
        ).toBe(false);
        expect(await auditIds(db)).toEqual(before);
        // The same dedupe key in another tenant is a different card holder: allowed.
        expect(
          await insertTokenAudited(
            db,
            tokenRow("tok_first", "ten_b", "dd_1"),
            auditRow("token.create", "tok_first", "ten_b"),
          ),
        ).toBe(true);

        const found = await findTokenByDedupeKey(db, "ten_a", "dd_1");
        expect(found).toEqual(first);
        expect(Buffer.isBuffer(found?.ciphertext)).toBe(true);
        expect(await findTokenByDedupeKey(db, "ten_a", "dd_none")).toBeUndefined();
        const many = await findTokensByDedupeKeys(db, "ten_a", ["dd_1", "dd_none"]);
        expect(many.map((r) => r.id)).toEqual(["tok_first"]);
      });

      it("tokens: findTokenAudited reads and audits in one step, or neither", async () => {
        const row = tokenRow("tok_read", "ten_a", null);
        await insertTokenAudited(db, row, auditRow("token.create", row.id));

        const before = await auditIds(db);
        const foreign = auditRow("token.read", row.id, "ten_b");
        expect(await findTokenAudited(db, scopeOf("ten_b"), row.id, foreign)).toBeUndefined();
        const missing = auditRow("token.read", "tok_none");
        expect(await findTokenAudited(db, scopeOf("ten_a"), "tok_none", missing)).toBeUndefined();
        expect(await auditIds(db)).toEqual(before);

        const event = auditRow("token.read", row.id);
        const found = await findTokenAudited(db, scopeOf("ten_a"), row.id, event);
        expect(found).toEqual(row);
        expect(found?.created_at).toBeInstanceOf(Date);
        expect(found?.metadata).toEqual({ order: "o-1" });
        expect(await auditIds(db)).toEqual([...before, event.id].sort());
      });

      it("tokens: deleteTokenAudited removes and audits once; not another tenant's", async () => {
        const row = tokenRow("tok_delete", "ten_a", "dd_delete");
        await insertTokenAudited(db, row, auditRow("token.create", row.id));
        const before = await auditIds(db);
        expect(
          await deleteTokenAudited(
            db,
            scopeOf("ten_b"),
            row.id,
            auditRow("token.delete", row.id, "ten_b"),
          ),
        ).toBe(false);
        expect(await auditIds(db)).toEqual(before);
        const event = auditRow("token.delete", row.id);
        expect(await deleteTokenAudited(db, scopeOf("ten_a"), row.id, event)).toBe(true);
        expect(await auditIds(db)).toEqual([...before, event.id].sort());
        expect(await findTokenByDedupeKey(db, "ten_a", "dd_delete")).toBeUndefined();
        expect(
          await deleteTokenAudited(db, scopeOf("ten_a"), row.id, auditRow("token.delete", row.id)),
        ).toBe(false);
        expect(await auditIds(db)).toEqual([...before, event.id].sort());
      });

      it("tokens: insertTokensAudited returns only the inserted ids and audits only those", async () => {
        await insertTokenAudited(
          db,
          tokenRow("tok_existing", "ten_a", "dd_existing"),
          auditRow("token.create", "tok_existing"),
        );
        const rows = [
          tokenRow("tok_b1", "ten_a", "dd_b1"),
          tokenRow("tok_b2", "ten_a", "dd_existing"),
          {
            ...tokenRow("tok_b3", "ten_a", null),
            expires_at: new Date("2031-01-01T00:00:00Z"),
            persistent: false,
          },
          tokenRow("tok_existing", "ten_a", "dd_b4"),
        ];
        const events = rows.map((r) => auditRow("token.create", r.id));
        const before = await auditIds(db);
        const inserted = await insertTokensAudited(db, rows, events);
        expect([...inserted].sort()).toEqual(["tok_b1", "tok_b3"]);
        const added = (await auditIds(db)).filter((id) => !before.includes(id));
        expect(added.sort()).toEqual([events[0]?.id, events[2]?.id].sort());
        const b3 = await findTokenAudited(
          db,
          scopeOf("ten_a"),
          "tok_b3",
          auditRow("token.read", "tok_b3"),
        );
        expect(b3).toEqual(rows[2]);
        expect(b3?.expires_at).toBeInstanceOf(Date);
      });

      it("idempotency keys: claim, find, reclaim, complete, release, purge", async () => {
        const now = new Date();
        const later = (ms: number) => new Date(now.getTime() + ms);
        const args = {
          tenantId: "ten_a",
          key: "idem_1",
          requestHash: "h1",
          now,
          lockedUntil: later(60_000),
        };
        expect(await claimIdempotencyKey(db, args)).toBe(true);
        expect(await claimIdempotencyKey(db, { ...args, requestHash: "h2" })).toBe(false);
        expect(await claimIdempotencyKey(db, { ...args, tenantId: "ten_b" })).toBe(true);
        const found = await findIdempotencyKey(db, "ten_a", "idem_1");
        expect(found).toEqual({
          request_hash: "h1",
          state: "in_flight",
          response_status: null,
          response_body: null,
          created_at: now,
          locked_until: later(60_000),
        });
        expect(await findIdempotencyKey(db, "ten_a", "idem_none")).toBeUndefined();

        // Still locked and fresh: nobody may take it over.
        const reclaim = { ...args, requestHash: "h3", staleBefore: later(-86_400_000) };
        expect(await reclaimIdempotencyKey(db, reclaim)).toBe(false);
        // Its lock ran out (the node died): the next request takes it.
        expect(
          await reclaimIdempotencyKey(db, {
            ...reclaim,
            now: later(61_000),
            lockedUntil: later(121_000),
          }),
        ).toBe(true);
        expect((await findIdempotencyKey(db, "ten_a", "idem_1"))?.request_hash).toBe("h3");

        await completeIdempotencyKey(db, "ten_a", "idem_1", 201, '{"id":"tok_x"}');
        expect(await findIdempotencyKey(db, "ten_a", "idem_1")).toMatchObject({
          state: "done",
          response_status: 201,
          response_body: '{"id":"tok_x"}',
        });
        // A completed key is not in flight: release leaves it, reclaim within retention refuses.
        await releaseIdempotencyKey(db, "ten_a", "idem_1");
        expect(await findIdempotencyKey(db, "ten_a", "idem_1")).toBeDefined();
        expect(await reclaimIdempotencyKey(db, { ...reclaim, now: later(200_000) })).toBe(false);
        // An in-flight key is released.
        await releaseIdempotencyKey(db, "ten_b", "idem_1");
        expect(await findIdempotencyKey(db, "ten_b", "idem_1")).toBeUndefined();

        await claimIdempotencyKey(db, {
          ...args,
          key: "idem_old",
          now: later(-2 * 86_400_000),
          lockedUntil: later(-2 * 86_400_000 + 60_000),
        });
        expect(await purgeIdempotencyKeys(db, later(-86_400_000))).toBe(1);
        expect(await findIdempotencyKey(db, "ten_a", "idem_old")).toBeUndefined();
        expect(await findIdempotencyKey(db, "ten_a", "idem_1")).toBeDefined();
      });

      it("audit events and seals: range reads in seal order, horizon, append-only seals", async () => {
        expect(await findLastSeal(db)).toBeUndefined();
        const horizon = await findSealHorizon(db);
        expect(BigInt(horizon)).toBeGreaterThan(0n);
        const all = await findEventsInRange(db, "0", undefined, 10_000);
        expect(all.map((e) => e.id).sort()).toEqual((await auditIds(db)).sort());
        // Every committed event is below the horizon; they come back ordered by (txid, id).
        const below = await findEventsInRange(db, "0", horizon, 10_000);
        expect(below.map((e) => e.id)).toEqual(all.map((e) => e.id));
        const keys = below.map((e) => [BigInt(e.txid), e.id] as const);
        const sorted = [...keys].sort((a, b) =>
          a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1,
        );
        expect(keys).toEqual(sorted);
        expect(Buffer.isBuffer(below[0]?.row_mac)).toBe(true);
        expect(below[0]?.occurred_at).toBeInstanceOf(Date);
        expect(below[0]?.details).toEqual({ note: "contract", n: 1, ok: true });

        const seal = {
          seq: 1,
          from_txid: "0",
          to_txid: horizon,
          event_count: below.length,
          digest: Buffer.alloc(32, 7),
          mac_key_id: "dek_contract_audit",
          chain_mac: Buffer.alloc(32, 8),
          sealed_at: T0,
        };
        await insertSeal(db, seal);
        expect(await findLastSeal(db)).toEqual(seal);
        // A position is taken once.
        await expect(
          insertSeal(db, { ...seal, chain_mac: Buffer.alloc(32, 9) }),
        ).rejects.toBeDefined();
        expect(await findSeals(db, 0, 10)).toEqual([seal]);
        expect(await findSeals(db, 1, 10)).toEqual([]);

        // An event written after the horizon is outside the sealed range.
        const extra = auditRow("auth.failure", undefined);
        await insertAuditEvent(db, extra);
        const after = await findEventsInRange(db, horizon, undefined, 10);
        expect(after.map((e) => e.id)).toEqual([extra.id]);
        expect((await findEventsInRange(db, "0", horizon, 10_000)).map((e) => e.id)).not.toContain(
          extra.id,
        );
      });

      it("returns bytea as Buffer, timestamptz as Date and int8 as number", async () => {
        const { rows } = await db.query<{ b: unknown; t: unknown; n: unknown; big: unknown }>(
          "SELECT $1::bytea AS b, $2::timestamptz AS t, 42::int8 AS n, (2^50)::int8 AS big",
          [Buffer.from([0, 1, 254, 255]), T0],
        );
        const row = rows[0] as { b: unknown; t: unknown; n: unknown; big: unknown };
        expect(Buffer.isBuffer(row.b)).toBe(true);
        expect(row.b).toEqual(Buffer.from([0, 1, 254, 255]));
        expect(row.t).toBeInstanceOf(Date);
        expect((row.t as Date).toISOString()).toBe(T0.toISOString());
        expect(row.n).toBe(42);
        expect(row.big).toBe(2 ** 50);
        const count = await db.query<{ n: unknown }>("SELECT count(*) AS n FROM tenants");
        expect(typeof count.rows[0]?.n).toBe("number");
      });

      it("reports rowCount for updates and deletes", async () => {
        const res = await db.query("UPDATE tenants SET name = name WHERE id IN ('ten_a', 'ten_b')");
        expect(res.rowCount).toBe(2);
        expect((await db.query("DELETE FROM tenants WHERE id = 'ten_none'")).rowCount).toBe(0);
      });

      it("commits a transaction that resolves and rolls back one that throws", async () => {
        const id = newId("ten");
        const value = await db.transaction(async (tx) => {
          await insertTenant(tx, { id, name: "committed", created_at: T0, retention_days: 30 });
          expect(await findTenant(tx, id)).toBeDefined();
          return 7;
        });
        expect(value).toBe(7);
        expect(await findTenant(db, id)).toBeDefined();

        const doomed = newId("ten");
        const failure = new Error("boom");
        await expect(
          db.transaction(async (tx) => {
            await insertTenant(tx, {
              id: doomed,
              name: "rolled back",
              created_at: T0,
              retention_days: 30,
            });
            await insertApiKey(tx, {
              id: "key_doomed",
              tenant_id: doomed,
              environment: "live",
              name: "",
              scopes: ["tenant:admin"],
              secret_mac: randomBytes(32),
              created_at: T0,
              revoked_at: null,
              ...KEY_LIFECYCLE_DEFAULTS,
            });
            throw failure;
          }),
        ).rejects.toBe(failure);
        expect(await findTenant(db, doomed)).toBeUndefined();
        expect(await findApiKey(db, "key_doomed")).toBeUndefined();

        // A failing statement inside rolls back what came before it, too.
        const half = newId("ten");
        await expect(
          db.transaction(async (tx) => {
            await insertTenant(tx, { id: half, name: "half", created_at: T0, retention_days: 30 });
            await insertTenant(tx, {
              id: half,
              name: "duplicate",
              created_at: T0,
              retention_days: 30,
            });
          }),
        ).rejects.toBeDefined();
        expect(await findTenant(db, half)).toBeUndefined();
        // And the store is usable afterwards.
        expect(await countTenants(db)).toBeGreaterThan(0);
      });
    });
  });
}
