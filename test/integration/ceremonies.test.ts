import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Core } from "../../src/app/core.js";
import { openCore } from "../../src/app/core.js";
import { loadConfig } from "../../src/config/config.js";
import { TENANT_SCOPES } from "../../src/domain/scopes.js";
import { ENVIRONMENTS, kekOf } from "../../src/keys/key-manager.js";
import { KeyRing } from "../../src/keys/key-ring.js";
import { LocalKeyManager } from "../../src/keys/local-key-manager.js";
import { UnsealError } from "../../src/keys/seal.js";
import { decodeShare, encodeShare } from "../../src/keys/unseal-share.js";
import type { Principal } from "../../src/services/api-keys.js";
import { verifyAuditChain } from "../../src/services/audit/audit-verify.js";
import type { Clock } from "../../src/services/clock.js";
import {
  auditRows,
  auth,
  CARDS,
  cardOf,
  countRows,
  expectFieldError,
  expectProblem,
  keyIdOf,
  tokenize,
} from "../support/api-fixtures.js";
import type { CliResult } from "../support/cli-runner.js";
import { runCli } from "../support/cli-runner.js";
import { cliStoreEnv } from "../support/cli-schema.js";
import type { Driver } from "../support/databases.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/**
 * Dual control and split knowledge (issue 3, point 4; PCI DSS 3.6.1.2, 3.7.6): key ceremonies
 * over HTTP (/v1/sys/ceremonies) and the CLI. One sys:admin principal proposes, a different one
 * approves before the proposal expires; every step is in the audit chain.
 */

const HOUR = 3_600_000;
const SLOW = 180_000;

class TestClock implements Clock {
  constructor(private t: number) {}
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

interface CeremonyView {
  id: string;
  action: string;
  params: Record<string, unknown>;
  state: string;
  proposed_by: string;
  proposed_at: string;
  expires_at: string;
  decided_by: string | null;
  decided_at: string | null;
  result?: Record<string, unknown>;
}

async function rejection(attempt: Promise<unknown>): Promise<unknown> {
  return attempt.then(
    () => undefined,
    (err: unknown) => err,
  );
}

/** The audit trail of one object, in commit order. */
async function trailOf(core: Core, objectId: string) {
  const { rows } = await core.db.query<{ action: string; outcome: string; actor: string }>(
    "SELECT action, outcome, actor FROM audit_events WHERE object_id = $1 ORDER BY txid, id",
    [objectId],
  );
  return rows;
}

async function expectChainIntact(core: Core): Promise<void> {
  await core.sealer.sealPending();
  const report = await verifyAuditChain(core.db, core.keys);
  expect(report.brokenLink).toBeUndefined();
  expect(report.unsealed).toBe(0);
  expect(report.sealed).toBeGreaterThan(0);
}

function ceremonyApi(vault: TestVault) {
  return {
    propose: (key: string, action: string, params?: Record<string, unknown>) =>
      vault.app.inject({
        method: "POST",
        url: "/v1/sys/ceremonies",
        headers: auth(key),
        payload: params === undefined ? { action } : { action, params },
      }),
    approve: (key: string, id: string) =>
      vault.app.inject({
        method: "POST",
        url: `/v1/sys/ceremonies/${id}/approve`,
        headers: auth(key),
      }),
    reject: (key: string, id: string) =>
      vault.app.inject({
        method: "POST",
        url: `/v1/sys/ceremonies/${id}/reject`,
        headers: auth(key),
      }),
    list: (key: string) =>
      vault.app.inject({ method: "GET", url: "/v1/sys/ceremonies", headers: auth(key) }),
  };
}

function reveal(vault: TestVault, key: string, id: string) {
  return vault.app.inject({
    method: "POST",
    url: `/v1/tokens/${id}/reveal`,
    headers: auth(key),
    payload: { purpose: "ceremony test" },
  });
}

async function dekOf(core: Core, tokenId: string): Promise<string> {
  const { rows } = await core.db.query<{ dek_id: string }>(
    "SELECT dek_id FROM tokens WHERE id = $1",
    [tokenId],
  );
  return rows[0]?.dek_id as string;
}

for (const driver of DRIVERS) {
  describe(`key ceremonies over HTTP on ${driver.name}`, () => {
    const clock = new TestClock(Date.now());
    let vault: TestVault;
    let api: ReturnType<typeof ceremonyApi>;
    /** Two sys:admin principals: the bootstrap key (A) and a second operator key (B). */
    let a: string;
    let b: string;
    let tenantKey: string;
    let testEnvKey: string;

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock });
      api = ceremonyApi(vault);
      a = vault.adminKey;
      b = await vault.newKey(vault.tenantId, ["sys:admin"]);
      tenantKey = await vault.newKey(vault.tenantId, ["tokens:write", "tokens:reveal"]);
      testEnvKey = await vault.newKey(vault.tenantId, ["tokens:write", "tokens:reveal"], "test");
    });
    afterAll(async () => vault?.close());

    it("kek.rotate: proposed by A, refused to A (audited denied), executed on B's approval, then 409", async () => {
      const live = await tokenize(vault, tenantKey, { card: cardOf(CARDS.visa) });
      const test = await tokenize(vault, testEnvKey, { card: cardOf(CARDS.mastercard) });
      const km = vault.core.keyManager;
      const before = Object.fromEntries(
        ENVIRONMENTS.map((env) => [env, kekOf(km, env).currentVersion]),
      );

      const proposed = await api.propose(a, "kek.rotate", { environment: "both" });
      expect(proposed.statusCode, proposed.body).toBe(201);
      const ceremony = proposed.json() as CeremonyView;
      expect(ceremony).toMatchObject({
        id: expect.stringMatching(/^cer_[0-9A-Za-z]+$/),
        action: "kek.rotate",
        params: { environment: "both" },
        state: "pending",
        proposed_by: keyIdOf(a),
        decided_by: null,
        decided_at: null,
      });
      expect(Date.parse(ceremony.expires_at) - Date.parse(ceremony.proposed_at)).toBe(24 * HOUR);

      // The proposer cannot approve it: refused, audited as denied, nothing rotated.
      expectProblem(await api.approve(a, ceremony.id), "CEREMONY_SELF_APPROVAL");
      const denied = (await auditRows(vault, "ceremony.approve")).filter(
        (e) => e.object_id === ceremony.id,
      );
      expect(denied).toEqual([
        expect.objectContaining({
          actor: keyIdOf(a),
          outcome: "denied",
          details: expect.objectContaining({ reason: "self_approval" }),
        }),
      ]);
      for (const env of ENVIRONMENTS) expect(kekOf(km, env).currentVersion).toBe(before[env]);
      const listed = (await api.list(a)).json() as { data: CeremonyView[] };
      expect(listed.data.find((c) => c.id === ceremony.id)?.state).toBe("pending");

      // A different sys:admin principal approves: it runs.
      const deksPerEnv = Object.fromEntries(
        await Promise.all(
          ENVIRONMENTS.map(async (env) => [
            env,
            await countRows(
              vault,
              "SELECT count(*) AS n FROM data_keys WHERE environment = $1 AND destroyed_at IS NULL",
              [env],
            ),
          ]),
        ),
      );
      const approved = await api.approve(b, ceremony.id);
      expect(approved.statusCode, approved.body).toBe(200);
      const executed = approved.json() as CeremonyView;
      expect(executed).toMatchObject({
        id: ceremony.id,
        state: "executed",
        proposed_by: keyIdOf(a),
        decided_by: keyIdOf(b),
      });
      for (const env of ENVIRONMENTS) {
        const kek = kekOf(km, env);
        expect(kek.currentVersion).toBe((before[env] as number) + 1);
        expect(executed.result?.[env]).toEqual({
          kek_id: kek.kekId,
          kek_version: kek.currentVersion,
          rewrapped: deksPerEnv[env],
        });
        // Every DEK of the environment is now wrapped under the new version.
        expect(
          await countRows(
            vault,
            "SELECT count(*) AS n FROM data_keys WHERE environment = $1 AND wrapped IS NOT NULL AND kek_version <> $2",
            [env, kek.currentVersion],
          ),
        ).toBe(0);
      }
      const inventory = await vault.app.inject({
        method: "GET",
        url: "/v1/sys/keys",
        headers: auth(b),
      });
      const keks = (
        inventory.json() as { keks: { environment: string; current_version: number }[] }
      ).keks;
      for (const env of ENVIRONMENTS) {
        expect(keks.find((k) => k.environment === env)?.current_version).toBe(
          (before[env] as number) + 1,
        );
      }
      // The card data is still there, through DEKs unwrapped from the new wrapping.
      const ring = new KeyRing(vault.core.db, km, clock, {
        cacheTtlMs: 60_000,
        auditCreation: () => Promise.reject(new Error("no key creation here")),
      });
      try {
        await ring.keyById(await dekOf(vault.core, live.id), vault.tenantId, "pan");
      } finally {
        ring.close();
      }
      expect((await reveal(vault, tenantKey, live.id)).statusCode).toBe(200);
      expect((await reveal(vault, testEnvKey, test.id)).statusCode).toBe(200);

      // Audited: the rotation by both principals, the re-wraps.
      const rotations = (await auditRows(vault, "kek.rotate")).filter((e) =>
        ENVIRONMENTS.some((env) => e.details.environment === env),
      );
      expect(rotations.map((e) => e.actor)).toEqual([
        `${keyIdOf(b)}+${keyIdOf(a)}`,
        `${keyIdOf(b)}+${keyIdOf(a)}`,
      ]);
      expect((await auditRows(vault, "kek.rewrap")).length).toBeGreaterThanOrEqual(2);
      expect(await trailOf(vault.core, ceremony.id)).toEqual([
        { action: "ceremony.propose", outcome: "success", actor: keyIdOf(a) },
        { action: "ceremony.approve", outcome: "denied", actor: keyIdOf(a) },
        { action: "ceremony.approve", outcome: "success", actor: keyIdOf(b) },
      ]);

      // Decided: it cannot run twice.
      expectProblem(await api.approve(b, ceremony.id), "CEREMONY_NOT_PENDING");
      expectProblem(await api.reject(b, ceremony.id), "CEREMONY_NOT_PENDING");
      for (const env of ENVIRONMENTS)
        expect(kekOf(km, env).currentVersion).toBe((before[env] as number) + 1);
      await expectChainIntact(vault.core);
    });

    it("expires after 24 hours (410), can be rejected by the other principal, and a rejected one never runs", async () => {
      const km = vault.core.keyManager;
      const version = kekOf(km, "live").currentVersion;
      const testVersion = kekOf(km, "test").currentVersion;
      const stale = (
        await api.propose(a, "kek.rotate", { environment: "live" })
      ).json() as CeremonyView;
      clock.advance(24 * HOUR + 1);
      expectProblem(await api.approve(b, stale.id), "CEREMONY_EXPIRED");
      expect(kekOf(km, "live").currentVersion).toBe(version);

      const unwanted = (
        await api.propose(a, "kek.rotate", { environment: "test" })
      ).json() as CeremonyView;
      const rejected = await api.reject(b, unwanted.id);
      expect(rejected.statusCode, rejected.body).toBe(200);
      expect(rejected.json()).toMatchObject({
        id: unwanted.id,
        state: "rejected",
        decided_by: keyIdOf(b),
      });
      expectProblem(await api.approve(b, unwanted.id), "CEREMONY_NOT_PENDING");
      expect(kekOf(km, "test").currentVersion).toBe(testVersion);
      expect(await trailOf(vault.core, unwanted.id)).toEqual([
        { action: "ceremony.propose", outcome: "success", actor: keyIdOf(a) },
        { action: "ceremony.reject", outcome: "success", actor: keyIdOf(b) },
      ]);

      const listed = ((await api.list(b)).json() as { data: CeremonyView[] }).data;
      expect(listed.find((c) => c.id === stale.id)?.state).toBe("pending");
      expect(listed.find((c) => c.id === unwanted.id)?.state).toBe("rejected");

      expectProblem(await api.approve(b, "cer_doesnotexist"), "CEREMONY_NOT_FOUND");
      expectProblem(await api.approve(b, "not-a-ceremony"), "VALIDATION_FAILED");
      await expectChainIntact(vault.core);
    });

    it("dek.destroy: after approval the token's reveal is 410 KEY_DESTROYED (audited); new tokens get a new key", async () => {
      const { tenantId, key } = await vault.newTenant(["tokens:write", "tokens:reveal"]);
      const token = await tokenize(vault, key, { card: cardOf(CARDS.amex) });
      const dek = await dekOf(vault.core, token.id);
      expect((await reveal(vault, key, token.id)).statusCode).toBe(200);

      // The token is still under the key: only a forced destruction is accepted (KEY_IN_USE
      // otherwise, test/integration/key-destroy-races.test.ts).
      const proposed = await api.propose(a, "dek.destroy", {
        key_id: dek,
        reason: "suspected compromise",
        force: true,
      });
      expect(proposed.statusCode, proposed.body).toBe(201);
      const ceremony = proposed.json() as CeremonyView;
      // Not destroyed on the proposal alone.
      expect((await reveal(vault, key, token.id)).statusCode).toBe(200);
      expectProblem(await api.approve(a, ceremony.id), "CEREMONY_SELF_APPROVAL");

      const approved = await api.approve(b, ceremony.id);
      expect(approved.statusCode, approved.body).toBe(200);
      expect(approved.json()).toMatchObject({ state: "executed", result: { destroyed: dek } });
      const { rows } = await vault.core.db.query<{ wrapped: Buffer | null; destroyed_at: Date }>(
        "SELECT wrapped, destroyed_at FROM data_keys WHERE id = $1",
        [dek],
      );
      expect(rows[0]?.wrapped).toBeNull();
      expect(rows[0]?.destroyed_at).not.toBeNull();
      expect(await auditRows(vault, "key.destroy")).toContainEqual(
        expect.objectContaining({
          tenant_id: tenantId,
          object_id: dek,
          actor: `${keyIdOf(b)}+${keyIdOf(a)}`,
          details: expect.objectContaining({ reason: "suspected compromise" }),
        }),
      );

      const gone = await reveal(vault, key, token.id);
      expectProblem(gone, "KEY_DESTROYED");
      expect(gone.body).not.toContain(CARDS.amex);
      const failures = (await auditRows(vault, "token.reveal")).filter(
        (e) => e.object_id === token.id && e.outcome === "failure",
      );
      expect(failures).toEqual([
        expect.objectContaining({
          tenant_id: tenantId,
          actor: keyIdOf(key),
          details: expect.objectContaining({ reason: "key_destroyed", dek_id: dek }),
        }),
      ]);

      // The slot moves on to a new version; new tokens are fine.
      const next = await tokenize(vault, key, { card: cardOf(CARDS.amex2) });
      expect(await dekOf(vault.core, next.id)).not.toBe(dek);
      const revealed = await reveal(vault, key, next.id);
      expect(revealed.statusCode, revealed.body).toBe(200);

      // Proposing to destroy it again is refused up front.
      expectProblem(
        await api.propose(a, "dek.destroy", { key_id: dek, reason: "again" }),
        "KEY_DESTROYED",
      );
      await expectChainIntact(vault.core);
    });

    it("a ceremony that fails when it runs is marked failed, not executed, and audited", async () => {
      const { key } = await vault.newTenant(["tokens:write"]);
      const token = await tokenize(vault, key, { card: cardOf(CARDS.discover) });
      const dek = await dekOf(vault.core, token.id);
      const first = (
        await api.propose(a, "dek.destroy", { key_id: dek, reason: "first of two", force: true })
      ).json() as CeremonyView;
      const second = (
        await api.propose(a, "dek.destroy", { key_id: dek, reason: "second of two", force: true })
      ).json() as CeremonyView;
      expect((await api.approve(b, first.id)).statusCode).toBe(200);

      // The key went with the first: the second cannot do what it says.
      expectProblem(await api.approve(b, second.id), "KEY_DESTROYED");
      const listed = ((await api.list(a)).json() as { data: CeremonyView[] }).data;
      expect(listed.find((c) => c.id === second.id)?.state).toBe("failed");
      expect(await trailOf(vault.core, second.id)).toEqual([
        { action: "ceremony.propose", outcome: "success", actor: keyIdOf(a) },
        { action: "ceremony.approve", outcome: "success", actor: keyIdOf(b) },
        { action: "ceremony.approve", outcome: "failure", actor: keyIdOf(b) },
      ]);
      expect(
        (await auditRows(vault, "key.destroy")).filter((e) => e.object_id === dek),
      ).toHaveLength(1);
      expectProblem(await api.approve(b, second.id), "CEREMONY_NOT_PENDING");
    });

    it("refuses a system key (SYSTEM_KEY), an unknown key, bad parameters (INVALID_PARAMETER) and a caller without sys:admin", async () => {
      const { rows } = await vault.core.db.query<{ id: string; purpose: string }>(
        "SELECT id, purpose FROM data_keys WHERE owner = 'system' ORDER BY purpose",
      );
      expect(rows.map((r) => r.purpose)).toEqual(expect.arrayContaining(["apikey", "audit"]));
      const pending = await countRows(
        vault,
        "SELECT count(*) AS n FROM key_ceremonies WHERE state = 'pending'",
      );
      for (const row of rows) {
        const res = await api.propose(a, "dek.destroy", { key_id: row.id, reason: "try it" });
        expectFieldError(res, "params.key_id", "SYSTEM_KEY");
        // Nor can the lifecycle be made to do it directly.
        const err = await rejection(vault.core.lifecycle.destroyKey(row.id, "test", "try it"));
        expect(err).toMatchObject({
          code: "VALIDATION_FAILED",
          errors: [expect.objectContaining({ code: "SYSTEM_KEY" })],
        });
      }
      expect(
        await countRows(
          vault,
          "SELECT count(*) AS n FROM data_keys WHERE owner = 'system' AND wrapped IS NULL",
        ),
      ).toBe(0);
      // The vault still works on its own keys.
      await tokenize(vault, tenantKey, { card: cardOf(CARDS.jcb) });

      expectProblem(
        await api.propose(a, "dek.destroy", { key_id: "dek_doesnotexist", reason: "try it" }),
        "KEY_NOT_FOUND",
      );
      const bad: [string, Record<string, unknown> | undefined, string][] = [
        ["kek.rotate", { environment: "prod" }, "params.environment"],
        ["dek.destroy", { key_id: "tok_123", reason: "bad id" }, "params.key_id"],
        ["dek.destroy", { key_id: "dek_abc" }, "params.reason"],
        ["dek.destroy", { key_id: "dek_abc", reason: "x" }, "params.reason"],
        ["custodians.rekey", { shares: 3, threshold: 1 }, "params"],
        ["custodians.rekey", { shares: 2, threshold: 3 }, "params"],
        ["custodians.rekey", { shares: "5", threshold: 3 }, "params"],
        ["custodians.rekey", undefined, "params"],
        ["kek.destroy", {}, "action"],
      ];
      for (const [action, params, field] of bad) {
        expectFieldError(await api.propose(a, action, params), field, "INVALID_PARAMETER");
      }
      expectProblem(await api.propose(a, "", {}), "VALIDATION_FAILED");
      expect(
        await countRows(vault, "SELECT count(*) AS n FROM key_ceremonies WHERE state = 'pending'"),
      ).toBe(pending);

      // A tenant's administrator, holding every tenant scope, is not the vault's.
      const tenantAdmin = await vault.newKey(vault.tenantId, [...TENANT_SCOPES]);
      const pendingOne = (
        await api.propose(a, "kek.rotate", { environment: "test" })
      ).json() as CeremonyView;
      for (const res of [
        await api.propose(tenantAdmin, "kek.rotate", { environment: "live" }),
        await api.approve(tenantAdmin, pendingOne.id),
        await api.reject(tenantAdmin, pendingOne.id),
        await api.list(tenantAdmin),
        await vault.app.inject({ method: "GET", url: "/v1/sys/keys", headers: auth(tenantAdmin) }),
      ]) {
        expectProblem(res, "INSUFFICIENT_SCOPE");
      }
      const still = ((await api.list(b)).json() as { data: CeremonyView[] }).data;
      expect(still.find((c) => c.id === pendingOne.id)?.state).toBe("pending");
      expectProblem(
        await vault.app.inject({ method: "GET", url: "/v1/sys/ceremonies" }),
        "AUTH_MISSING",
      );
      expect((await api.reject(b, pendingOne.id)).statusCode).toBe(200);
      await expectChainIntact(vault.core);
    });

    it("a DEK destroyed by another process (e.g. `payvault ceremonies approve`) is never used for new tokens by a running node", async () => {
      const { key } = await vault.newTenant(["tokens:write", "tokens:reveal"]);
      const first = await tokenize(vault, key, { card: cardOf(CARDS.visa4) });
      const dek = await dekOf(vault.core, first.id);
      // A second core on the same store and KEK: what the CLI opens for `ceremonies approve`.
      const config = loadConfig({ PAYVAULT_DATA_DIR: vault.dataDir }, vault.dataDir);
      const other = await openCore(config, {
        db: vault.core.db,
        clock,
        keyManager: await LocalKeyManager.open(join(vault.dataDir, "kek.json"), { create: false }),
      });
      try {
        const proposed = await other.ceremonies.propose(
          "dek.destroy",
          { key_id: dek, reason: "compromise", force: true },
          "cli:alice",
        );
        await other.ceremonies.approve(proposed.id, "cli:bob");
      } finally {
        await other.close();
      }
      // The running node tokenizes a new card right after: it must not be sealed under the
      // destroyed key, or the card is lost the moment the node's key cache lets go of it.
      const next = await tokenize(vault, key, { card: cardOf(CARDS.mastercard2) });
      expect(await dekOf(vault.core, next.id)).not.toBe(dek);
      vault.core.keys.forget(dek);
      const revealed = await reveal(vault, key, next.id);
      expect(revealed.statusCode, revealed.body).toBe(200);
    });
  });

  describe(`custodians.rekey on a sealed vault on ${driver.name}`, () => {
    let dir: string;
    let vault: TestVault | undefined;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "payvault-ceremony-seal-"));
    });
    afterEach(async () => {
      await vault?.close();
      vault = undefined;
    });
    afterAll(async () => rm(dir, { recursive: true, force: true }));

    /** A vault on a sealed KEK file (3 shares, threshold 2), unsealed with shares 1 and 3. */
    async function sealedVault() {
      const kekPath = join(dir, `kek-${randomBytes(4).toString("hex")}.json`);
      const initial = await LocalKeyManager.initSealed(kekPath, { shares: 3, threshold: 2 });
      const km = await LocalKeyManager.open(kekPath, { create: false });
      expect(km.sealStatus().sealed).toBe(true);
      km.submitShare(initial.shares[0] as string);
      km.submitShare(initial.shares[2] as string);
      expect(km.sealStatus().sealed).toBe(false);
      vault = await startTestVault(driver, { keyManager: km, clock: new TestClock(Date.now()) });
      return { v: vault, kekPath, initial, km };
    }

    function rekeyApi(v: TestVault) {
      return {
        status: (key: string) =>
          v.app.inject({ method: "GET", url: "/v1/sys/rekey", headers: auth(key) }),
        verify: (key: string, share: unknown) =>
          v.app.inject({
            method: "POST",
            url: "/v1/sys/rekey/verify",
            headers: auth(key),
            payload: { share },
          }),
        cancel: (key: string) =>
          v.app.inject({ method: "POST", url: "/v1/sys/rekey/cancel", headers: auth(key) }),
      };
    }

    /** The custodians.rekey events, in commit order. */
    async function rekeyEvents(v: TestVault) {
      const { rows } = await v.core.db.query<{
        actor: string;
        outcome: string;
        object_id: string | null;
        details: unknown;
      }>(
        "SELECT actor, outcome, object_id, details FROM audit_events WHERE action = 'custodians.rekey' ORDER BY txid, id",
      );
      return rows.map((r) => ({
        ...r,
        details: (typeof r.details === "string" ? JSON.parse(r.details) : r.details) as {
          step: string;
          reason?: string;
        },
      }));
    }

    /** The same share with one value byte flipped: well-formed, right set, wrong value. */
    function wrongValue(share: string): string {
      const decoded = decodeShare(share);
      const value = Buffer.from(decoded.value);
      value[0] = (value[0] as number) ^ 0x5a;
      return encodeShare({ ...decoded, value });
    }

    /** Opens the KEK file in a fresh manager: does `shares` (in order) unseal it? */
    async function unsealsWith(kekPath: string, shares: readonly string[]): Promise<boolean> {
      const probe = await LocalKeyManager.open(kekPath, { create: false });
      try {
        for (const share of shares) {
          try {
            probe.submitShare(share);
          } catch (err) {
            if (err instanceof UnsealError) return false;
            throw err;
          }
        }
        return !probe.sealStatus().sealed;
      } finally {
        await probe.close();
      }
    }

    it("approval stages a new share set: the old shares keep unsealing until custodians confirm a threshold of the new ones, then only the new ones do", async () => {
      const { v, kekPath, initial, km } = await sealedVault();
      const api = ceremonyApi(v);
      const rekey = rekeyApi(v);
      const b = await v.newKey(v.tenantId, ["sys:admin"]);
      // One sys:admin key per custodian confirming a new share.
      const custodians = [
        await v.newKey(v.tenantId, ["sys:admin"]),
        await v.newKey(v.tenantId, ["sys:admin"]),
        await v.newKey(v.tenantId, ["sys:admin"]),
      ] as const;
      const key = await v.newKey(v.tenantId, ["tokens:write", "tokens:reveal"]);
      const token = await tokenize(v, key, { card: cardOf(CARDS.visa) });

      const proposed = await api.propose(v.adminKey, "custodians.rekey", {
        shares: 5,
        threshold: 3,
      });
      expect(proposed.statusCode, proposed.body).toBe(201);
      const ceremony = proposed.json() as CeremonyView;
      expectProblem(await api.approve(v.adminKey, ceremony.id), "CEREMONY_SELF_APPROVAL");
      const approved = await api.approve(b, ceremony.id);
      expect(approved.statusCode, approved.body).toBe(200);
      const body = approved.json() as CeremonyView & {
        result: { share_set: string; shares: string[]; pending_confirmation: boolean };
      };
      expect(body.state).toBe("executed");
      expect(body.result.pending_confirmation).toBe(true);
      expect(body.result.shares).toHaveLength(5);
      expect(new Set(body.result.shares).size).toBe(5);
      expect(body.result.share_set).toMatch(/^kset_/);
      const fresh = body.result.shares;
      const status = await rekey.status(v.adminKey);
      expect(status.statusCode, status.body).toBe(200);
      expect(status.json()).toEqual({
        pending: true,
        share_set: body.result.share_set,
        threshold: 3,
        shares: 5,
        progress: 0,
        staged_at: expect.any(String),
        ceremony_id: ceremony.id,
      });

      // If the response had been lost here, nothing is lost: a vault starting on the file now
      // still opens with the old shares and not with the new ones.
      expect(await unsealsWith(kekPath, [initial.shares[1], initial.shares[0]] as string[])).toBe(
        true,
      );
      expect(await unsealsWith(kekPath, fresh.slice(0, 3))).toBe(false);

      // Each custodian posts the new share they were handed, with their own key.
      const [c1, c2, c3] = custodians;
      expectProblem(await rekey.verify(c1, initial.shares[1] as string), "UNSEAL_SHARE_FOREIGN");
      const first = await rekey.verify(c1, fresh[4] as string);
      expect(first.statusCode, first.body).toBe(200);
      expect(first.json()).toMatchObject({ pending: true, confirmed: false, progress: 1 });
      expectProblem(await rekey.verify(c2, fresh[4] as string), "UNSEAL_SHARE_DUPLICATE");
      expect((await rekey.verify(c2, fresh[1] as string)).json()).toMatchObject({ progress: 2 });
      const last = await rekey.verify(c3, fresh[2] as string);
      expect(last.statusCode, last.body).toBe(200);
      expect(last.json()).toEqual({
        pending: false,
        confirmed: true,
        share_set: body.result.share_set,
        threshold: 3,
        shares: 5,
        progress: 0,
        staged_at: expect.any(String),
        ceremony_id: ceremony.id,
      });
      expectProblem(await rekey.verify(c3, fresh[0] as string), "REKEY_NOT_PENDING");
      expect((await rekey.status(v.adminKey)).json()).toMatchObject({ pending: false });
      const seal = await v.app.inject({ method: "GET", url: "/v1/sys/seal-status" });
      expect(seal.json()).toEqual({ sealed: false, threshold: 3, shares: 5, progress: 0 });

      // From now on only the new set opens the file; the KEKs are the same ones.
      expect(await unsealsWith(kekPath, [initial.shares[0], initial.shares[2]] as string[])).toBe(
        false,
      );
      const restarted = await LocalKeyManager.open(kekPath, { create: false });
      for (const old of initial.shares) {
        expect(() => restarted.submitShare(old)).toThrow(UnsealError);
      }
      restarted.submitShare(fresh[4] as string);
      expect(restarted.submitShare(fresh[1] as string).sealed).toBe(true);
      expect(restarted.submitShare(fresh[2] as string).sealed).toBe(false);
      const { rows } = await v.core.db.query<{
        id: string;
        owner: string;
        purpose: "pan";
        environment: "live";
        kek_id: string;
        kek_version: number;
        wrapped: Buffer;
      }>(
        "SELECT k.id, k.owner, k.purpose, k.environment, k.kek_id, k.kek_version, k.wrapped FROM data_keys k JOIN tokens t ON t.dek_id = k.id WHERE t.id = $1",
        [token.id],
      );
      const row = rows[0] as NonNullable<(typeof rows)[0]>;
      const wrapped = {
        kekId: row.kek_id,
        kekVersion: row.kek_version,
        ciphertext: Buffer.from(row.wrapped),
      };
      const context = {
        dekId: row.id,
        owner: row.owner,
        purpose: row.purpose,
        environment: row.environment,
      };
      expect(await restarted.unwrapKey(wrapped, context)).toEqual(
        await km.unwrapKey(wrapped, context),
      );
      await restarted.close();

      // The running vault carries on.
      expect((await reveal(v, key, token.id)).statusCode).toBe(200);
      // Every step is audited; no share is stored: not in the audit trail, not in the file.
      const set = body.result.share_set;
      const steps = (await rekeyEvents(v)).map((r) => [
        r.actor,
        `${r.details.step}:${r.outcome}`,
        r.object_id,
        r.details.reason ?? "",
      ]);
      expect(steps).toEqual([
        [`${keyIdOf(b)}+${keyIdOf(v.adminKey)}`, "staged:success", set, ""],
        [keyIdOf(c1), "share:failure", set, "UNSEAL_SHARE_FOREIGN"],
        [keyIdOf(c1), "share:success", set, ""],
        [keyIdOf(c2), "share:failure", set, "UNSEAL_SHARE_DUPLICATE"],
        [keyIdOf(c2), "share:success", set, ""],
        [keyIdOf(c3), "verified:success", set, ""],
        [keyIdOf(c3), "confirmed:success", set, ""],
        [keyIdOf(c3), "share:failure", null, "REKEY_NOT_PENDING"],
      ]);
      expect((await rekeyEvents(v))[0]?.details).toEqual({
        step: "staged",
        shares: 5,
        threshold: 3,
        ceremony: ceremony.id,
      });
      const { rows: details } = await v.core.db.query<{ d: string }>(
        "SELECT details::text AS d FROM audit_events",
      );
      const file = await readFile(kekPath, "utf8");
      for (const share of [...fresh, ...initial.shares]) {
        expect(file).not.toContain(share);
        expect(file).not.toContain(share.split(".")[4] as string);
        for (const d of details) expect(d.d).not.toContain(share.split(".")[4] as string);
      }
      expect(await trailOf(v.core, ceremony.id)).toEqual([
        { action: "ceremony.propose", outcome: "success", actor: keyIdOf(v.adminKey) },
        { action: "ceremony.approve", outcome: "denied", actor: keyIdOf(v.adminKey) },
        { action: "ceremony.approve", outcome: "success", actor: keyIdOf(b) },
      ]);
      await expectChainIntact(v.core);
    });

    it("the rekey routes need sys:admin; a wrong combination of new shares is refused and the old seal stays; cancel drops the staged set", async () => {
      const { v, kekPath, initial } = await sealedVault();
      const api = ceremonyApi(v);
      const rekey = rekeyApi(v);
      const b = await v.newKey(v.tenantId, ["sys:admin"]);
      const tokensKey = await v.newKey(v.tenantId, ["tokens:write", "tokens:reveal"]);
      for (const call of [
        () => v.app.inject({ method: "GET", url: "/v1/sys/rekey" }),
        () =>
          v.app.inject({ method: "POST", url: "/v1/sys/rekey/verify", payload: { share: "x" } }),
        () => v.app.inject({ method: "POST", url: "/v1/sys/rekey/cancel" }),
      ]) {
        expectProblem(await call(), "AUTH_MISSING");
      }
      expectProblem(await rekey.status(tokensKey), "INSUFFICIENT_SCOPE");
      expectProblem(await rekey.verify(tokensKey, initial.shares[0]), "INSUFFICIENT_SCOPE");
      expectProblem(await rekey.cancel(tokensKey), "INSUFFICIENT_SCOPE");

      expect((await rekey.status(v.adminKey)).json()).toEqual({
        pending: false,
        share_set: null,
        threshold: 0,
        shares: 0,
        progress: 0,
        staged_at: null,
        ceremony_id: null,
      });
      expectProblem(await rekey.verify(v.adminKey, initial.shares[0]), "REKEY_NOT_PENDING");
      expectProblem(await rekey.cancel(v.adminKey), "REKEY_NOT_PENDING");

      const proposed = (
        await api.propose(v.adminKey, "custodians.rekey", { shares: 3, threshold: 3 })
      ).json() as CeremonyView;
      const approved = (await api.approve(b, proposed.id)).json() as CeremonyView & {
        result: { share_set: string; shares: string[] };
      };
      const fresh = approved.result.shares;
      const staged = await readFile(kekPath, "utf8");
      expect((await rekey.verify(b, fresh[0])).statusCode).toBe(200);
      expect((await rekey.verify(v.adminKey, fresh[1])).statusCode).toBe(200);
      expectProblem(await rekey.verify(b, wrongValue(fresh[2] as string)), "UNSEAL_FAILED");
      expectProblem(await rekey.verify(b, "pvs1.not-a-share"), "UNSEAL_SHARE_INVALID");
      const malformed = await v.app.inject({
        method: "POST",
        url: "/v1/sys/rekey/verify",
        headers: auth(b),
        payload: { share: fresh[0], extra: true },
      });
      expectProblem(malformed, "VALIDATION_FAILED");
      expect(await readFile(kekPath, "utf8")).toBe(staged);
      expect(await unsealsWith(kekPath, [initial.shares[1], initial.shares[2]] as string[])).toBe(
        true,
      );

      const cancelled = await rekey.cancel(b);
      expect(cancelled.statusCode, cancelled.body).toBe(200);
      expect(cancelled.json()).toMatchObject({
        pending: false,
        cancelled: approved.result.share_set,
        share_set: null,
      });
      expectProblem(await rekey.verify(b, fresh[0]), "REKEY_NOT_PENDING");
      expect(await unsealsWith(kekPath, fresh)).toBe(false);
      expect(await unsealsWith(kekPath, [initial.shares[0], initial.shares[1]] as string[])).toBe(
        true,
      );
      const steps = (await rekeyEvents(v)).map((r) => `${r.details.step}:${r.outcome}`);
      expect(steps).toEqual([
        "share:failure",
        "cancel:failure",
        "staged:success",
        "share:success",
        "share:success",
        "share:failure",
        "share:failure",
        "cancelled:success",
        "share:failure",
      ]);
    });
  });

  describe(`key ceremonies from the CLI on ${driver.name}`, () => {
    let store: CliStore;
    beforeAll(async () => {
      store = await cliStore(driver);
    });
    afterAll(async () => store?.drop());

    it(
      "the CLI's principal is the OS account, not $USER: it cannot approve its own proposal under another name; another principal approves; the audit chain verifies",
      async () => {
        const actor = `cli:${userInfo().username}`;
        // $USER and $LOGNAME are set by whoever runs the command: they name nobody.
        const alice = { USER: "alice", LOGNAME: "alice" };
        const bob = { USER: "bob", LOGNAME: "bob" };
        // Some DEKs to re-wrap.
        const v1 = await store.seed();

        const proposed = ok(await store.cli(["keys", "rotate", "--kek"], alice));
        expect(proposed.stdout).toContain(`proposed by ${actor}`);
        const id = /Proposed (cer_[0-9A-Za-z]+) \(kek\.rotate, both\)/.exec(proposed.stdout)?.[1];
        expect(id, proposed.stdout).toBeDefined();

        const self = await store.cli(["ceremonies", "approve", id as string], bob);
        expect(self.code).toBe(1);
        expect(self.stderr).toMatch(/different principal/);

        // Another operator (here through the service, as the sys:admin API does) approves.
        const second = "key_operator2";
        const opened = await store.open();
        try {
          const outcome = await opened.ceremonies.approve(id as string, second);
          expect(outcome.result).toMatchObject({
            live: { kek_version: 2 },
            test: { kek_version: 2 },
          });
        } finally {
          await opened.close();
        }

        // The reject path, from the CLI.
        const other = ok(await store.cli(["keys", "rotate", "--kek", "--env", "test"], alice));
        const otherId = /Proposed (cer_[0-9A-Za-z]+)/.exec(other.stdout)?.[1] as string;
        const rejecting = await store.open();
        try {
          await rejecting.ceremonies.reject(otherId, second);
        } finally {
          await rejecting.close();
        }

        const core = await store.open();
        try {
          expect(await trailOf(core, id as string)).toEqual([
            { action: "ceremony.propose", outcome: "success", actor },
            { action: "ceremony.approve", outcome: "denied", actor },
            { action: "ceremony.approve", outcome: "success", actor: second },
          ]);
          expect(await trailOf(core, otherId)).toEqual([
            { action: "ceremony.propose", outcome: "success", actor },
            { action: "ceremony.reject", outcome: "success", actor: second },
          ]);
          const listed = await core.ceremonies.list();
          expect(listed.find((c) => c.id === id)).toMatchObject({
            action: "kek.rotate",
            state: "executed",
            proposed_by: actor,
            decided_by: second,
          });
          expect(listed.find((c) => c.id === otherId)?.state).toBe("rejected");
          // Rotated once, by the approved ceremony only.
          expect(ENVIRONMENTS.map((env) => kekOf(core.keyManager, env).currentVersion)).toEqual(
            v1.map((v) => v + 1),
          );
          expect(
            await core.db.query<{ n: number }>(
              "SELECT count(*)::int AS n FROM data_keys WHERE wrapped IS NOT NULL AND kek_version = 1",
            ),
          ).toMatchObject({ rows: [{ n: 0 }] });
          await expectChainIntact(core);
        } finally {
          await core.close();
        }
      },
      SLOW,
    );
  });
}

function ok(result: CliResult): CliResult {
  expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
  return result;
}

interface CliStore {
  cli(args: readonly string[], env?: Record<string, string>): Promise<CliResult>;
  /** Opens the store in-process (close it before the next CLI run: PGlite is single-process). */
  open(): Promise<Core>;
  /**
   * Creates a tenant with a live and a test token, so there are DEKs to re-wrap; returns the
   * KEK versions (live, test).
   */
  seed(): Promise<number[]>;
  drop(): Promise<void>;
}

/** PGlite in a data directory, or (postgres driver) a fresh schema through search_path. */
async function cliStore(driver: Driver): Promise<CliStore> {
  const dataDir = await mkdtemp(join(tmpdir(), "payvault-ceremony-cli-"));
  const { env, drop: dropSchema } = await cliStoreEnv(driver.name);
  const open = () => openCore(loadConfig({ PAYVAULT_DATA_DIR: dataDir, ...env }, dataDir));
  return {
    cli: (args, extra = {}) => runCli(args, { dataDir, env: { ...env, ...extra } }),
    open,
    async seed() {
      const core = await open();
      try {
        const tenant = await core.tenants.create("cli-ceremonies", "test");
        for (const environment of ENVIRONMENTS) {
          const { key } = await core.apiKeys.create({
            tenantId: tenant.id,
            environment,
            name: "seed",
            scopes: ["tokens:write"],
            actor: "test",
          });
          const principal: Principal = {
            kind: "api_key",
            keyId: key.id,
            tenantId: tenant.id,
            environment,
            scopes: new Set(["tokens:write"] as const),
          };
          await core.tokens.tokenize(principal, { card: cardOf(CARDS.visa) });
        }
        await core.sealer.sealPending();
        return ENVIRONMENTS.map((env) => kekOf(core.keyManager, env).currentVersion);
      } finally {
        await core.close();
      }
    },
    async drop() {
      await dropSchema();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
