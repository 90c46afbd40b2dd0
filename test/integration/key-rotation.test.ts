import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kekOf } from "../../src/keys/key-manager.js";
import { KeyRing } from "../../src/keys/key-ring.js";
import { verifyAuditChain } from "../../src/services/audit/audit-verify.js";
import type { JobProgress, LifecycleClock } from "../../src/services/keys/key-lifecycle.js";
import { runMaintenance } from "../../src/services/maintenance.js";
import {
  auditRows,
  auth,
  CARDS,
  cardOf,
  expectProblem,
  keyIdOf,
  tokenize,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

const DAY_MS = 86_400_000;
const ACTOR = "test:rotation";
const TOKEN_SCOPES = ["tokens:write", "tokens:read", "tokens:reveal"] as const;
const NUMBERS = Object.values(CARDS);

/** A clock the test moves by hand; the lifecycle's waits move it on instead of sleeping. */
class ManualClock implements LifecycleClock {
  constructor(private ms: number) {}
  now(): Date {
    return new Date(this.ms);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
  async sleep(ms: number): Promise<void> {
    this.advance(ms);
  }
}

/**
 * Wall-clock time, except that the lifecycle's waits (RETIREMENT_SETTLE_MS after a rotation)
 * move it on at once instead of sleeping.
 */
class SkippingClock implements LifecycleClock {
  private offset = 0;
  readonly waits: number[] = [];
  now(): Date {
    return new Date(Date.now() + this.offset);
  }
  async sleep(ms: number): Promise<void> {
    this.waits.push(ms);
    this.offset += ms;
  }
}

/** What a token was made from, to compare with its reveal. */
interface Made {
  readonly id: string;
  readonly key: string;
  readonly number: string;
  readonly expMonth: number;
}

interface TokenBits {
  id: string;
  tenant_id: string;
  dek_id: string;
  ciphertext: Buffer;
  fingerprint: string;
  fingerprint_key_id: string;
}

async function tokenBits(vault: TestVault, tenantId?: string): Promise<Map<string, TokenBits>> {
  const { rows } = await vault.core.db.query<TokenBits>(
    `SELECT id, tenant_id, dek_id, ciphertext, fingerprint, fingerprint_key_id FROM tokens
      WHERE $1::text IS NULL OR tenant_id = $1`,
    [tenantId ?? null],
  );
  return new Map(rows.map((row) => [row.id, row]));
}

/** Tokens whose PAN key is not the newest version of its (tenant, environment, epoch) slot. */
async function tokensOffNewestKey(vault: TestVault, tenantId?: string): Promise<string[]> {
  const { rows } = await vault.core.db.query<{ id: string }>(
    `SELECT t.id FROM tokens t JOIN data_keys k ON k.id = t.dek_id
      WHERE ($1::text IS NULL OR t.tenant_id = $1)
        AND (k.retired_at IS NOT NULL OR k.version <> (
          SELECT max(n.version) FROM data_keys n
           WHERE n.owner = k.owner AND n.environment = k.environment AND n.purpose = 'pan'
             AND n.epoch = k.epoch))`,
    [tenantId ?? null],
  );
  return rows.map((r) => r.id);
}

async function revealAll(vault: TestVault, made: readonly Made[]): Promise<void> {
  for (const token of made) {
    const res = await vault.app.inject({
      method: "POST",
      url: `/v1/tokens/${token.id}/reveal`,
      headers: auth(token.key),
      payload: { purpose: "key rotation test" },
    });
    expect(res.statusCode, res.body).toBe(200);
    const card = res.json<{ card: { number: string; exp_month: number } }>().card;
    expect(card.number).toBe(token.number);
    expect(card.exp_month).toBe(token.expMonth);
  }
}

/**
 * `count` tokens with distinct (number, exp_month) pairs, spread over retention policies so the
 * PAN keys of several expiry epochs are in use: persistent, the tenant default (30 days), and
 * explicit expiries 40, 75 and 110 days ahead.
 */
async function makeTokens(
  vault: TestVault,
  key: string,
  count: number,
  now: number,
  offset = 0,
): Promise<Made[]> {
  const made: Made[] = [];
  for (let i = 0; i < count; i++) {
    const n = i + offset;
    const number = NUMBERS[n % NUMBERS.length] as string;
    const expMonth = (Math.floor(n / NUMBERS.length) % 12) + 1;
    const kind = n % 5;
    const retention =
      kind === 0
        ? { persistent: true }
        : kind === 1
          ? {}
          : { expires_at: new Date(now + [40, 75, 110][kind - 2]! * DAY_MS).toISOString() };
    const body = await tokenize(vault, key, {
      card: cardOf(number, { exp_month: expMonth }),
      dedupe: false,
      ...retention,
    });
    made.push({ id: body.id, key, number, expMonth });
  }
  return made;
}

async function dataKeyIds(vault: TestVault, where: string, params: unknown[] = []) {
  const { rows } = await vault.core.db.query<{ id: string }>(
    `SELECT id FROM data_keys WHERE ${where} ORDER BY id`,
    params,
  );
  return rows.map((r) => r.id);
}

function tokensInEvents(rows: { object_id: string | null; details: Record<string, unknown> }[]) {
  return rows.reduce((sum, row) => sum + Number(row.details.tokens), 0);
}

for (const driver of DRIVERS) {
  describe(`key rotation on ${driver.name}`, () => {
    let vault: TestVault;

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock: new SkippingClock() });
    });
    afterAll(async () => vault?.close());

    it("KEK rotation by dual control re-wraps every DEK and re-encrypts no card data", async () => {
      const tenant = await vault.newTenant([...TOKEN_SCOPES]);
      const testKey = await vault.newKey(tenant.tenantId, [...TOKEN_SCOPES], "test");
      const made = [
        ...(await makeTokens(vault, tenant.key, 12, Date.now())),
        ...(await makeTokens(vault, testKey, 6, Date.now(), 3)),
      ];
      const before = await tokenBits(vault);
      const second = await vault.newKey(vault.tenantId, ["sys:admin"]);

      const proposed = await vault.app.inject({
        method: "POST",
        url: "/v1/sys/ceremonies",
        headers: auth(vault.adminKey),
        payload: { action: "kek.rotate", params: { environment: "both" } },
      });
      expect(proposed.statusCode, proposed.body).toBe(201);
      const ceremonyId = proposed.json<{ id: string }>().id;
      // Nothing happens on the proposal alone.
      expect(kekOf(vault.core.keyManager, "live").currentVersion).toBe(1);
      // The proposer cannot approve it.
      const self = await vault.app.inject({
        method: "POST",
        url: `/v1/sys/ceremonies/${ceremonyId}/approve`,
        headers: auth(vault.adminKey),
      });
      expectProblem(self, "CEREMONY_SELF_APPROVAL");
      expect(kekOf(vault.core.keyManager, "live").currentVersion).toBe(1);

      const approved = await vault.app.inject({
        method: "POST",
        url: `/v1/sys/ceremonies/${ceremonyId}/approve`,
        headers: auth(second),
      });
      expect(approved.statusCode, approved.body).toBe(200);
      const outcome = approved.json<{
        state: string;
        result: Record<string, { kek_version: number; rewrapped: number }>;
      }>();
      expect(outcome.state).toBe("executed");
      expect(outcome.result.live?.kek_version).toBe(2);
      expect(outcome.result.test?.kek_version).toBe(2);

      // Every DEK that still exists is wrapped under version 2 of its environment's KEK.
      const { rows: keys } = await vault.core.db.query<{
        id: string;
        owner: string;
        purpose: "pan";
        environment: "live" | "test";
        kek_id: string;
        kek_version: number;
      }>(
        "SELECT id, owner, purpose, environment, kek_id, kek_version FROM data_keys WHERE destroyed_at IS NULL",
      );
      expect(keys.length).toBeGreaterThan(4);
      for (const key of keys) {
        expect(key.kek_version, key.id).toBe(2);
        expect(key.kek_id).toBe(kekOf(vault.core.keyManager, key.environment).kekId);
      }
      expect(outcome.result.live!.rewrapped + outcome.result.test!.rewrapped).toBe(keys.length);
      // The new wraps unwrap to the same DEKs: a ring with an empty cache reads them fresh.
      const fresh = new KeyRing(vault.core.db, vault.core.keyManager, vault.core.clock, {
        cacheTtlMs: 60_000,
        auditCreation: () => Promise.reject(new Error("no key may be created here")),
      });
      try {
        for (const key of keys) {
          const unwrapped = await fresh.keyById(key.id, key.owner, key.purpose);
          const cached = await vault.core.keys.keyById(key.id, key.owner, key.purpose);
          expect(unwrapped.material.equals(cached.material), key.id).toBe(true);
        }
      } finally {
        fresh.close();
      }
      // No card data was touched: every ciphertext byte is as it was, and every token reveals.
      const after = await tokenBits(vault);
      for (const [id, row] of before) {
        expect(after.get(id)?.ciphertext.equals(row.ciphertext), id).toBe(true);
        expect(after.get(id)?.dek_id).toBe(row.dek_id);
      }
      await revealAll(vault, made);

      const [propose] = await auditRows(vault, "ceremony.propose");
      expect(propose).toMatchObject({ actor: keyIdOf(vault.adminKey), object_id: ceremonyId });
      const approvals = await auditRows(vault, "ceremony.approve");
      expect(approvals).toContainEqual(
        expect.objectContaining({
          actor: keyIdOf(second),
          object_id: ceremonyId,
          outcome: "success",
        }),
      );
      expect(approvals).toContainEqual(
        expect.objectContaining({ actor: keyIdOf(vault.adminKey), outcome: "denied" }),
      );
      const rotations = await auditRows(vault, "kek.rotate");
      expect(rotations.map((r) => r.details.environment).sort()).toEqual(["live", "test"]);
      const rewraps = await auditRows(vault, "kek.rewrap");
      expect(rewraps.reduce((sum, r) => sum + Number(r.details.keys), 0)).toBe(keys.length);
      expect((await verifyAuditChain(vault.core.db, vault.core.keys)).brokenLink).toBeUndefined();
    });

    it("DEK rotation moves every token to the newest key of its epoch, per tenant or everywhere", async () => {
      const a = await vault.newTenant([...TOKEN_SCOPES]);
      const aTest = await vault.newKey(a.tenantId, [...TOKEN_SCOPES], "test");
      const b = await vault.newTenant([...TOKEN_SCOPES]);
      const madeA = [
        ...(await makeTokens(vault, a.key, 42, Date.now())),
        ...(await makeTokens(vault, aTest, 8, Date.now(), 7)),
      ];
      const madeB = await makeTokens(vault, b.key, 10, Date.now(), 2);
      const epochs = await vault.core.db.query<{ n: number }>(
        "SELECT count(DISTINCT k.epoch)::int AS n FROM tokens t JOIN data_keys k ON k.id = t.dek_id WHERE t.tenant_id = $1",
        [a.tenantId],
      );
      expect(epochs.rows[0]?.n).toBeGreaterThanOrEqual(4);
      const oldA = await dataKeyIds(vault, "owner = $1 AND purpose = 'pan'", [a.tenantId]);
      const beforeA = await tokenBits(vault, a.tenantId);

      // Scoped to tenant B: A is not touched.
      const scoped = await vault.core.lifecycle.rotateDek("pan", b.tenantId, ACTOR);
      expect(scoped.resumed).toBe(false);
      expect(scoped.rotated.every((k) => k.owner === b.tenantId)).toBe(true);
      expect(scoped.job?.total).toBe(madeB.length);
      const scopedRun = await vault.core.lifecycle.runJob(scoped.job!.id, ACTOR);
      expect(scopedRun.movedThisRun).toBe(madeB.length);
      expect(await tokensOffNewestKey(vault, b.tenantId)).toEqual([]);
      const afterScoped = await tokenBits(vault, a.tenantId);
      for (const [id, row] of beforeA) {
        expect(afterScoped.get(id)?.dek_id).toBe(row.dek_id);
        expect(afterScoped.get(id)?.ciphertext.equals(row.ciphertext)).toBe(true);
      }
      expect(
        await dataKeyIds(vault, "owner = $1 AND purpose = 'pan' AND retired_at IS NOT NULL", [
          a.tenantId,
        ]),
      ).toEqual([]);

      // Everywhere.
      const all = await vault.core.lifecycle.rotateDek("pan", null, ACTOR);
      expect(all.resumed).toBe(false);
      expect(all.rotated.filter((k) => k.owner === a.tenantId)).toHaveLength(oldA.length);
      const run = await vault.core.lifecycle.runJob(all.job!.id, ACTOR, { batchSize: 7 });
      expect(run.job.state).toBe("done");
      expect(run.failed).toBe(0);
      expect(run.job.done).toBe(run.job.total);
      expect(run.movedThisRun).toBeGreaterThanOrEqual(madeA.length + madeB.length);
      expect(await tokensOffNewestKey(vault)).toEqual([]);
      const afterA = await tokenBits(vault, a.tenantId);
      for (const [id, row] of beforeA) {
        const now = afterA.get(id) as TokenBits;
        expect(now.dek_id).not.toBe(row.dek_id);
        expect(now.ciphertext.equals(row.ciphertext)).toBe(false);
        expect(now.ciphertext.includes(Buffer.from(now.dek_id))).toBe(true);
      }
      // The old keys only decrypt now (nothing left under them).
      expect(
        await dataKeyIds(vault, "id = ANY($1::text[]) AND retired_at IS NOT NULL", [oldA]),
      ).toEqual(oldA);
      await revealAll(vault, [...madeA, ...madeB]);

      // Running the finished job again does nothing.
      const snapshot = await tokenBits(vault);
      const again = await vault.core.lifecycle.runJob(all.job!.id, ACTOR);
      expect(again.movedThisRun).toBe(0);
      expect(again.job.state).toBe("done");
      const unchanged = await tokenBits(vault);
      for (const [id, row] of snapshot) {
        expect(unchanged.get(id)?.ciphertext.equals(row.ciphertext), id).toBe(true);
      }
      const events = await auditRows(vault, "key.reencrypt");
      expect(tokensInEvents(events.filter((e) => e.object_id === all.job!.id))).toBe(run.job.total);
      expect((await verifyAuditChain(vault.core.db, vault.core.keys)).brokenLink).toBeUndefined();
    });

    it("a job stopped after its first batch resumes under the same id and encrypts nothing twice", async () => {
      const tenant = await vault.newTenant([...TOKEN_SCOPES]);
      const made = await makeTokens(vault, tenant.key, 35, Date.now(), 1);
      const started = await vault.core.lifecycle.rotateDek("pan", tenant.tenantId, ACTOR);
      const job = started.job!;
      expect(job.total).toBe(made.length);
      const keysAfterRotation = await dataKeyIds(vault, "owner = $1", [tenant.tenantId]);

      const stop = new AbortController();
      const seen: JobProgress[] = [];
      const first = await vault.core.lifecycle.runJob(job.id, ACTOR, {
        batchSize: 10,
        signal: stop.signal,
        onProgress: (p) => {
          seen.push(p);
          stop.abort();
        },
      });
      // Two pages are in flight at once, so the stop lands after one or two batches.
      expect(seen.length).toBeGreaterThanOrEqual(1);
      expect(seen.length).toBeLessThanOrEqual(2);
      const firstRun = first.movedThisRun;
      expect([10, 20]).toContain(firstRun);
      expect(first.job).toMatchObject({ id: job.id, state: "running", done: firstRun });
      expect(await tokensOffNewestKey(vault, tenant.tenantId)).toHaveLength(made.length - firstRun);
      // Half-way, every token still reveals (old and new keys both decrypt).
      await revealAll(vault, made);

      const resumed = await vault.core.lifecycle.rotateDek("pan", tenant.tenantId, ACTOR);
      expect(resumed.resumed).toBe(true);
      expect(resumed.rotated).toEqual([]);
      expect(resumed.job?.id).toBe(job.id);
      expect(resumed.job?.done).toBe(firstRun);
      // Resuming rotated nothing again.
      expect(await dataKeyIds(vault, "owner = $1", [tenant.tenantId])).toEqual(keysAfterRotation);
      const rest = await vault.core.lifecycle.runJob(job.id, ACTOR, { batchSize: 10 });
      expect(rest.movedThisRun).toBe(made.length - firstRun);
      expect(rest.job).toMatchObject({ state: "done", done: made.length, total: made.length });
      expect(await tokensOffNewestKey(vault, tenant.tenantId)).toEqual([]);
      await revealAll(vault, made);
      // Each token was re-encrypted exactly once: the job's audit events add up to the count.
      const events = (await auditRows(vault, "key.reencrypt")).filter(
        (e) => e.object_id === job.id,
      );
      expect(tokensInEvents(events)).toBe(made.length);
      expect(events.every((e) => e.tenant_id === tenant.tenantId)).toBe(true);
    });

    it("a running job lets the event loop turn: timers and requests are served between batches", async () => {
      const tenant = await vault.newTenant([...TOKEN_SCOPES]);
      await makeTokens(vault, tenant.key, 40, Date.now(), 6);
      const { job } = await vault.core.lifecycle.rotateDek("pan", tenant.tenantId, ACTOR);
      let finished = false;
      const running = vault.core.lifecycle
        .runJob(job!.id, ACTOR, { batchSize: 2 })
        .then((result) => {
          finished = true;
          return result;
        });
      await new Promise((resolve) => setTimeout(resolve, 1));
      const timerFiredMidJob = !finished;
      const health = await vault.app.inject({ method: "GET", url: "/healthz" });
      const servedMidJob = !finished;
      const result = await running;
      expect(result.job.state).toBe("done");
      expect(health.statusCode).toBe(200);
      expect(timerFiredMidJob, "a timer waited for the whole job").toBe(true);
      expect(servedMidJob, "a request waited for the whole job").toBe(true);
    });

    it("two runners of one job never move a token twice (compare-and-set)", async () => {
      const tenant = await vault.newTenant([...TOKEN_SCOPES]);
      const made = await makeTokens(vault, tenant.key, 30, Date.now(), 4);
      const { job } = await vault.core.lifecycle.rotateDek("pan", tenant.tenantId, ACTOR);
      const [one, two] = await Promise.all([
        vault.core.lifecycle.runJob(job!.id, ACTOR, { batchSize: 4 }),
        vault.core.lifecycle.runJob(job!.id, ACTOR, { batchSize: 4 }),
      ]);
      expect(one.movedThisRun + two.movedThisRun).toBe(made.length);
      const final = await vault.core.lifecycle.job(job!.id);
      expect(final).toMatchObject({ state: "done", done: made.length });
      expect(await tokensOffNewestKey(vault, tenant.tenantId)).toEqual([]);
      await revealAll(vault, made);
      const events = (await auditRows(vault, "key.reencrypt")).filter(
        (e) => e.object_id === job!.id,
      );
      expect(tokensInEvents(events), "audited re-encryptions").toBe(made.length);
    });

    it("a token that does not decrypt is left as it was, counted as failed, and nothing else stops", async () => {
      const tenant = await vault.newTenant([...TOKEN_SCOPES]);
      const made = await makeTokens(vault, tenant.key, 6, Date.now(), 5);
      const victim = made[2] as Made;
      // Flip a byte of one ciphertext (its GCM tag no longer verifies).
      const { rows } = await vault.core.db.query<{ ciphertext: Buffer; dek_id: string }>(
        "SELECT ciphertext, dek_id FROM tokens WHERE id = $1",
        [victim.id],
      );
      const tampered = Buffer.from(rows[0]!.ciphertext);
      tampered[tampered.length - 1]! ^= 0x01;
      await vault.core.db.query("UPDATE tokens SET ciphertext = $2 WHERE id = $1", [
        victim.id,
        tampered,
      ]);
      const { job } = await vault.core.lifecycle.rotateDek("pan", tenant.tenantId, ACTOR);
      const run = await vault.core.lifecycle.runJob(job!.id, ACTOR, { batchSize: 4 });
      expect(run).toMatchObject({ movedThisRun: made.length - 1, failed: 1 });
      expect(run.job.state).toBe("done");
      expect(await tokensOffNewestKey(vault, tenant.tenantId)).toEqual([victim.id]);
      const after = await tokenBits(vault, tenant.tenantId);
      expect(after.get(victim.id)?.ciphertext.equals(tampered)).toBe(true);
      expect(after.get(victim.id)?.dek_id).toBe(rows[0]!.dek_id);
      await revealAll(
        vault,
        made.filter((t) => t !== victim),
      );
    });

    it("fingerprint rotation recomputes fingerprints, and dedupe still finds the card", async () => {
      const tenant = await vault.newTenant([...TOKEN_SCOPES]);
      const numbers = NUMBERS.slice(0, 6);
      const made: Made[] = [];
      for (const number of numbers) {
        const body = await tokenize(vault, tenant.key, { card: cardOf(number) });
        expect(body.duplicate).toBe(false);
        made.push({ id: body.id, key: tenant.key, number, expMonth: 12 });
      }
      const before = await tokenBits(vault, tenant.tenantId);
      const oldKeys = new Set([...before.values()].map((r) => r.fingerprint_key_id));
      expect(oldKeys.size).toBe(1);

      const { rotated, job } = await vault.core.lifecycle.rotateDek(
        "fingerprint",
        tenant.tenantId,
        ACTOR,
      );
      expect(rotated).toHaveLength(1);
      const newKey = rotated[0]!.id;
      expect(job?.purpose).toBe("fingerprint");
      expect(job?.total).toBe(numbers.length);
      const run = await vault.core.lifecycle.runJob(job!.id, ACTOR);
      expect(run).toMatchObject({ movedThisRun: numbers.length, failed: 0 });
      expect(run.job.state).toBe("done");

      const after = await tokenBits(vault, tenant.tenantId);
      for (const [id, row] of before) {
        const now = after.get(id) as TokenBits;
        expect(now.fingerprint_key_id).toBe(newKey);
        expect(now.fingerprint).not.toBe(row.fingerprint);
        // The card data itself was not re-encrypted.
        expect(now.ciphertext.equals(row.ciphertext)).toBe(true);
      }
      expect(
        await dataKeyIds(vault, "id = $1 AND retired_at IS NOT NULL", [[...oldKeys][0]]),
      ).toHaveLength(1);
      // Tokenizing a card again finds its token under the new key: same id, same new fingerprint.
      for (const token of made) {
        const again = await tokenize(vault, tenant.key, { card: cardOf(token.number) });
        expect(again.duplicate).toBe(true);
        expect(again.id).toBe(token.id);
        expect(again.fingerprint).toBe(after.get(token.id)?.fingerprint);
      }
      // The same card under another tenant is not a duplicate there.
      const other = await vault.newTenant([...TOKEN_SCOPES]);
      expect((await tokenize(vault, other.key, { card: cardOf(numbers[0]!) })).duplicate).toBe(
        false,
      );
      await revealAll(vault, made);
    });
  });

  describe(`scheduled rotation on ${driver.name}`, () => {
    let vault: TestVault;
    const clock = new ManualClock(Date.now());

    beforeAll(async () => {
      vault = await startTestVault(driver, {
        clock,
        env: { PAYVAULT_DEK_CRYPTOPERIOD_DAYS: "1" },
      });
    });
    afterAll(async () => vault?.close());

    it("past the configured cryptoperiod a new version takes over, and maintenance moves the old tokens", async () => {
      const tenant = await vault.newTenant([...TOKEN_SCOPES]);
      // Fixed-epoch retentions (persistent, and one explicit expiry) so a 2-day step stays in them.
      const expiresAt = new Date(clock.now().getTime() + 200 * DAY_MS).toISOString();
      const made: Made[] = [];
      const make = async (i: number, retention: Record<string, unknown>) => {
        const number = NUMBERS[i % NUMBERS.length] as string;
        const body = await tokenize(vault, tenant.key, {
          card: cardOf(number, { exp_month: (i % 12) + 1 }),
          dedupe: false,
          ...retention,
        });
        made.push({ id: body.id, key: tenant.key, number, expMonth: (i % 12) + 1 });
        return body.id;
      };
      const oldIds: string[] = [];
      for (let i = 0; i < 8; i++)
        oldIds.push(await make(i, i % 2 === 0 ? { persistent: true } : { expires_at: expiresAt }));
      const oldBits = await tokenBits(vault, tenant.tenantId);
      const oldKeys = new Set([...oldBits.values()].map((r) => r.dek_id));
      expect(oldKeys.size).toBe(2);
      const { rows: periods } = await vault.core.db.query<{
        created_at: Date;
        encrypt_until: Date;
      }>("SELECT created_at, encrypt_until FROM data_keys WHERE id = ANY($1::text[])", [
        [...oldKeys],
      ]);
      for (const row of periods) {
        expect(row.encrypt_until.getTime() - row.created_at.getTime()).toBe(DAY_MS);
      }

      clock.advance(2 * DAY_MS);
      const newIds: string[] = [];
      for (let i = 8; i < 12; i++)
        newIds.push(await make(i, i % 2 === 0 ? { persistent: true } : { expires_at: expiresAt }));
      const mid = await tokenBits(vault, tenant.tenantId);
      for (const id of newIds) {
        const dek = mid.get(id)?.dek_id as string;
        expect(oldKeys.has(dek)).toBe(false);
      }
      const retired = await dataKeyIds(vault, "id = ANY($1::text[]) AND retired_at IS NOT NULL", [
        [...oldKeys],
      ]);
      expect(retired).toHaveLength(2);
      expect((await tokensOffNewestKey(vault, tenant.tenantId)).sort()).toEqual([...oldIds].sort());

      const report = await runMaintenance(vault.core, true);
      expect(report.reencrypted).toBe(oldIds.length);
      expect(report.tokensPurged).toBe(0);
      expect(await tokensOffNewestKey(vault, tenant.tenantId)).toEqual([]);
      const after = await tokenBits(vault, tenant.tenantId);
      for (const [i, id] of oldIds.entries()) {
        // The key the new tokens of the same retention (persistent or the explicit expiry) use.
        expect(after.get(id)?.dek_id).toBe(mid.get(newIds[i % 2] as string)?.dek_id);
        expect(oldKeys.has(after.get(id)?.dek_id as string)).toBe(false);
        expect(after.get(id)?.ciphertext.equals(oldBits.get(id)?.ciphertext as Buffer)).toBe(false);
      }
      // New tokens were already on the new keys: untouched.
      for (const id of newIds)
        expect(after.get(id)?.ciphertext.equals(mid.get(id)!.ciphertext)).toBe(true);
      await revealAll(vault, made);
      // A second pass finds nothing to do.
      expect((await runMaintenance(vault.core, true)).reencrypted).toBe(0);
    });
  });
}
