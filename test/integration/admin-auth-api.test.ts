import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeBase32, totpAt } from "../../src/auth/totp.js";
import {
  auditRows,
  auth,
  CARDS,
  expectFieldError,
  expectProblem,
  type ProblemBody,
  tokenize,
  tokenizeBody,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/**
 * The admin-auth HTTP contract (issue 5 point 3; docs/admin-auth.md): enrolment, login, refresh,
 * logout, step-up and password change under /v1/auth, and /v1/admin-users, through app.inject
 * with a controllable clock. The service-level cases are in admin-users.test.ts.
 */

const PASSWORD = "correct horse 42 battery";
const TOKEN_KEYS = ["access_token", "expires_in", "refresh_token", "token_type"];

let counter = 0;

for (const driver of DRIVERS) {
  describe(`admin auth API on ${driver.name}`, () => {
    let vault: TestVault;
    let now = new Date();
    const clock = { now: () => now };
    const advance = (ms: number) => {
      now = new Date(now.getTime() + ms);
    };

    beforeAll(async () => {
      // These tests fail on purpose, often, from one address: the rate limits and the backoff of
      // failures (tested in their own suites) are set out of the way, and every request moves
      // the clock on by a second so a 1 ms backoff has always passed.
      vault = await startTestVault(driver, {
        clock,
        env: {
          PAYVAULT_AUTH_BACKOFF_BASE_MS: "1",
          PAYVAULT_AUTH_BACKOFF_MAX_MS: "1",
          PAYVAULT_RATE_LIMIT_AUTH: "10000:1000",
          PAYVAULT_RATE_LIMIT_AUTH_TENANT: "10000:1000",
          PAYVAULT_RATE_LIMIT_AUTH_IP: "10000:1000",
        },
      });
    }, 60_000);
    afterAll(async () => vault?.close());

    interface Person {
      id: string;
      username: string;
      key: Buffer;
      recoveryCodes: string[];
    }

    function nextCode(person: Person): string {
      advance(30_000);
      return totpAt(person.key, now.getTime() / 1000);
    }

    function post(url: string, payload: object, headers: Record<string, string> = {}) {
      advance(1_000);
      return vault.app.inject({ method: "POST", url, payload, headers });
    }

    function request(method: "GET" | "DELETE", url: string, key: string) {
      advance(1_000);
      return vault.app.inject({ method, url, headers: auth(key) });
    }

    async function person(roles: string[], creator = vault.adminKey): Promise<Person> {
      const username = `person-${driver.name}-${++counter}`;
      const created = await post("/v1/admin-users", { username, roles }, auth(creator));
      expect(created.statusCode, created.body).toBe(201);
      const { id, enrollment_token } = created.json() as { id: string; enrollment_token: string };
      const enrolled = await post("/v1/auth/enroll", { enrollment_token, password: PASSWORD });
      expect(enrolled.statusCode, enrolled.body).toBe(200);
      const body = enrolled.json() as { secret: string; recovery_codes: string[] };
      const who = {
        id,
        username,
        key: decodeBase32(body.secret) as Buffer,
        recoveryCodes: body.recovery_codes,
      };
      const confirmed = await post("/v1/auth/enroll/confirm", {
        enrollment_token,
        code: nextCode(who),
      });
      expect(confirmed.statusCode, confirmed.body).toBe(204);
      return who;
    }

    async function login(who: Person) {
      const res = await post("/v1/auth/login", {
        username: who.username,
        password: PASSWORD,
        code: nextCode(who),
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as {
        access_token: string;
        refresh_token: string;
        expires_in: number;
        token_type: string;
      };
    }

    const listUsers = (token: string) => request("GET", "/v1/admin-users", token);

    it("creates, enrolls and logs in a user whose access token works on the admin API", async () => {
      const created = await post(
        "/v1/admin-users",
        { username: `Flow-${driver.name}`, roles: ["tenant_admin"] },
        auth(vault.adminKey),
      );
      expect(created.statusCode, created.body).toBe(201);
      const view = created.json() as Record<string, unknown>;
      expect(view).toMatchObject({
        username: `flow-${driver.name}`,
        roles: ["tenant_admin"],
        status: "pending",
        enrolled_at: null,
      });
      const token = view.enrollment_token as string;
      const weak = await post("/v1/auth/enroll", { enrollment_token: token, password: "short 1" });
      expectFieldError(weak, "password", "PASSWORD_TOO_SHORT");
      const enrolled = await post("/v1/auth/enroll", {
        enrollment_token: token,
        password: PASSWORD,
      });
      expect(enrolled.statusCode).toBe(200);
      expect(enrolled.headers["cache-control"]).toBe("no-store");
      const secrets = enrolled.json() as {
        otpauth_uri: string;
        secret: string;
        recovery_codes: string[];
      };
      expect(Object.keys(secrets).sort()).toEqual(["otpauth_uri", "recovery_codes", "secret"]);
      expect(secrets.recovery_codes).toHaveLength(10);
      const who: Person = {
        id: view.id as string,
        username: view.username as string,
        key: decodeBase32(secrets.secret) as Buffer,
        recoveryCodes: secrets.recovery_codes,
      };
      expectProblem(
        await post("/v1/auth/enroll/confirm", { enrollment_token: token, code: "000000" }),
        "LOGIN_FAILED",
      );
      const confirm = await post("/v1/auth/enroll/confirm", {
        enrollment_token: token,
        code: nextCode(who),
      });
      expect(confirm.statusCode, confirm.body).toBe(204);
      expectProblem(
        await post("/v1/auth/enroll", { enrollment_token: token, password: PASSWORD }),
        "AUTH_INVALID",
      );

      const tokens = await login(who);
      expect(Object.keys(tokens).sort()).toEqual(TOKEN_KEYS);
      expect(tokens.token_type).toBe("Bearer");
      expect(tokens.expires_in).toBeLessThanOrEqual(900);
      const list = await listUsers(tokens.access_token);
      expect(list.statusCode, list.body).toBe(200);
      const users = (list.json() as { users: { id: string; status: string }[] }).users;
      expect(users.find((u) => u.id === who.id)?.status).toBe("active");
      // The audit trail has the login with the client's address.
      const logins = (await auditRows(vault, "auth.login")).filter((e) => e.actor === who.id);
      expect(logins[0]).toMatchObject({ outcome: "success" });
      expect(logins[0]?.details.ip).toBe("127.0.0.1");
      const creation = (await auditRows(vault, "admin_user.create")).find(
        (e) => e.object_id === who.id,
      );
      expect(creation?.details.ip).toBe("127.0.0.1");
    });

    it("answers unknown user, wrong password and wrong code identically", async () => {
      const who = await person(["reader"]);
      const attempts = [
        { username: `ghost-${driver.name}`, password: PASSWORD, code: nextCode(who) },
        { username: who.username, password: "wrong password 99", code: nextCode(who) },
        { username: who.username, password: PASSWORD, code: "000000" },
      ];
      const bodies: Omit<ProblemBody, "request_id">[] = [];
      for (const attempt of attempts) {
        const res = await post("/v1/auth/login", attempt);
        const { request_id: _, ...rest } = expectProblem(res, "LOGIN_FAILED");
        bodies.push(rest);
        expect(Object.keys(res.headers).sort()).toEqual(
          Object.keys((await post("/v1/auth/login", attempts[0] as object)).headers).sort(),
        );
      }
      expect(bodies[1]).toEqual(bodies[0]);
      expect(bodies[2]).toEqual(bodies[0]);
      expectFieldError(
        await post("/v1/auth/login", { username: "x", password: "y", extra: 1 }),
        "extra",
        "UNKNOWN_FIELD",
      );
    });

    it("rotates refresh tokens; a reused one revokes the session", async () => {
      const who = await person(["tenant_admin"]);
      const first = await login(who);
      const second = await post("/v1/auth/refresh", { refresh_token: first.refresh_token });
      expect(second.statusCode, second.body).toBe(200);
      const pair = second.json() as { access_token: string; refresh_token: string };
      expect(Object.keys(pair).sort()).toEqual(TOKEN_KEYS);
      expect((await listUsers(pair.access_token)).statusCode).toBe(200);
      expectProblem(
        await post("/v1/auth/refresh", { refresh_token: first.refresh_token }),
        "REFRESH_TOKEN_INVALID",
      );
      expectProblem(await listUsers(pair.access_token), "AUTH_REVOKED");
      expectProblem(
        await post("/v1/auth/refresh", { refresh_token: pair.refresh_token }),
        "REFRESH_TOKEN_INVALID",
      );
    });

    it("logout ends the session; an API key cannot log out", async () => {
      const who = await person(["tenant_admin"]);
      const tokens = await login(who);
      const out = await post("/v1/auth/logout", {}, auth(tokens.access_token));
      expect(out.statusCode, out.body).toBe(204);
      expectProblem(await listUsers(tokens.access_token), "AUTH_REVOKED");
      expectProblem(
        await post("/v1/auth/refresh", { refresh_token: tokens.refresh_token }),
        "REFRESH_TOKEN_INVALID",
      );
      expectProblem(await post("/v1/auth/logout", {}, auth(vault.adminKey)), "INSUFFICIENT_SCOPE");
      expectProblem(await post("/v1/auth/logout", {}), "AUTH_MISSING");
    });

    it("ends an idle session after 15 minutes and refuses an expired access token", async () => {
      const who = await person(["tenant_admin"]);
      const idle = await login(who);
      advance(15 * 60_000 + 1_000);
      expectProblem(await listUsers(idle.access_token), "SESSION_EXPIRED");
      expectProblem(
        await post("/v1/auth/refresh", { refresh_token: idle.refresh_token }),
        "SESSION_EXPIRED",
      );
      const active = await login(who);
      advance(10 * 60_000);
      expect((await listUsers(active.access_token)).statusCode).toBe(200);
      advance(5 * 60_000 + 10_000);
      expectProblem(await listUsers(active.access_token), "AUTH_EXPIRED");
      const renewed = await post("/v1/auth/refresh", { refresh_token: active.refresh_token });
      expect(renewed.statusCode, renewed.body).toBe(200);
    });

    it("revealing a card as a person needs a step-up within 5 minutes", async () => {
      const writer = await vault.newKey(vault.tenantId, ["tokens:write"]);
      const { id } = await tokenize(vault, writer, tokenizeBody(CARDS.visa));
      const who = await person(["revealer"], vault.adminKey);
      const tokens = await login(who);
      const reveal = (token: string) =>
        post(`/v1/tokens/${id}/reveal`, { purpose: "chargeback review" }, auth(token));
      expect((await reveal(tokens.access_token)).statusCode).toBe(200);
      advance(5 * 60_000 + 1_000);
      expectProblem(await reveal(tokens.access_token), "MFA_STEP_UP_REQUIRED");
      expectProblem(
        await post("/v1/auth/step-up", { code: "000000" }, auth(tokens.access_token)),
        "LOGIN_FAILED",
      );
      const stepped = await post(
        "/v1/auth/step-up",
        { code: nextCode(who) },
        auth(tokens.access_token),
      );
      expect(stepped.statusCode, stepped.body).toBe(200);
      const fresh = stepped.json() as Record<string, unknown>;
      expect(Object.keys(fresh).sort()).toEqual(["access_token", "expires_in", "token_type"]);
      expect((await reveal(fresh.access_token as string)).statusCode).toBe(200);
      const steps = (await auditRows(vault, "auth.step_up")).filter((e) => e.actor === who.id);
      expect(steps.map((e) => e.outcome).sort()).toEqual(["failure", "success"]);
      for (const step of steps) expect(step.details.ip).toBe("127.0.0.1");
    });

    it("changes a password with the current one and a code; refuses a recent one", async () => {
      const who = await person(["reader"]);
      const tokens = await login(who);
      const change = (current: string, next: string) =>
        post(
          "/v1/auth/password",
          { current_password: current, new_password: next, code: nextCode(who) },
          auth(tokens.access_token),
        );
      expectProblem(await change("wrong password 1", "new password 2"), "LOGIN_FAILED");
      expectFieldError(await change(PASSWORD, PASSWORD), "new_password", "PASSWORD_REUSED");
      expect((await change(PASSWORD, "new password 2")).statusCode).toBe(204);
      const relog = await post("/v1/auth/login", {
        username: who.username,
        password: "new password 2",
        code: nextCode(who),
      });
      expect(relog.statusCode, relog.body).toBe(200);
    });

    it("manages users within the tenant: scopes it holds, disable, unlock, 404 elsewhere", async () => {
      const limited = await vault.newKey(vault.tenantId, ["tenant:admin"]);
      expectProblem(
        await post(
          "/v1/admin-users",
          { username: `op-${driver.name}`, roles: ["operator"] },
          auth(limited),
        ),
        "SCOPE_NOT_GRANTABLE",
      );
      expectFieldError(
        await post(
          "/v1/admin-users",
          { username: "someone", roles: ["wizard"] },
          auth(vault.adminKey),
        ),
        "roles.0",
        "INVALID_VALUE",
      );
      const who = await person(["tenant_admin"]);
      const dup = await post(
        "/v1/admin-users",
        { username: who.username.toUpperCase(), roles: ["reader"] },
        auth(vault.adminKey),
      );
      expectProblem(dup, "ADMIN_USER_EXISTS");
      const tokens = await login(who);
      const other = await vault.newTenant(["tenant:admin"]);
      const del = (key: string) => request("DELETE", `/v1/admin-users/${who.id}`, key);
      expectProblem(await del(other.key), "ADMIN_USER_NOT_FOUND");
      expectProblem(
        await post(`/v1/admin-users/${who.id}/unlock`, {}, auth(other.key)),
        "ADMIN_USER_NOT_FOUND",
      );
      const others = await listUsers(other.key);
      expect((others.json() as { users: unknown[] }).users).toEqual([]);
      expect(
        (await post(`/v1/admin-users/${who.id}/unlock`, {}, auth(vault.adminKey))).statusCode,
      ).toBe(204);
      expect((await del(vault.adminKey)).statusCode).toBe(204);
      expectProblem(await listUsers(tokens.access_token), "AUTH_REVOKED");
      expectProblem(
        await post("/v1/auth/login", {
          username: who.username,
          password: PASSWORD,
          code: nextCode(who),
        }),
        "LOGIN_FAILED",
      );
      const audit = (await auditRows(vault, "admin_user.disable")).find(
        (e) => e.object_id === who.id,
      );
      expect(audit?.details.ip).toBe("127.0.0.1");
    });
  });
}
