import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Core } from "../../src/app/core.js";
import { openCore } from "../../src/app/core.js";
import { loadConfig } from "../../src/config/config.js";
import type { KeyManager } from "../../src/keys/key-manager.js";
import { kekOf } from "../../src/keys/key-manager.js";
import type { KeyRing } from "../../src/keys/key-ring.js";
import { ACTIVE_RECHECK_MS } from "../../src/keys/key-ring.js";
import { LocalKeyManager } from "../../src/keys/local-key-manager.js";
import type { Principal } from "../../src/services/api-keys.js";
import type { LifecycleClock } from "../../src/services/keys/key-lifecycle.js";
import { KeyLifecycle } from "../../src/services/keys/key-lifecycle.js";
import { runMaintenance } from "../../src/services/maintenance.js";
import type { Database } from "../../src/store/database.js";
import { openPostgresDatabase } from "../../src/store/postgres-database.js";
import { auditRows, CARDS, cardOf, tokenize } from "../support/api-fixtures.js";
import type { Driver } from "../support/databases.js";
import { DRIVERS, POSTGRES_URL } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/**
 * What keeps key rotation safe with several nodes (PCI DSS 3.6.4, 3.7.4): a re-encryption job
 * is only done once no node can still encrypt under the retired key; a fingerprint rotation
 * cannot stick on a dedupe collision; one KEK or DEK rotation at a time across nodes; and the
 * `key.reencrypt` audit events count exactly the tokens moved.
 */

const ACTOR = "test:rotation-safety";
const SCOPES = ["tokens:write", "tokens:read", "tokens:reveal"] as const;

/** Wall-clock time; the lifecycle's waits run `onSleep` (another node's work) and move it on. */
class HookClock implements LifecycleClock {
  private offset = 0;
  onSleep: (() => Promise<void>) | undefined;
  readonly waits: number[] = [];
  now(): Date {
    return new Date(Date.now() + this.offset);
  }
  async sleep(ms: number): Promise<void> {
    this.waits.push(ms);
    const hook = this.onSleep;
    this.onSleep = undefined;
    await hook?.();
    this.offset += ms;
  }
}

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** `target` with some methods replaced. */
function withOverrides<T extends object>(target: T, overrides: Partial<T>): T {
  return new Proxy(target, {
    get(object, prop) {
      if (prop in overrides) return overrides[prop as keyof T];
      const value = Reflect.get(object, prop, object);
      return typeof value === "function" ? value.bind(object) : value;
    },
  });
}

/**
 * Another vault node on the same store and KEK file, with its own key cache. On PostgreSQL it
 * has its own connection pool (`ownPool`), so only the database can serialize it with this one.
 */
async function otherNode(
  vault: TestVault,
  clock: LifecycleClock,
  ownPool: boolean,
): Promise<{ core: Core; close: () => Promise<void> }> {
  let db: Database = vault.core.db;
  if (ownPool && vault.core.db.kind === "postgres") {
    const { rows } = await vault.core.db.query<{ schema: string }>(
      "SELECT current_schema() AS schema",
    );
    db = await openPostgresDatabase({
      connectionString: POSTGRES_URL as string,
      poolSize: 4,
      schema: rows[0]?.schema as string,
    });
  }
  const config = loadConfig({ PAYVAULT_DATA_DIR: vault.dataDir }, vault.dataDir);
  const core = await openCore(config, {
    db,
    clock,
    keyManager: await LocalKeyManager.open(join(vault.dataDir, "kek.json"), { create: false }),
  });
  return {
    core,
    async close() {
      await core.close();
      if (db !== vault.core.db) await db.close();
    },
  };
}

async function principalOf(core: Core, secret: string): Promise<Principal> {
  const auth = await core.apiKeys.authenticate(secret);
  if (!auth.ok) throw new Error("the key does not authenticate");
  return auth.principal;
}

async function dekOf(vault: TestVault, tokenId: string): Promise<string> {
  const { rows } = await vault.core.db.query<{ dek_id: string }>(
    "SELECT dek_id FROM tokens WHERE id = $1",
    [tokenId],
  );
  return rows[0]?.dek_id as string;
}

async function staleCount(vault: TestVault, tenantId: string): Promise<number> {
  const { rows } = await vault.core.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM tokens t JOIN data_keys k ON k.id = t.dek_id
      WHERE t.tenant_id = $1 AND k.retired_at IS NOT NULL`,
    [tenantId],
  );
  return rows[0]?.n ?? 0;
}

async function retiredAt(vault: TestVault, keyId: string): Promise<Date> {
  const { rows } = await vault.core.db.query<{ retired_at: Date }>(
    "SELECT retired_at FROM data_keys WHERE id = $1",
    [keyId],
  );
  return rows[0]?.retired_at as Date;
}

function reencryptedIn(events: Awaited<ReturnType<typeof auditRows>>, jobId: string): number {
  return events
    .filter((e) => e.object_id === jobId)
    .reduce((sum, e) => sum + Number(e.details.tokens), 0);
}

async function rejection(attempt: Promise<unknown>): Promise<unknown> {
  return attempt.then(
    () => "resolved",
    (err: unknown) => err,
  );
}

function rotationSafety(driver: Driver): void {
  describe(`rotation safety on ${driver.name}`, () => {
    const clock = new HookClock();
    let vault: TestVault;

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock });
    });
    afterAll(async () => vault?.close());

    it("a node keeps encrypting under a retired key until it re-reads its keys: the rotation waits that out, so the job moves those tokens too", async () => {
      const tenant = await vault.newTenant([...SCOPES]);
      const made = [
        await tokenize(vault, tenant.key, { card: cardOf(CARDS.visa), persistent: true }),
        await tokenize(vault, tenant.key, { card: cardOf(CARDS.amex), persistent: true }),
      ];
      const retired = await dekOf(vault, made[0]!.id);
      const node = await otherNode(vault, clock, false);
      try {
        const principal = await principalOf(node.core, tenant.key);
        // The other node tokenizes too: the key is its current one now.
        await node.core.tokens.tokenize(principal, {
          card: cardOf(CARDS.mastercard),
          persistent: true,
        });
        let late: string | undefined;
        clock.onSleep = async () => {
          // Retired, but the other node has not re-read its keys yet: it still seals under it.
          const { token } = await node.core.tokens.tokenize(principal, {
            card: cardOf(CARDS.discover),
            persistent: true,
          });
          late = token.id;
          expect(await dekOf(vault, token.id)).toBe(retired);
        };
        const settling: number[] = [];
        const { job } = await vault.core.lifecycle.rotateDek("pan", tenant.tenantId, ACTOR, {
          onSettling: (ms) => settling.push(ms),
        });
        expect(late, "the rotation did not wait for the other nodes").toBeDefined();
        expect(settling[0]).toBeGreaterThan(ACTIVE_RECHECK_MS);
        expect(job?.total).toBe(3);
        const run = await vault.core.lifecycle.runJob(job!.id, ACTOR);
        expect(run.job).toMatchObject({ state: "done", done: 4, total: 4 });
        expect(await dekOf(vault, late as string)).not.toBe(retired);
        expect(await staleCount(vault, tenant.tenantId)).toBe(0);
        const revealed = await vault.core.tokens.reveal(
          await principalOf(vault.core, tenant.key),
          late as string,
          "rotation safety test",
        );
        expect(revealed.card.number).toBe(CARDS.discover);
      } finally {
        await node.close();
      }
    });

    it("a job whose sweep began before the other nodes could have switched sweeps again after that before it reports done", async () => {
      const tenant = await vault.newTenant([...SCOPES]);
      const first = await tokenize(vault, tenant.key, {
        card: cardOf(CARDS.visa2),
        persistent: true,
      });
      const retired = await dekOf(vault, first.id);
      const node = await otherNode(vault, clock, false);
      try {
        const principal = await principalOf(node.core, tenant.key);
        await node.core.tokens.tokenize(principal, {
          card: cardOf(CARDS.mastercard2),
          persistent: true,
        });
        // The rotation's own wait is cut short (a stopped CLI, say): the job starts at once.
        const stopped = new AbortController();
        stopped.abort();
        const { job } = await vault.core.lifecycle.rotateDek("pan", tenant.tenantId, ACTOR, {
          signal: stopped.signal,
        });
        let late: string | undefined;
        clock.onSleep = async () => {
          const { token } = await node.core.tokens.tokenize(principal, {
            card: cardOf(CARDS.amex2),
            persistent: true,
          });
          late = token.id;
          expect(await dekOf(vault, token.id)).toBe(retired);
        };
        const run = await vault.core.lifecycle.runJob(job!.id, ACTOR, { batchSize: 1 });
        expect(late, "the job reported done without waiting for the other nodes").toBeDefined();
        expect(run.job).toMatchObject({ state: "done", done: 3, total: 3 });
        expect(run.movedThisRun).toBe(3);
        expect(await staleCount(vault, tenant.tenantId)).toBe(0);
        const finished = run.job.finished_at as Date;
        expect(finished.getTime() - (await retiredAt(vault, retired)).getTime()).toBeGreaterThan(
          ACTIVE_RECHECK_MS,
        );
      } finally {
        await node.close();
      }
    });

    it("a fingerprint rotation never sticks on a dedupe collision: the older token keeps the dedupe key, the newer stops deduplicating, and it is counted", async () => {
      const tenant = await vault.newTenant([...SCOPES]);
      const older = await tokenize(vault, tenant.key, { card: cardOf(CARDS.jcb) });
      const other = await tokenize(vault, tenant.key, { card: cardOf(CARDS.visa) });
      const { job } = await vault.core.lifecycle.rotateDek("fingerprint", tenant.tenantId, ACTOR);
      // Before the job runs, the same card again: under the new key its dedupe key does not
      // match the older token's yet, so it gets a token of its own (documented).
      const newer = await tokenize(vault, tenant.key, { card: cardOf(CARDS.jcb) });
      expect(newer.duplicate).toBe(false);
      expect(newer.id).not.toBe(older.id);

      // One token a batch: two batches (transactions) in flight at once.
      const run = await vault.core.lifecycle.runJob(job!.id, ACTOR, { batchSize: 1 });
      expect(run.job).toMatchObject({ state: "done", done: 2, dedupe_cleared: 1 });
      const { rows } = await vault.core.db.query<{ id: string; dedupe_key: string | null }>(
        "SELECT id, dedupe_key FROM tokens WHERE tenant_id = $1",
        [tenant.tenantId],
      );
      const dedupe = new Map(rows.map((r) => [r.id, r.dedupe_key]));
      expect(dedupe.get(older.id)).not.toBeNull();
      expect(dedupe.get(newer.id)).toBeNull();
      expect(dedupe.get(other.id)).not.toBeNull();
      // The card deduplicates to the older token from now on.
      const again = await tokenize(vault, tenant.key, { card: cardOf(CARDS.jcb) });
      expect(again).toMatchObject({ id: older.id, duplicate: true });
      const events = (await auditRows(vault, "key.reencrypt")).filter(
        (e) => e.object_id === job!.id,
      );
      expect(events.reduce((sum, e) => sum + Number(e.details.dedupe_cleared), 0)).toBe(1);
      expect(reencryptedIn(events, job!.id)).toBe(2);
    });

    it("the key.reencrypt events count the tokens actually moved, not those attempted", async () => {
      const tenant = await vault.newTenant([...SCOPES]);
      const made = [];
      for (const number of [CARDS.visa, CARDS.amex, CARDS.mastercard, CARDS.discover]) {
        made.push(await tokenize(vault, tenant.key, { card: cardOf(number), persistent: true }));
      }
      const { job } = await vault.core.lifecycle.rotateDek("pan", tenant.tenantId, ACTOR);
      // Two tokens are deleted between the job reading its batch and writing it.
      const victims = [made[1]!.id, made[3]!.id];
      const db = vault.core.db;
      let interfered = false;
      const racing: Database = {
        ...db,
        kind: db.kind,
        transaction: (work) => db.transaction(work),
        async query(sql, params) {
          if (!interfered && sql.includes("UPDATE tokens t SET dek_id")) {
            interfered = true;
            await db.query("DELETE FROM tokens WHERE id = ANY($1::text[])", [victims]);
          }
          return db.query(sql, params);
        },
      };
      const lifecycle = new KeyLifecycle(
        racing,
        vault.core.keyManager,
        vault.core.keys,
        vault.core.audit,
        clock,
      );
      const run = await lifecycle.runJob(job!.id, ACTOR);
      expect(interfered).toBe(true);
      expect(run.movedThisRun).toBe(2);
      expect(run.job).toMatchObject({ state: "done", done: 2 });
      expect(reencryptedIn(await auditRows(vault, "key.reencrypt"), job!.id)).toBe(2);
    });

    it("one KEK rotation at a time across nodes: a second one is 409 ROTATION_IN_PROGRESS, never a second new version", async () => {
      const inside = gate();
      const release = gate();
      const realKm = vault.core.keyManager;
      const slowKm = withOverrides<KeyManager>(realKm, {
        async rewrapKey(wrapped, context) {
          inside.open();
          await release.opened;
          return realKm.rewrapKey(wrapped, context);
        },
      });
      const here = new KeyLifecycle(
        vault.core.db,
        slowKm,
        vault.core.keys,
        vault.core.audit,
        clock,
      );
      // Some live DEK to re-wrap, so the rotation is seen mid-way.
      await vault.core.keys.activeKey({ owner: vault.tenantId, purpose: "sad" });
      const before = kekOf(realKm, "live").currentVersion;
      const node = await otherNode(vault, clock, true);
      let rotation: Promise<unknown> = Promise.resolve();
      try {
        rotation = here.rotateKek("live", ACTOR);
        await inside.opened;
        // Mid-rotation (new version made, DEKs being re-wrapped), another node tries.
        expect(await rejection(node.core.lifecycle.rotateKek("live", ACTOR))).toMatchObject({
          code: "ROTATION_IN_PROGRESS",
          status: 409,
        });
        expect(await rejection(node.core.lifecycle.rewrap("live", ACTOR))).toMatchObject({
          code: "ROTATION_IN_PROGRESS",
        });
        // A ceremony approved there fails the same way, marked failed.
        const proposed = await node.core.ceremonies.propose(
          "kek.rotate",
          { environment: "live" },
          "cli:alice",
        );
        expect(await rejection(node.core.ceremonies.approve(proposed.id, "cli:bob"))).toMatchObject(
          { code: "ROTATION_IN_PROGRESS" },
        );
        expect((await node.core.ceremonies.get(proposed.id)).state).toBe("failed");
        // The other node's maintenance leaves the re-wrap to the rotating node.
        expect((await runMaintenance(node.core, false)).rewrapped).toBe(0);
        release.open();
        await rotation;
        const fresh = await LocalKeyManager.open(join(vault.dataDir, "kek.json"), {
          create: false,
        });
        try {
          const versions = kekOf(fresh, "live").versions.map((v) => v.version);
          expect(versions).toEqual(Array.from({ length: before + 1 }, (_, i) => i + 1));
        } finally {
          await fresh.close();
        }
        // Once it is over, the next rotation is fine.
        const next = await node.core.lifecycle.rotateKek("live", ACTOR);
        expect(next.kek.currentVersion).toBe(before + 2);
      } finally {
        release.open();
        await rotation.catch(() => undefined);
        await node.close();
      }
    });

    it("one DEK rotation of a purpose at a time across nodes: the second is 409 and starts no second job", async () => {
      const tenant = await vault.newTenant([...SCOPES]);
      await tokenize(vault, tenant.key, { card: cardOf(CARDS.visa), persistent: true });
      const inside = gate();
      const release = gate();
      const ring = vault.core.keys;
      const slowRing = withOverrides<KeyRing>(ring, {
        async rotate(slot) {
          inside.open();
          await release.opened;
          return ring.rotate(slot);
        },
      });
      const here = new KeyLifecycle(
        vault.core.db,
        vault.core.keyManager,
        slowRing,
        vault.core.audit,
        clock,
      );
      const node = await otherNode(vault, clock, true);
      let rotation: Promise<unknown> = Promise.resolve();
      try {
        rotation = here.rotateDek("pan", tenant.tenantId, ACTOR);
        await inside.opened;
        expect(
          await rejection(node.core.lifecycle.rotateDek("pan", tenant.tenantId, ACTOR)),
        ).toMatchObject({ code: "ROTATION_IN_PROGRESS", status: 409 });
        release.open();
        await rotation;
        const { rows } = await vault.core.db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM key_rotation_jobs WHERE tenant_id = $1 AND purpose = 'pan'",
          [tenant.tenantId],
        );
        expect(rows[0]?.n).toBe(1);
        // Afterwards the other node resumes that job rather than rotating again.
        expect(await node.core.lifecycle.rotateDek("pan", tenant.tenantId, ACTOR)).toMatchObject({
          resumed: true,
          rotated: [],
        });
      } finally {
        release.open();
        await rotation.catch(() => undefined);
        await node.close();
      }
    });
  });
}

for (const driver of DRIVERS) rotationSafety(driver);
