import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Scope } from "../../src/domain/scopes.js";
import { TENANT_SCOPES } from "../../src/domain/scopes.js";
import type { ErrorCode } from "../../src/errors/registry.js";
import {
  auditRows,
  auth,
  CARDS,
  cardOf,
  expectNoPan,
  expectProblem,
  keyIdOf,
  randomBase62,
  tokenExists,
  tokenize,
  tokenRowCount,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/**
 * Every route that needs an API key, in one table; the security cases below are generated for
 * each of them (STYLE: the security cases are generated for every route from one table).
 */
interface RouteSpec {
  readonly method: "GET" | "POST" | "DELETE";
  /** The route pattern, as recorded in the audit event. */
  readonly pattern: string;
  readonly scope: Scope;
  /** Whether the URL names an existing token of the tenant. */
  readonly onToken: boolean;
  readonly body: (() => object) | undefined;
  /** The status of a successful call. */
  readonly success: number;
}

const PAN = CARDS.visa;

const ROUTES: readonly RouteSpec[] = [
  {
    method: "POST",
    pattern: "/v1/tokens",
    scope: "tokens:write",
    onToken: false,
    body: () => ({ card: cardOf(PAN), dedupe: false }),
    success: 201,
  },
  {
    method: "POST",
    pattern: "/v1/tokens/batch",
    scope: "tokens:write",
    onToken: false,
    body: () => ({ cards: [{ card: cardOf(PAN), dedupe: false }] }),
    success: 200,
  },
  {
    method: "GET",
    pattern: "/v1/tokens/:id",
    scope: "tokens:read",
    onToken: true,
    body: undefined,
    success: 200,
  },
  {
    method: "POST",
    pattern: "/v1/tokens/:id/reveal",
    scope: "tokens:reveal",
    onToken: true,
    body: () => ({ purpose: "route security test" }),
    success: 200,
  },
  {
    method: "DELETE",
    pattern: "/v1/tokens/:id",
    scope: "tokens:delete",
    onToken: true,
    body: undefined,
    success: 204,
  },
];

const ALL_TOKEN_SCOPES: readonly Scope[] = TENANT_SCOPES;

for (const driver of DRIVERS) {
  describe(`route security on ${driver.name}`, () => {
    let vault: TestVault;

    beforeAll(async () => {
      vault = await startTestVault(driver);
    });
    afterAll(async () => vault?.close());

    for (const route of ROUTES) {
      describe(`${route.method} ${route.pattern}`, () => {
        /** A fresh token for routes on a token (so a DELETE never removes another test's token). */
        const target = async (): Promise<string | undefined> =>
          route.onToken
            ? (await tokenize(vault, vault.adminKey, { card: cardOf(PAN), dedupe: false })).id
            : undefined;
        const call = (tokenId: string | undefined, headers: Record<string, string>) =>
          vault.app.inject({
            method: route.method,
            url: route.pattern.replace(":id", tokenId ?? ""),
            headers,
            ...(route.body === undefined ? {} : { payload: route.body() }),
          });

        /**
         * The request is refused with `code`, leaves no token change behind, and exactly one
         * `auth.failure` event records it with its reason.
         */
        const expectDenied = async (
          headers: Record<string, string>,
          code: ErrorCode,
          audit: { actor: string; tenantId?: string | null },
        ) => {
          const tokenId = await target();
          const before = new Set((await auditRows(vault, "auth.failure")).map((e) => e.id));
          const tokens = await tokenRowCount(vault);
          const reveals = (await auditRows(vault, "token.reveal")).length;
          const res = await call(tokenId, headers);
          const problem = expectProblem(res, code);
          expect(problem.errors).toBeUndefined();
          expectNoPan(res.body, PAN);
          expect(await tokenRowCount(vault)).toBe(tokens);
          expect((await auditRows(vault, "token.reveal")).length).toBe(reveals);
          if (tokenId !== undefined)
            expect(await tokenExists(vault, vault.tenantId, tokenId)).toBe(true);
          const added = (await auditRows(vault, "auth.failure")).filter((e) => !before.has(e.id));
          expect(added).toHaveLength(1);
          expect(added[0]).toMatchObject({
            actor: audit.actor,
            ...(audit.tenantId === undefined ? {} : { tenant_id: audit.tenantId }),
            object_id: null,
            outcome: code === "INSUFFICIENT_SCOPE" ? "denied" : "failure",
          });
          expect(added[0]?.details).toMatchObject({ reason: code, route: route.pattern });
        };

        const expectAllowed = async (key: string) => {
          const tokenId = await target();
          const res = await call(tokenId, auth(key));
          expect(res.statusCode, res.body).toBe(route.success);
        };

        it("no Authorization header → 401 AUTH_MISSING", async () => {
          await expectDenied({}, "AUTH_MISSING", { actor: "anonymous", tenantId: null });
        });

        it("authentication happens before the body is read: bad JSON without a key → 401", async () => {
          const tokenId = await target();
          const res = await vault.app.inject({
            method: route.method,
            url: route.pattern.replace(":id", tokenId ?? ""),
            headers: { "content-type": "application/json" },
            payload: `{"card": {"number": "${PAN}"`,
          });
          expectProblem(res, "AUTH_MISSING");
          expectNoPan(res.body, PAN);
        });

        it("garbled credentials → 401 AUTH_INVALID", async () => {
          const randomLive = `pv_live_${randomBase62(22)}_${randomBase62(43)}`;
          const cases: [string, string][] = [
            ["Bearer nonsense", "anonymous"],
            ["Basic dXNlcjpwYXNz", "anonymous"],
            ["Bearer", "anonymous"],
            [`Bearer ${vault.adminKey}x`, "anonymous"],
            [vault.adminKey, "anonymous"],
            // A well-formed key whose id does not exist: the id is attacker-chosen text, so the
            // audit trail records no actor id for it.
            [`Bearer ${randomLive}`, "anonymous"],
          ];
          for (const [header, actor] of cases) {
            await expectDenied({ authorization: header }, "AUTH_INVALID", { actor });
          }
        });

        it("a real key id with a wrong secret → 401 AUTH_INVALID", async () => {
          const key = await vault.newKey(vault.tenantId, [route.scope]);
          const forged = `${key.slice(0, key.lastIndexOf("_") + 1)}${randomBase62(43)}`;
          await expectDenied(auth(forged), "AUTH_INVALID", { actor: keyIdOf(key) });
        });

        it("a revoked key → 401 AUTH_REVOKED", async () => {
          const key = await vault.newKey(vault.tenantId, [...ALL_TOKEN_SCOPES]);
          expect(await vault.core.apiKeys.revoke(keyIdOf(key), "test")).toBe(true);
          await expectDenied(auth(key), "AUTH_REVOKED", { actor: keyIdOf(key) });
        });

        it("a test key presented as a live key → 401 AUTH_INVALID", async () => {
          const key = await vault.newKey(vault.tenantId, [route.scope], "test");
          expect(key.startsWith("pv_test_")).toBe(true);
          const asLive = key.replace(/^pv_test_/, "pv_live_");
          await expectDenied(auth(asLive), "AUTH_INVALID", { actor: keyIdOf(key) });
        });

        it("a key with every scope but the one needed → 403 INSUFFICIENT_SCOPE", async () => {
          const key = await vault.newKey(
            vault.tenantId,
            ALL_TOKEN_SCOPES.filter((s) => s !== route.scope),
          );
          await expectDenied(auth(key), "INSUFFICIENT_SCOPE", {
            actor: keyIdOf(key),
            tenantId: vault.tenantId,
          });
        });

        it(`a key with only ${route.scope} is allowed`, async () => {
          await expectAllowed(await vault.newKey(vault.tenantId, [route.scope]));
        });

        it("an admin key is allowed", async () => {
          await expectAllowed(await vault.newKey(vault.tenantId, [...TENANT_SCOPES]));
          await expectAllowed(vault.adminKey);
        });

        if (route.onToken) {
          it("another tenant's key with every scope → 404 TOKEN_NOT_FOUND, token untouched", async () => {
            const other = await vault.newTenant([...ALL_TOKEN_SCOPES]);
            const tokenId = (await target()) as string;
            const reveals = (await auditRows(vault, "token.reveal")).length;
            const res = await call(tokenId, auth(other.key));
            expectProblem(res, "TOKEN_NOT_FOUND");
            expectNoPan(res.body, PAN);
            expect(await tokenExists(vault, vault.tenantId, tokenId)).toBe(true);
            expect((await auditRows(vault, "token.reveal")).length).toBe(reveals);
            const mine = await vault.app.inject({
              method: "GET",
              url: `/v1/tokens/${tokenId}`,
              headers: auth(vault.adminKey),
            });
            expect(mine.statusCode, mine.body).toBe(200);
          });
        } else {
          it("a key of another tenant writes into that tenant only", async () => {
            const other = await vault.newTenant([route.scope]);
            const mine = await tokenRowCount(vault, vault.tenantId);
            const theirs = await tokenRowCount(vault, other.tenantId);
            const res = await call(undefined, auth(other.key));
            expect(res.statusCode, res.body).toBe(route.success);
            expect(await tokenRowCount(vault, vault.tenantId)).toBe(mine);
            expect(await tokenRowCount(vault, other.tenantId)).toBe(theirs + 1);
          });
        }
      });
    }

    it("the auth scheme is case-insensitive (RFC 9110 section 11.1)", async () => {
      const tokenId = (await tokenize(vault, vault.adminKey, { card: cardOf(PAN), dedupe: false }))
        .id;
      for (const scheme of ["bearer", "BEARER"]) {
        const res = await vault.app.inject({
          method: "GET",
          url: `/v1/tokens/${tokenId}`,
          headers: { authorization: `${scheme} ${vault.adminKey}` },
        });
        expect(res.statusCode, `${scheme}: ${res.body}`).toBe(200);
      }
    });

    it("a method a route does not have → 404 ROUTE_NOT_FOUND, nothing touched (from the table)", async () => {
      const tokenId = (await tokenize(vault, vault.adminKey, { card: cardOf(PAN), dedupe: false }))
        .id;
      const urls = [...new Set(ROUTES.map((r) => r.pattern.replace(":id", tokenId)))];
      const patternRegex = (pattern: string) => new RegExp(`^${pattern.replace(":id", "[^/]+")}$`);
      const tokens = await tokenRowCount(vault);
      let checked = 0;
      for (const url of urls) {
        // Every method some route of the table answers on this URL.
        const allowed = ROUTES.filter((r) => patternRegex(r.pattern).test(url)).map(
          (r) => r.method as string,
        );
        for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE"] as const) {
          if (allowed.includes(method)) continue;
          const res = await vault.app.inject({
            method,
            url,
            headers: auth(vault.adminKey),
            ...(method === "GET" || method === "DELETE" ? {} : { payload: cardOf(PAN) }),
          });
          expectProblem(res, "ROUTE_NOT_FOUND");
          expectNoPan(res.body, PAN);
          checked += 1;
        }
      }
      expect(checked).toBe(13);
      expect(await tokenRowCount(vault)).toBe(tokens);
      expect(await tokenExists(vault, vault.tenantId, tokenId)).toBe(true);
    });

    it("an unknown route → 404 ROUTE_NOT_FOUND", async () => {
      const res = await vault.app.inject({
        method: "GET",
        url: "/v1/cards",
        headers: auth(vault.adminKey),
      });
      expectProblem(res, "ROUTE_NOT_FOUND");
    });

    it("a presented key whose id holds a card number is not written to the audit trail", async () => {
      // An unknown key id is attacker-chosen text; recording it verbatim as the actor would put
      // a card number typed into the Authorization header into the audit table in clear.
      const presented = `pv_live_${CARDS.visa2}${randomBase62(6)}_${randomBase62(43)}`;
      const res = await vault.app.inject({
        method: "GET",
        url: "/v1/tokens/tok_0000000000000000000000",
        headers: auth(presented),
      });
      expectProblem(res, "AUTH_INVALID");
      expectNoPan(res.body, CARDS.visa2);
      const { rows } = await vault.core.db.query<{ t: string }>(
        "SELECT a::text AS t FROM audit_events a WHERE action = 'auth.failure'",
      );
      expect(rows.length).toBeGreaterThan(0);
      expectNoPan(rows.map((r) => r.t).join("\n"), CARDS.visa2);
    });

    it("health checks need no key and record no auth failure", async () => {
      const before = (await auditRows(vault, "auth.failure")).length;
      for (const url of ["/healthz", "/readyz"]) {
        const res = await vault.app.inject({ method: "GET", url });
        expect(res.statusCode, res.body).toBe(200);
      }
      expect((await auditRows(vault, "auth.failure")).length).toBe(before);
    });
  });
}
