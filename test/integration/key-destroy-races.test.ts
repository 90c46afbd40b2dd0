import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEventRow } from "../../src/audit/audit-event.js";
import { openEnvelope, sealEnvelope } from "../../src/crypto/envelope.js";
import type { VaultError } from "../../src/errors/registry.js";
import type { LifecycleClock } from "../../src/services/keys/key-lifecycle.js";
import { destroyDataKeyAudited, lockDataKeyForDestroy } from "../../src/store/data-keys-repo.js";
import type { Database } from "../../src/store/database.js";
import { applyReencryption } from "../../src/store/key-lifecycle-repo.js";
import { openPostgresDatabase } from "../../src/store/postgres-database.js";
import type { TokenRow } from "../../src/store/tokens-repo.js";
import { extendTokenRetention, insertTokenAudited } from "../../src/store/tokens-repo.js";
import {
  auditRows,
  auth,
  CARDS,
  cardOf,
  EXP_MONTH,
  EXP_YEAR,
  expectFieldError,
  expectProblem,
  randomTokenId,
  tokenize,
} from "../support/api-fixtures.js";
import type { Driver } from "../support/databases.js";
import { DRIVERS, POSTGRES_URL } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/**
 * Key destruction against concurrent token writes (PCI DSS 3.7.5, 3.2.1): a token is never
 * written under a destroyed key, and a key is never destroyed under a token written while the
 * destruction ran. The interleavings are forced, not hoped for: a second connection holds one
 * side's transaction open while the other side is shown to be waiting for it
 * (pg_blocking_pids). Those run on PostgreSQL only: PGlite has one connection, so the race
 * cannot happen there.
 */

const SCOPES = ["tokens:write", "tokens:read", "tokens:reveal"] as const;
const ACTOR = "test:destroy";

/** A clock the test moves by hand; the lifecycle's waits move it on instead of sleeping. */
class ManualClock implements LifecycleClock {
  constructor(private ms: number) {}
  now(): Date {
    return new Date(this.ms);
  }
  set(at: Date): void {
    this.ms = at.getTime();
  }
  async sleep(ms: number): Promise<void> {
    this.ms += ms;
  }
}

/** A second pool on the vault's own PostgreSQL schema: another node, or an operator's session. */
async function secondPool(vault: TestVault): Promise<Database> {
  const { rows } = await vault.core.db.query<{ schema: string }>(
    "SELECT current_schema() AS schema",
  );
  return openPostgresDatabase({
    connectionString: POSTGRES_URL as string,
    poolSize: 4,
    schema: rows[0]?.schema as string,
  });
}

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/**
 * Waits until some backend is blocked by `holderPid` (a lock it holds), or fails if `contender`
 * settles first: then it did not wait for the lock at all.
 */
async function blockedBy(vault: TestVault, holderPid: number, contender: Promise<unknown>) {
  let settled = false;
  void contender.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  for (let i = 0; i < 400; i++) {
    const { rows } = await vault.core.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))",
      [holderPid],
    );
    if ((rows[0]?.n ?? 0) > 0) return;
    expect(settled, "it went ahead without waiting for the other transaction").toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error("nothing ever waited for the other transaction");
}

async function pidOf(tx: { query: Database["query"] }): Promise<number> {
  const { rows } = await tx.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
  return rows[0]?.pid as number;
}

async function tokenRow(vault: TestVault, id: string): Promise<TokenRow> {
  const { rows } = await vault.core.db.query<TokenRow>(
    `SELECT tenant_id, id, format, brand, bin, last4, exp_month, exp_year, fingerprint, dedupe_key,
            dek_id, ciphertext, metadata, created_at, expires_at, environment, persistent,
            fingerprint_key_id
       FROM tokens WHERE id = $1`,
    [id],
  );
  if (rows[0] === undefined) throw new Error(`no token ${id}`);
  return rows[0];
}

async function keyState(vault: TestVault, id: string) {
  const { rows } = await vault.core.db.query<{ destroyed: boolean }>(
    "SELECT destroyed_at IS NOT NULL AS destroyed FROM data_keys WHERE id = $1",
    [id],
  );
  return rows[0];
}

/**
 * A token of `number` under `dekId`, sealed as the vault seals one (what another node's insert
 * or a re-encryption would write), with its `token.create` event.
 */
async function tokenUnder(
  vault: TestVault,
  like: TokenRow,
  dekId: string,
  number: string,
  expiresAt: Date,
): Promise<{ row: TokenRow; event: AuditEventRow }> {
  const id = randomTokenId();
  const key = await vault.core.keys.keyById(dekId, like.tenant_id, "pan");
  const plaintext = Buffer.from(
    JSON.stringify({ number, exp_month: EXP_MONTH, exp_year: EXP_YEAR }),
  );
  const row: TokenRow = {
    ...like,
    id,
    bin: number.slice(0, 8),
    last4: number.slice(-4),
    dedupe_key: null,
    dek_id: dekId,
    ciphertext: sealEnvelope({
      dekId,
      key: key.material,
      plaintext,
      context: { tenantId: like.tenant_id, objectId: id, purpose: "pan" },
    }),
    created_at: vault.core.clock.now(),
    expires_at: expiresAt,
    persistent: false,
  };
  const event = await vault.core.audit.build({
    tenantId: like.tenant_id,
    actor: "test:other-node",
    action: "token.create",
    objectId: id,
    outcome: "success",
    details: {},
  });
  return { row, event };
}

async function rejection(attempt: Promise<unknown>): Promise<VaultError> {
  return attempt.then(
    () => {
      throw new Error("expected a rejection");
    },
    (err: unknown) => err as VaultError,
  );
}

function destroyRaces(driver: Driver): void {
  describe(`key destruction and token writes on ${driver.name}`, () => {
    // 10 January of next year: a token kept 10 days is in epoch YYYY-01, over on 1 February.
    const year = new Date().getUTCFullYear() + 1;
    const clock = new ManualClock(Date.UTC(year, 0, 10));
    let vault: TestVault;

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock });
    });
    afterAll(async () => vault?.close());

    it.skipIf(driver.name !== "postgres")(
      "a token write waits for a destruction in progress and then goes under a live key, never the destroyed one",
      async () => {
        const tenant = await vault.newTenant([...SCOPES]);
        const first = await tokenize(vault, tenant.key, {
          card: cardOf(CARDS.visa),
          persistent: true,
        });
        const dek = (await tokenRow(vault, first.id)).dek_id;
        const other = await secondPool(vault);
        const release = gate();
        let destruction: Promise<unknown> = Promise.resolve();
        try {
          // Another node destroys the key (a forced dual-control destruction): locked, erased,
          // audited, not yet committed.
          const locked = gate();
          let holder = 0;
          destruction = other.transaction(async (tx) => {
            holder = await pidOf(tx);
            await lockDataKeyForDestroy(tx, dek);
            const event = await vault.core.audit.build({
              tenantId: tenant.tenantId,
              actor: ACTOR,
              action: "key.destroy",
              objectId: dek,
              outcome: "success",
              details: { reason: "race test", forced: true, tokens_unreadable: 1 },
            });
            expect(await destroyDataKeyAudited(tx, dek, clock.now(), event, true)).toBe(true);
            locked.open();
            await release.opened;
          });
          await locked.opened;
          // This node still holds the key as its current one, and tokenizes a new card.
          const write = tokenize(vault, tenant.key, {
            card: cardOf(CARDS.mastercard),
            persistent: true,
          });
          await blockedBy(vault, holder, write);
          release.open();
          await destruction;
          const second = await write;
          const row = await tokenRow(vault, second.id);
          expect(row.dek_id).not.toBe(dek);
          const revealed = await vault.app.inject({
            method: "POST",
            url: `/v1/tokens/${second.id}/reveal`,
            headers: auth(tenant.key),
            payload: { purpose: "race test" },
          });
          expect(revealed.statusCode, revealed.body).toBe(200);
          expect(await keyState(vault, dek)).toEqual({ destroyed: true });
        } finally {
          release.open();
          await destruction.catch(() => undefined);
          await other.close();
        }
      },
    );

    it.skipIf(driver.name !== "postgres")(
      "retention waits for a token write in progress under an empty epoch key, and then keeps the key",
      async () => {
        clock.set(new Date(Date.UTC(year, 0, 10)));
        const tenant = await vault.newTenant([...SCOPES]);
        const expiring = await tokenize(vault, tenant.key, {
          card: cardOf(CARDS.amex),
          expires_at: new Date(Date.UTC(year, 0, 20)).toISOString(),
        });
        const like = await tokenRow(vault, expiring.id);
        const dek = like.dek_id;
        // 2 February: the token is past retention, its epoch (January) is over.
        clock.set(new Date(Date.UTC(year, 1, 2)));
        // Past retention too (e.g. an expired token a re-encryption moved to the epoch's newest
        // key): it keeps the key until a purge has deleted it.
        const late = await tokenUnder(
          vault,
          like,
          dek,
          CARDS.discover,
          new Date(Date.UTC(year, 0, 25)),
        );
        const other = await secondPool(vault);
        const release = gate();
        let writer: Promise<unknown> = Promise.resolve();
        try {
          // Another node's write under the key (an insert, or a re-encryption into the newest
          // version of the epoch), not yet committed.
          const written = gate();
          let holder = 0;
          writer = other.transaction(async (tx) => {
            holder = await pidOf(tx);
            expect(await insertTokenAudited(tx, late.row, late.event)).toBe(true);
            written.open();
            await release.opened;
          });
          await written.opened;
          const purge = vault.core.retention.purge(ACTOR);
          await blockedBy(vault, holder, purge);
          release.open();
          await writer;
          const result = await purge;
          // The expired token went; the key did not, because a token is under it now.
          expect(result.tokensPurged).toBeGreaterThanOrEqual(1);
          expect(result.keysDestroyed).not.toContain(dek);
          expect(await keyState(vault, dek)).toEqual({ destroyed: false });
          const stored = await tokenRow(vault, late.row.id);
          const key = await vault.core.keys.keyById(dek, tenant.tenantId, "pan");
          const opened = openEnvelope(stored.ciphertext, key.material, {
            tenantId: tenant.tenantId,
            objectId: late.row.id,
            purpose: "pan",
          });
          expect(JSON.parse(opened.toString()).number).toBe(CARDS.discover);
        } finally {
          release.open();
          await writer.catch(() => undefined);
          await other.close();
        }
      },
    );

    it.skipIf(driver.name !== "postgres")(
      "a dek.destroy waits for a token write in progress and then refuses with KEY_IN_USE, counting it",
      async () => {
        clock.set(new Date(Date.UTC(year, 0, 10)));
        const tenant = await vault.newTenant([...SCOPES]);
        // A spare key (another epoch) with no token under it yet.
        const spare = await vault.core.keys.activeKey({
          owner: tenant.tenantId,
          purpose: "pan",
          environment: "live",
          epoch: `${year}-07`,
        });
        const some = await tokenize(vault, tenant.key, { card: cardOf(CARDS.visa) });
        const like = await tokenRow(vault, some.id);
        const late = await tokenUnder(
          vault,
          like,
          spare.id,
          CARDS.mastercard,
          new Date(Date.UTC(year, 6, 15)),
        );
        const other = await secondPool(vault);
        const release = gate();
        let writer: Promise<unknown> = Promise.resolve();
        try {
          const written = gate();
          let holder = 0;
          writer = other.transaction(async (tx) => {
            holder = await pidOf(tx);
            expect(await insertTokenAudited(tx, late.row, late.event)).toBe(true);
            written.open();
            await release.opened;
          });
          await written.opened;
          const destroy = rejection(vault.core.lifecycle.destroyKey(spare.id, ACTOR, "race test"));
          await blockedBy(vault, holder, destroy);
          release.open();
          await writer;
          const err = await destroy;
          expect(err).toMatchObject({ code: "KEY_IN_USE", status: 409 });
          expect(err.detail).toMatch(/^1 token\(s\) are still under this key/);
          expect(await keyState(vault, spare.id)).toEqual({ destroyed: false });
        } finally {
          release.open();
          await writer.catch(() => undefined);
          await other.close();
        }
      },
    );

    it("a retention extension or a re-encryption never moves a token under a destroyed key", async () => {
      clock.set(new Date(Date.UTC(year, 0, 10)));
      const tenant = await vault.newTenant([...SCOPES]);
      const token = await tokenize(vault, tenant.key, { card: cardOf(CARDS.jcb) });
      const before = await tokenRow(vault, token.id);
      const target = await vault.core.keys.activeKey({
        owner: tenant.tenantId,
        purpose: "pan",
        environment: "live",
        epoch: `${year}-09`,
      });
      const ciphertext = sealEnvelope({
        dekId: target.id,
        key: target.material,
        plaintext: Buffer.from(JSON.stringify({ number: CARDS.jcb })),
        context: { tenantId: tenant.tenantId, objectId: token.id, purpose: "pan" },
      });
      expect(
        await vault.core.lifecycle.destroyKey(target.id, ACTOR, "destroyed before the write"),
      ).toEqual({ destroyed: true, tokens: 0 });

      const extended = await extendTokenRetention(
        vault.core.db,
        {
          tenantId: tenant.tenantId,
          id: token.id,
          oldDekId: before.dek_id,
          expiresAt: new Date(Date.UTC(year, 8, 10)),
          dekId: target.id,
          ciphertext,
        },
        await vault.core.audit.build({
          tenantId: tenant.tenantId,
          actor: ACTOR,
          action: "token.deduplicate",
          objectId: token.id,
          outcome: "success",
          details: { retention_extended: true },
        }),
      );
      expect(extended).toBeUndefined();

      const reencrypted = await applyReencryption(
        vault.core.db,
        "job_none",
        [
          {
            tenantId: tenant.tenantId,
            id: token.id,
            oldDekId: before.dek_id,
            dekId: target.id,
            ciphertext,
          },
        ],
        clock.now(),
        await vault.core.audit.build({
          tenantId: tenant.tenantId,
          actor: ACTOR,
          action: "key.reencrypt",
          objectId: "job_none",
          outcome: "success",
          details: { purpose: "pan", tokens: 1, failed: 0 },
        }),
      );
      expect(reencrypted).toEqual({ moved: 0, movable: [] });

      const after = await tokenRow(vault, token.id);
      expect(after.dek_id).toBe(before.dek_id);
      expect(after.ciphertext.equals(before.ciphertext)).toBe(true);
      expect(after.expires_at?.getTime()).toBe(before.expires_at?.getTime());
    });

    it("dek.destroy of a key with tokens is refused (409 KEY_IN_USE, with the count) unless forced; forced, the audit says so and how many", async () => {
      clock.set(new Date(Date.UTC(year, 0, 10)));
      const tenant = await vault.newTenant([...SCOPES]);
      const made = [
        await tokenize(vault, tenant.key, { card: cardOf(CARDS.visa), persistent: true }),
        await tokenize(vault, tenant.key, { card: cardOf(CARDS.amex), persistent: true }),
      ];
      const dek = (await tokenRow(vault, made[0]!.id)).dek_id;
      expect((await tokenRow(vault, made[1]!.id)).dek_id).toBe(dek);
      const second = await vault.newKey(vault.tenantId, ["sys:admin"]);
      const propose = (params: Record<string, unknown>) =>
        vault.app.inject({
          method: "POST",
          url: "/v1/sys/ceremonies",
          headers: auth(vault.adminKey),
          payload: { action: "dek.destroy", params },
        });

      const refused = expectProblem(
        await propose({ key_id: dek, reason: "suspected compromise" }),
        "KEY_IN_USE",
      );
      expect(refused.detail).toMatch(/^2 token\(s\) are still under this key/);
      expectFieldError(
        await propose({ key_id: dek, reason: "suspected compromise", force: "yes" }),
        "params.force",
        "INVALID_PARAMETER",
      );
      // Directly too (what an approved ceremony runs).
      expect(await rejection(vault.core.lifecycle.destroyKey(dek, ACTOR, "try"))).toMatchObject({
        code: "KEY_IN_USE",
      });
      expect(await keyState(vault, dek)).toEqual({ destroyed: false });

      const proposed = await propose({ key_id: dek, reason: "suspected compromise", force: true });
      expect(proposed.statusCode, proposed.body).toBe(201);
      const ceremony = proposed.json<{ id: string; params: Record<string, unknown> }>();
      expect(ceremony.params).toEqual({ key_id: dek, reason: "suspected compromise", force: true });
      const approved = await vault.app.inject({
        method: "POST",
        url: `/v1/sys/ceremonies/${ceremony.id}/approve`,
        headers: auth(second),
      });
      expect(approved.statusCode, approved.body).toBe(200);
      expect(approved.json()).toMatchObject({
        state: "executed",
        result: { destroyed: dek, tokens_unreadable: 2 },
      });
      expect(await keyState(vault, dek)).toEqual({ destroyed: true });
      const events = (await auditRows(vault, "key.destroy")).filter((e) => e.object_id === dek);
      expect(events).toEqual([
        expect.objectContaining({
          details: expect.objectContaining({
            reason: "suspected compromise",
            forced: true,
            tokens_unreadable: 2,
          }),
        }),
      ]);
      const gone = await vault.app.inject({
        method: "POST",
        url: `/v1/tokens/${made[0]!.id}/reveal`,
        headers: auth(tenant.key),
        payload: { purpose: "race test" },
      });
      expectProblem(gone, "KEY_DESTROYED");
      // An empty key needs no force, and says it made nothing unreadable.
      const spare = await vault.core.keys.activeKey({
        owner: tenant.tenantId,
        purpose: "pan",
        environment: "live",
        epoch: `${year}-11`,
      });
      expect(await vault.core.lifecycle.destroyKey(spare.id, ACTOR, "unused")).toEqual({
        destroyed: true,
        tokens: 0,
      });
      expect(
        (await auditRows(vault, "key.destroy")).find((e) => e.object_id === spare.id)?.details,
      ).toMatchObject({ forced: false, tokens_unreadable: 0 });
    });
  });
}

for (const driver of DRIVERS) destroyRaces(driver);
