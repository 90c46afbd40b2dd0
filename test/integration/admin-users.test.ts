import { decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeBase32, totpAt } from "../../src/auth/totp.js";
import type { ErrorCode } from "../../src/errors/registry.js";
import { VaultError } from "../../src/errors/registry.js";
import { AdminAuth } from "../../src/services/admin-users/admin-auth.js";
import type { AdminActor } from "../../src/services/admin-users/admin-users.js";
import {
  ACCESS_TOKEN_TTL_SECONDS,
  LOCKOUT_MS,
  needsStepUp,
  SESSION_IDLE_MS,
  STEP_UP_WINDOW_MS,
} from "../../src/services/admin-users/policy.js";
import { MAX_CONCURRENT_SCRYPT, ScryptGate } from "../../src/services/admin-users/scrypt-gate.js";
import type { TokenPair } from "../../src/services/admin-users/sessions.js";
import {
  ACCESS_TOKEN_ALGS,
  DEFAULT_JOSE_OVERLAP_MS,
  VaultJoseKeys,
} from "../../src/services/capture/vault-jose-keys.js";
import type { Principal } from "../../src/services/principal.js";
import { auditRows } from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/**
 * Admin users at the service level (issue 5 point 3), on every store driver: enrolment, login with
 * TOTP or a recovery code, lockout, sessions (rotation, reuse, idle timeout), step-up, password
 * change, and the audit trail of each. The HTTP contract is in admin-auth-api.test.ts.
 */

const IP = "192.0.2.10";
const ORIGIN = { ip: IP };
const OPERATOR: AdminActor = { actor: "test-operator", ip: IP, grantable: "any" };
const PASSWORD = "correct horse 42 battery";

async function refusal(promise: Promise<unknown>): Promise<VaultError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof VaultError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

async function expectRefused(promise: Promise<unknown>, code: ErrorCode): Promise<VaultError> {
  const err = await refusal(promise);
  expect(err.code).toBe(code);
  return err;
}

let usernames = 0;

for (const driver of DRIVERS) {
  describe(`admin users on ${driver.name}`, () => {
    let vault: TestVault;
    let auth: AdminAuth;
    let now = new Date();
    const clock = { now: () => now };
    const advance = (ms: number) => {
      now = new Date(now.getTime() + ms);
    };

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock });
      const accessTokenKeys = new VaultJoseKeys(
        vault.core.db,
        vault.core.keys,
        vault.core.audit,
        clock,
        {
          overlapMs: DEFAULT_JOSE_OVERLAP_MS,
          cryptoperiodMs: 90 * 86_400_000,
          algs: ACCESS_TOKEN_ALGS,
        },
      );
      auth = new AdminAuth({
        db: vault.core.db,
        keys: vault.core.keys,
        audit: vault.core.audit,
        clock,
        accessTokenKeys,
        vaultOrigin: () => "https://vault.test",
      });
    }, 60_000);
    afterAll(async () => vault?.close());

    interface Enrolled {
      id: string;
      username: string;
      key: Buffer;
      recoveryCodes: readonly string[];
    }

    /** The code of the next 30 s step: the clock moves on, so each code is fresh. */
    function nextCode(user: Enrolled): string {
      advance(30_000);
      return totpAt(user.key, now.getTime() / 1000);
    }

    async function enrolled(roles: string[] = ["tenant_admin"]): Promise<Enrolled> {
      const username = `admin-${driver.name}-${++usernames}`;
      const created = await auth.users.create(OPERATOR, {
        tenantId: vault.tenantId,
        username,
        roles,
      });
      const secrets = await auth.enrollment.enroll(created.enrollmentToken, PASSWORD, ORIGIN);
      const key = decodeBase32(secrets.secret) as Buffer;
      const user = { id: created.user.id, username, key, recoveryCodes: secrets.recoveryCodes };
      await auth.enrollment.confirm(created.enrollmentToken, nextCode(user), ORIGIN);
      return user;
    }

    async function login(user: Enrolled, extra: { code?: string; recoveryCode?: string } = {}) {
      return auth.login(
        { username: user.username, password: PASSWORD, code: nextCode(user), ...extra },
        ORIGIN,
      );
    }

    async function principalOf(pair: TokenPair): Promise<Principal> {
      const result = await auth.authenticateAccessToken(pair.accessToken);
      if (!result.ok) throw new Error(`access token refused: ${result.reason}`);
      return result.principal;
    }

    async function audited(action: string, objectId: string) {
      return (await auditRows(vault, action)).filter((row) => row.object_id === objectId);
    }

    describe("creation", () => {
      it("expands roles to scopes once, in the creator's tenant, with a one-time enrollment token", async () => {
        const created = await auth.users.create(OPERATOR, {
          tenantId: vault.tenantId,
          username: `Creator-${driver.name}`,
          roles: ["auditor", "reader"],
        });
        expect(created.user).toMatchObject({
          tenantId: vault.tenantId,
          username: `creator-${driver.name}`,
          roles: ["auditor", "reader"],
          scopes: ["tokens:read", "audit:read"],
          status: "pending",
        });
        expect(created.enrollmentToken).toMatch(/^pve_[0-9A-Za-z]{22}_[0-9A-Za-z]{43}$/);
        expect(created.enrollmentExpiresAt.getTime() - now.getTime()).toBe(24 * 3_600_000);
        // Only the MAC of the token is stored.
        const { rows } = await vault.core.db.query<{ token_mac: Buffer }>(
          "SELECT token_mac FROM admin_enrollment_tokens WHERE user_id = $1",
          [created.user.id],
        );
        expect(rows).toHaveLength(1);
        expect(rows[0]?.token_mac.toString("latin1")).not.toContain(
          created.enrollmentToken.slice(27),
        );
        const [event] = await audited("admin_user.create", created.user.id);
        expect(event).toMatchObject({ actor: "test-operator", outcome: "success" });
        expect(event?.details).toMatchObject({ ip: IP, roles: "auditor reader" });
      });

      it("grants only scopes the creator holds (SCOPE_NOT_GRANTABLE)", async () => {
        const admin: AdminActor = {
          actor: "key_admin",
          ip: IP,
          grantable: new Set([
            "tenant:admin",
            "keys:manage",
            "webhooks:manage",
            "audit:read",
            "tokens:read",
            "tokens:delete",
          ]),
        };
        await expectRefused(
          auth.users.create(admin, {
            tenantId: vault.tenantId,
            username: "would-be-op",
            roles: ["operator"],
          }),
          "SCOPE_NOT_GRANTABLE",
        );
        await expectRefused(
          auth.users.create(admin, {
            tenantId: vault.tenantId,
            username: "would-be-rev",
            roles: ["revealer"],
          }),
          "SCOPE_NOT_GRANTABLE",
        );
        const ok = await auth.users.create(admin, {
          tenantId: vault.tenantId,
          username: `peer-${driver.name}`,
          roles: ["tenant_admin"],
        });
        expect(ok.user.scopes).toContain("tenant:admin");
      });

      it("treats usernames case-insensitively and after NFKC", async () => {
        await auth.users.create(OPERATOR, {
          tenantId: vault.tenantId,
          username: `alice-${driver.name}`,
          roles: ["reader"],
        });
        for (const variant of [`ALICE-${driver.name}`, `ＡＬＩＣＥ-${driver.name}`]) {
          await expectRefused(
            auth.users.create(OPERATOR, {
              tenantId: vault.tenantId,
              username: variant,
              roles: ["reader"],
            }),
            "ADMIN_USER_EXISTS",
          );
        }
        const bad = await expectRefused(
          auth.users.create(OPERATOR, {
            tenantId: vault.tenantId,
            username: "a b",
            roles: ["reader"],
          }),
          "VALIDATION_FAILED",
        );
        expect(bad.errors?.[0]).toMatchObject({ field: "username", code: "INVALID_FORMAT" });
      });
    });

    describe("enrolment", () => {
      it("enforces the password policy (PCI DSS 8.3.6), stores the TOTP secret sealed and codes as MACs", async () => {
        const created = await auth.users.create(OPERATOR, {
          tenantId: vault.tenantId,
          username: `enrol-${driver.name}`,
          roles: ["reader"],
        });
        const token = created.enrollmentToken;
        const short = await expectRefused(
          auth.enrollment.enroll(token, "short1", ORIGIN),
          "VALIDATION_FAILED",
        );
        expect(short.errors?.map((e) => e.code)).toContain("PASSWORD_TOO_SHORT");
        const letters = await expectRefused(
          auth.enrollment.enroll(token, "only letters here", ORIGIN),
          "VALIDATION_FAILED",
        );
        expect(letters.errors?.map((e) => e.code)).toContain("PASSWORD_NEEDS_LETTERS_AND_DIGITS");
        const secrets = await auth.enrollment.enroll(token, PASSWORD, ORIGIN);
        expect(secrets.otpauthUri).toBe(
          `otpauth://totp/payvault:enrol-${driver.name}?secret=${secrets.secret}&issuer=payvault&algorithm=SHA1&digits=6&period=30`,
        );
        expect(secrets.recoveryCodes).toHaveLength(10);
        const key = decodeBase32(secrets.secret) as Buffer;
        const { rows } = await vault.core.db.query<{ totp_secret: Buffer; password_hash: string }>(
          "SELECT totp_secret, password_hash FROM admin_users WHERE id = $1",
          [created.user.id],
        );
        expect(rows[0]?.password_hash).toMatch(/^\$scrypt\$ln=17,r=8,p=1\$/);
        expect(rows[0]?.totp_secret.includes(key)).toBe(false);
        const codes = await vault.core.db.query<{ code_mac: string }>(
          "SELECT code_mac FROM admin_recovery_codes WHERE user_id = $1",
          [created.user.id],
        );
        expect(codes.rows).toHaveLength(10);
        const stored = codes.rows.map((r) => r.code_mac).join(" ");
        for (const code of secrets.recoveryCodes)
          expect(stored).not.toContain(code.replaceAll("-", ""));
        // Not enrolled until confirmed: login fails even with the right password and code.
        advance(30_000);
        await expectRefused(
          auth.login(
            {
              username: `enrol-${driver.name}`,
              password: PASSWORD,
              code: totpAt(key, now.getTime() / 1000),
            },
            ORIGIN,
          ),
          "LOGIN_FAILED",
        );
        await expectRefused(auth.enrollment.confirm(token, "000000", ORIGIN), "LOGIN_FAILED");
        advance(30_000);
        await auth.enrollment.confirm(token, totpAt(key, now.getTime() / 1000), ORIGIN);
        // The token is spent.
        await expectRefused(auth.enrollment.enroll(token, PASSWORD, ORIGIN), "AUTH_INVALID");
        expect(
          (await audited("admin_user.enroll_confirm", created.user.id)).map((e) => e.outcome),
        ).toEqual(expect.arrayContaining(["success", "failure"]));
      });

      it("refuses an enrollment token after 24 hours", async () => {
        const created = await auth.users.create(OPERATOR, {
          tenantId: vault.tenantId,
          username: `late-${driver.name}`,
          roles: ["reader"],
        });
        advance(24 * 3_600_000 + 1_000);
        await expectRefused(
          auth.enrollment.enroll(created.enrollmentToken, PASSWORD, ORIGIN),
          "AUTH_INVALID",
        );
        await expectRefused(
          auth.enrollment.enroll("pve_nonsense", PASSWORD, ORIGIN),
          "AUTH_INVALID",
        );
      });
    });

    describe("login", () => {
      it("returns an EdDSA at+jwt access token of at most 15 minutes and a refresh token", async () => {
        const user = await enrolled();
        const pair = await login(user);
        expect(pair.expiresIn).toBeLessThanOrEqual(900);
        expect(pair.expiresIn).toBe(ACCESS_TOKEN_TTL_SECONDS);
        expect(pair.refreshToken).toMatch(/^pvr_/);
        expect(decodeProtectedHeader(pair.accessToken)).toMatchObject({
          alg: "EdDSA",
          typ: "at+jwt",
        });
        const principal = await principalOf(pair);
        expect(principal).toMatchObject({ kind: "user", keyId: user.id, tenantId: vault.tenantId });
        expect(principal.scopes.has("tenant:admin")).toBe(true);
        expect(principal.mfaAt?.getTime()).toBe(now.getTime());
        const [event] = (await auditRows(vault, "auth.login")).filter(
          (e) => e.actor === user.id && e.outcome === "success",
        );
        expect(event?.details).toMatchObject({ ip: IP, method: "totp" });
      });

      it("answers one LOGIN_FAILED for unknown user, wrong password, wrong code, disabled and unenrolled", async () => {
        const user = await enrolled();
        const disabled = await enrolled();
        await auth.users.disable(OPERATOR, vault.tenantId, disabled.id);
        const pending = await auth.users.create(OPERATOR, {
          tenantId: vault.tenantId,
          username: `pending-${driver.name}`,
          roles: ["reader"],
        });
        const attempts = [
          { username: `nobody-${driver.name}`, password: PASSWORD, code: nextCode(user) },
          { username: user.username, password: "wrong password 123", code: nextCode(user) },
          { username: user.username, password: PASSWORD, code: "123456" },
          { username: user.username, password: PASSWORD },
          { username: disabled.username, password: PASSWORD, code: nextCode(disabled) },
          { username: pending.user.username, password: PASSWORD, code: "123456" },
        ];
        const errors: VaultError[] = [];
        for (const attempt of attempts) errors.push(await refusal(auth.login(attempt, ORIGIN)));
        for (const err of errors) {
          expect(err.code).toBe("LOGIN_FAILED");
          expect(err.message).toBe(errors[0]?.message);
          expect(err.detail).toBeUndefined();
          expect(err.errors).toBeUndefined();
        }
        // The reasons are in the audit trail only; an unknown username is never recorded.
        const failures = (await auditRows(vault, "auth.login")).filter(
          (e) => e.outcome === "failure",
        );
        const reasons = failures.map((e) => e.details.reason);
        expect(reasons).toEqual(
          expect.arrayContaining([
            "unknown_user",
            "bad_password",
            "code_invalid",
            "code_missing",
            "disabled",
            "not_enrolled",
          ]),
        );
        const anonymous = failures.find((e) => e.details.reason === "unknown_user");
        expect(anonymous).toMatchObject({ actor: "anonymous", object_id: null });
        expect(JSON.stringify(failures)).not.toContain("nobody-");
        expect(JSON.stringify(failures)).not.toContain(PASSWORD);
        for (const failure of failures) expect(failure.details.ip).toBe(IP);
      });

      it("never accepts one TOTP code twice, in sequence or concurrently (PCI DSS 8.5.1)", async () => {
        const user = await enrolled();
        const code = nextCode(user);
        await auth.login({ username: user.username, password: PASSWORD, code }, ORIGIN);
        await expectRefused(
          auth.login({ username: user.username, password: PASSWORD, code }, ORIGIN),
          "LOGIN_FAILED",
        );
        // A code from a step before the last one used is refused too.
        const older = totpAt(user.key, now.getTime() / 1000 - 30);
        await expectRefused(
          auth.login({ username: user.username, password: PASSWORD, code: older }, ORIGIN),
          "LOGIN_FAILED",
        );
        const replays = (await auditRows(vault, "auth.login")).filter(
          (e) => e.actor === user.id && e.details.reason === "code_replayed",
        );
        expect(replays).toHaveLength(2);

        const fresh = nextCode(user);
        const results = await Promise.allSettled(
          [1, 2, 3].map(() =>
            auth.login({ username: user.username, password: PASSWORD, code: fresh }, ORIGIN),
          ),
        );
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        for (const r of results.filter((r) => r.status === "rejected")) {
          expect((r.reason as VaultError).code).toBe("LOGIN_FAILED");
        }
      });

      it("accepts each recovery code once", async () => {
        const user = await enrolled();
        const [first, second] = user.recoveryCodes;
        const pair = await auth.login(
          {
            username: user.username,
            password: PASSWORD,
            recoveryCode: (first as string).toLowerCase(),
          },
          ORIGIN,
        );
        expect((await principalOf(pair)).keyId).toBe(user.id);
        await expectRefused(
          auth.login({ username: user.username, password: PASSWORD, recoveryCode: first }, ORIGIN),
          "LOGIN_FAILED",
        );
        const results = await Promise.allSettled(
          [1, 2].map(() =>
            auth.login(
              { username: user.username, password: PASSWORD, recoveryCode: second },
              ORIGIN,
            ),
          ),
        );
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        const reasons = (await auditRows(vault, "auth.login"))
          .filter((e) => e.actor === user.id && e.outcome === "failure")
          .map((e) => e.details.reason);
        expect(reasons).toContain("recovery_code_used");
      });

      it("locks the account after exactly 10 consecutive failures, for 30 minutes (PCI DSS 8.3.4)", async () => {
        const user = await enrolled();
        const wrong = () =>
          auth.login(
            { username: user.username, password: "wrong password 1", code: nextCode(user) },
            ORIGIN,
          );
        for (let i = 0; i < 9; i++) await expectRefused(wrong(), "LOGIN_FAILED");
        // Nine failures do not lock, and a success starts the count again.
        await login(user);
        for (let i = 0; i < 9; i++) await expectRefused(wrong(), "LOGIN_FAILED");
        expect(await audited("auth.lockout", user.id)).toHaveLength(0);
        await expectRefused(wrong(), "LOGIN_FAILED");
        const lockouts = await audited("auth.lockout", user.id);
        expect(lockouts).toHaveLength(1);
        expect(lockouts[0]).toMatchObject({ actor: user.id, outcome: "denied" });
        expect(lockouts[0]?.details).toMatchObject({ ip: IP, failed_attempts: 10 });
        const lockedAt = now.getTime();
        // Locked: the right password and code fail, identically.
        await expectRefused(login(user), "LOGIN_FAILED");
        expect((await auth.users.get(vault.tenantId, user.id)).status).toBe("locked");
        now = new Date(lockedAt + LOCKOUT_MS - 60_000);
        await expectRefused(login(user), "LOGIN_FAILED");
        now = new Date(lockedAt + LOCKOUT_MS + 1_000);
        await login(user);
        const reasons = (await auditRows(vault, "auth.login"))
          .filter((e) => e.actor === user.id && e.outcome === "failure")
          .map((e) => e.details.reason);
        expect(reasons.filter((r) => r === "locked")).toHaveLength(2);
      }, 60_000);

      it("an administrator's unlock lifts a lockout at once", async () => {
        const user = await enrolled();
        for (let i = 0; i < 10; i++) {
          await expectRefused(
            auth.login(
              { username: user.username, password: "wrong password 1", code: "000000" },
              ORIGIN,
            ),
            "LOGIN_FAILED",
          );
        }
        await expectRefused(login(user), "LOGIN_FAILED");
        await auth.users.unlock(OPERATOR, vault.tenantId, user.id);
        await login(user);
        expect(await audited("admin_user.unlock", user.id)).toHaveLength(1);
      }, 60_000);
    });

    describe("sessions", () => {
      it("access tokens are refused once expired, even while the session is alive", async () => {
        const user = await enrolled();
        const pair = await login(user);
        advance(10 * 60_000);
        await principalOf(pair); // keeps the session alive
        advance(5 * 60_000 + 10_000);
        const result = await auth.authenticateAccessToken(pair.accessToken);
        expect(result).toMatchObject({ ok: false, reason: "expired" });
        const fresh = await auth.sessions.refresh(pair.refreshToken as string, ORIGIN);
        expect((await principalOf(fresh)).keyId).toBe(user.id);
      });

      it("rotates refresh tokens; reusing a spent one revokes the whole family", async () => {
        const user = await enrolled();
        const first = await login(user);
        const second = await auth.sessions.refresh(first.refreshToken as string, ORIGIN);
        expect(second.refreshToken).not.toBe(first.refreshToken);
        const sessionId = (await principalOf(second)).sessionId as string;
        await expectRefused(
          auth.sessions.refresh(first.refreshToken as string, ORIGIN),
          "REFRESH_TOKEN_INVALID",
        );
        // Every token of the family is dead now: the newest refresh token and the access token.
        await expectRefused(
          auth.sessions.refresh(second.refreshToken as string, ORIGIN),
          "REFRESH_TOKEN_INVALID",
        );
        expect(await auth.authenticateAccessToken(second.accessToken)).toMatchObject({
          ok: false,
          reason: "revoked",
          keyId: user.id,
        });
        const [reuse] = await audited("auth.refresh_reuse", sessionId);
        expect(reuse).toMatchObject({ actor: user.id, outcome: "denied" });
        expect(reuse?.details).toMatchObject({ ip: IP, family_revoked: true });
        expect(
          (await audited("auth.refresh", sessionId)).some((e) => e.outcome === "success"),
        ).toBe(true);
        await expectRefused(auth.sessions.refresh("pvr_garbage", ORIGIN), "REFRESH_TOKEN_INVALID");
      });

      it("two concurrent refreshes with one token: one wins, and the family is revoked", async () => {
        const user = await enrolled();
        const pair = await login(user);
        const results = await Promise.allSettled(
          [1, 2].map(() => auth.sessions.refresh(pair.refreshToken as string, ORIGIN)),
        );
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        const won = results.find(
          (r) => r.status === "fulfilled",
        ) as PromiseFulfilledResult<TokenPair>;
        expect((await auth.authenticateAccessToken(won.value.accessToken)).ok).toBe(false);
      });

      it("ends a session idle for more than 15 minutes (PCI DSS 8.2.8)", async () => {
        const user = await enrolled();
        const pair = await login(user);
        advance(SESSION_IDLE_MS - 60_000);
        expect((await auth.authenticateAccessToken(pair.accessToken)).ok).toBe(true);
        const refreshed = await auth.sessions.refresh(pair.refreshToken as string, ORIGIN);
        advance(SESSION_IDLE_MS + 1_000);
        expect(await auth.authenticateAccessToken(refreshed.accessToken)).toMatchObject({
          ok: false,
          reason: "session_expired",
        });
        await expectRefused(
          auth.sessions.refresh(refreshed.refreshToken as string, ORIGIN),
          "SESSION_EXPIRED",
        );
      });

      it("logout and disabling the user stop every token at once", async () => {
        const user = await enrolled();
        const a = await login(user);
        const b = await login(user);
        await auth.sessions.logout(await principalOf(a), ORIGIN);
        expect(await auth.authenticateAccessToken(a.accessToken)).toMatchObject({
          ok: false,
          reason: "revoked",
        });
        await expectRefused(
          auth.sessions.refresh(a.refreshToken as string, ORIGIN),
          "REFRESH_TOKEN_INVALID",
        );
        expect((await auth.authenticateAccessToken(b.accessToken)).ok).toBe(true);
        await auth.users.disable(OPERATOR, vault.tenantId, user.id);
        expect(await auth.authenticateAccessToken(b.accessToken)).toMatchObject({
          ok: false,
          reason: "revoked",
        });
        await expectRefused(
          auth.sessions.refresh(b.refreshToken as string, ORIGIN),
          "REFRESH_TOKEN_INVALID",
        );
        await expectRefused(login(user), "LOGIN_FAILED");
        const [disable] = await audited("admin_user.disable", user.id);
        expect(disable?.details).toMatchObject({ ip: IP, sessions_revoked: 1 });
        expect((await auditRows(vault, "auth.logout")).some((e) => e.actor === user.id)).toBe(true);
        await expectRefused(
          auth.users.disable(OPERATOR, "ten_other", user.id),
          "ADMIN_USER_NOT_FOUND",
        );
      });

      it("refuses a capture session as an access token, and a forged or garbled token", async () => {
        const key = await vault.newKey(vault.tenantId, ["capture"]);
        const principal = await vault.core.apiKeys.authenticate(key, {
          ip: IP,
          clientCertSha256: undefined,
        });
        if (!principal.ok) throw new Error("key refused");
        const session = await vault.core.captureSessions.create(principal.principal, {
          origins: ["https://shop.example"],
        });
        expect(await auth.authenticateAccessToken(session.session)).toMatchObject({
          ok: false,
          reason: "invalid",
        });
        const user = await enrolled();
        const pair = await login(user);
        const [h, p, s] = pair.accessToken.split(".");
        // One bit of the decoded signature flipped (editing base64url text can leave the bytes
        // unchanged: the last character carries padding bits).
        const signature = Buffer.from(s as string, "base64url");
        signature[0] = (signature[0] as number) ^ 1;
        const flipped = `${h}.${p}.${signature.toString("base64url")}`;
        expect((await auth.authenticateAccessToken(flipped)).ok).toBe(false);
        expect((await auth.authenticateAccessToken("not.a.jwt")).ok).toBe(false);
      });
    });

    describe("step-up and password change", () => {
      it("needs a second factor within 5 minutes; a step-up renews it; a code is not reused across login and step-up", async () => {
        const user = await enrolled();
        const code = nextCode(user);
        const pair = await auth.login(
          { username: user.username, password: PASSWORD, code },
          ORIGIN,
        );
        let principal = await principalOf(pair);
        expect(needsStepUp(principal, now)).toBe(false);
        expect(auth.needsStepUp(principal)).toBe(false);
        // The login's code, still inside its window, cannot step up: it was spent.
        await expectRefused(auth.account.stepUp(principal, code, ORIGIN), "LOGIN_FAILED");
        advance(STEP_UP_WINDOW_MS + 1_000);
        principal = await principalOf(pair);
        expect(auth.needsStepUp(principal)).toBe(true);
        await expectRefused(auth.account.stepUp(principal, "000000", ORIGIN), "LOGIN_FAILED");
        const stepped = await auth.account.stepUp(principal, nextCode(user), ORIGIN);
        expect(stepped.refreshToken).toBeUndefined();
        const after = await principalOf(stepped);
        expect(after.sessionId).toBe(principal.sessionId);
        expect(auth.needsStepUp(after)).toBe(false);
        // The session's other access token sees the fresh factor too: it lives in the session.
        expect(auth.needsStepUp(await principalOf(pair))).toBe(false);
        const events = await audited("auth.step_up", principal.sessionId as string);
        expect(events.map((e) => e.outcome)).toEqual(["success"]);
        const failures = (await auditRows(vault, "auth.step_up")).filter(
          (e) => e.actor === user.id && e.outcome === "failure",
        );
        expect(failures.map((e) => e.details.reason)).toEqual(
          expect.arrayContaining(["code_replayed", "code_invalid"]),
        );
        // Machines are never asked.
        const machine: Principal = {
          kind: "api_key",
          tenantId: vault.tenantId,
          keyId: "key_x",
          environment: "live",
          scopes: new Set(),
        };
        expect(needsStepUp(machine, now)).toBe(false);
      });

      it("changes the password: current one and a code required, not one of the last four, other sessions end", async () => {
        const user = await enrolled();
        const other = await login(user);
        const mine = await login(user);
        const me = await principalOf(mine);
        const change = (current: string, next: string) =>
          auth.account.changePassword(
            me,
            { currentPassword: current, newPassword: next, code: nextCode(user) },
            ORIGIN,
          );
        await expectRefused(change("not my password 1", "brand new pass 1"), "LOGIN_FAILED");
        const reused = await expectRefused(change(PASSWORD, PASSWORD), "VALIDATION_FAILED");
        expect(reused.errors?.[0]).toMatchObject({
          field: "new_password",
          code: "PASSWORD_REUSED",
        });
        const short = await expectRefused(change(PASSWORD, "short 1"), "VALIDATION_FAILED");
        expect(short.errors?.[0]).toMatchObject({
          field: "new_password",
          code: "PASSWORD_TOO_SHORT",
        });
        const passwords = [PASSWORD, "second password 2", "third password 3", "fourth password 4"];
        for (let i = 1; i < passwords.length; i++)
          await change(passwords[i - 1] as string, passwords[i] as string);
        expect(await auth.authenticateAccessToken(other.accessToken)).toMatchObject({
          ok: false,
          reason: "revoked",
        });
        expect((await auth.authenticateAccessToken(mine.accessToken)).ok).toBe(true);
        // The first password is one of the last four: refused; after one more change it is allowed.
        const again = await expectRefused(
          change("fourth password 4", PASSWORD),
          "VALIDATION_FAILED",
        );
        expect(again.errors?.[0]?.code).toBe("PASSWORD_REUSED");
        await change("fourth password 4", "fifth password 5");
        await change("fifth password 5", PASSWORD);
        await auth.login(
          { username: user.username, password: PASSWORD, code: nextCode(user) },
          ORIGIN,
        );
        const events = await audited("auth.password_change", user.id);
        expect(events.filter((e) => e.outcome === "success")).toHaveLength(5);
        expect(events.find((e) => e.outcome === "failure")?.details).toMatchObject({
          reason: "bad_password",
          ip: IP,
        });
      }, 90_000);
    });

    it("access-token keys are not capture keys", async () => {
      const capture = await vault.core.joseKeys.describe();
      expect(capture.some((k) => k.alg === "EdDSA")).toBe(false);
    });
  });
}

describe("the scrypt gate", () => {
  it(`runs at most ${MAX_CONCURRENT_SCRYPT} at once and refuses beyond its queue`, async () => {
    const gate = new ScryptGate(MAX_CONCURRENT_SCRYPT, 8);
    let running = 0;
    let peak = 0;
    const releases: (() => void)[] = [];
    const work = () =>
      gate.run(async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise<void>((resolve) => releases.push(resolve));
        running--;
      });
    const jobs = Array.from({ length: 12 }, work);
    await expectRefused(work(), "RATE_LIMITED");
    while (releases.length > 0 || running > 0) {
      await new Promise((r) => setImmediate(r));
      releases.shift()?.();
    }
    await Promise.all(jobs);
    expect(peak).toBe(MAX_CONCURRENT_SCRYPT);
  });
});
