import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/config.js";
import type { RouteSpec } from "../../src/http/route-table.js";
import { ROUTES } from "../../src/http/route-table.js";
import { auth, CARDS, expectProblem, tokenizeBody } from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/**
 * Issue 5 point 6: the security headers on every response — every route in the route table
 * (generated, so a new route is covered the day it is added), errors, 404s, and the few that
 * override a header on purpose — and CORS closed by default, open only to an exact allowlist.
 * Headers do not depend on the store, so this runs on the first driver only.
 */

const HSTS = "max-age=63072000; includeSubDomains";
const API_CSP = "default-src 'none'; frame-ancestors 'none'";
const MERCHANT = "https://shop.example";
const STRANGER = "https://evil.example";

/** A concrete URL for a route pattern: ids that name nothing, a wildcard that names no file. */
function concreteUrl(spec: RouteSpec): string {
  return spec.url.replace(/:(\w+)/g, "$1_doesnotexist").replace("*", "nothing-here.js");
}

function requestFor(spec: RouteSpec, headers: Record<string, string> = {}): InjectOptions {
  const withBody = spec.method === "POST" || spec.method === "PUT" || spec.method === "PATCH";
  return {
    method: spec.method,
    url: concreteUrl(spec),
    headers,
    ...(withBody ? { payload: {} } : {}),
  };
}

/** Responses that set their own caching: public keys and static code, never card data. */
function ownCaching(spec: RouteSpec, status: number): boolean {
  return status < 400 && (spec.url === "/v1/capture/jwks" || spec.url === "/capture/assets/*");
}

function expectNoCorsGrant(res: LightMyRequestResponse): void {
  const granted = Object.keys(res.headers).filter((name) => name.startsWith("access-control-"));
  expect(granted, `CORS fields on ${res.statusCode}`).toEqual([]);
}

/** The headers every response carries; `cache: false` for the two that cache on purpose. */
function expectSecurityHeaders(res: LightMyRequestResponse, options: { cache?: boolean } = {}) {
  const context = `${res.statusCode} ${res.body.slice(0, 80)}`;
  expect(res.headers["strict-transport-security"], context).toBe(HSTS);
  expect(res.headers["x-content-type-options"], context).toBe("nosniff");
  expect(res.headers["x-frame-options"], context).toBe("DENY");
  // The API's policy; an HTML page (the capture frame's error page) may add its own directives.
  const csp = String(res.headers["content-security-policy"]).split("; ");
  if (!String(res.headers["content-type"]).startsWith("text/html"))
    expect(csp.join("; "), context).toBe(API_CSP);
  expect(csp, context).toEqual(
    expect.arrayContaining(["default-src 'none'", "frame-ancestors 'none'"]),
  );
  expect(res.headers["referrer-policy"], context).toBe("no-referrer");
  expect(res.headers["x-request-id"], context).toMatch(/^req_/);
  if (options.cache !== false) expect(res.headers["cache-control"], context).toBe("no-store");
}

const driver = DRIVERS[0];
if (driver === undefined) throw new Error("no database driver");

describe("security headers on every response", () => {
  let vault: TestVault;

  beforeAll(async () => {
    vault = await startTestVault(driver);
  });
  afterAll(async () => vault?.close());

  describe.each(ROUTES.map((spec) => [`${spec.method} ${spec.url}`, spec] as const))(
    "%s",
    (_name, spec) => {
      it("answers an unauthenticated request with every header and no CORS grant", async () => {
        const res = await vault.app.inject(requestFor(spec));
        expect(res.statusCode, res.body).toBeLessThan(500);
        expectSecurityHeaders(res, { cache: !ownCaching(spec, res.statusCode) });
        expectNoCorsGrant(res);
      });

      it("answers a cross-origin preflight without a grant, and not with a 5xx", async () => {
        const res = await vault.app.inject({
          method: "OPTIONS",
          url: concreteUrl(spec),
          headers: {
            origin: STRANGER,
            "access-control-request-method": spec.method,
            "access-control-request-headers": "authorization, content-type",
          },
        });
        expectProblem(res, "ROUTE_NOT_FOUND");
        expectSecurityHeaders(res);
        expectNoCorsGrant(res);
      });
    },
  );

  it("keeps them on 400, 404, 401, 413 and 415 problems", async () => {
    const notFound = await vault.app.inject({ method: "GET", url: "/no/such/route" });
    expectProblem(notFound, "ROUTE_NOT_FOUND");
    expectSecurityHeaders(notFound);
    const unknownMethod = await vault.app.inject({ method: "PROPFIND", url: "/v1/tokens" });
    expect(unknownMethod.statusCode).toBe(404);
    expectSecurityHeaders(unknownMethod);
    const unauthenticated = await vault.app.inject({ method: "GET", url: "/v1/tokens/tok_x" });
    expectProblem(unauthenticated, "AUTH_MISSING");
    expectSecurityHeaders(unauthenticated);
    const tooLarge = await vault.app.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: { ...auth(vault.adminKey), "content-type": "application/json" },
      payload: JSON.stringify({ padding: "x".repeat(70_000) }),
    });
    expectProblem(tooLarge, "PAYLOAD_TOO_LARGE");
    expectSecurityHeaders(tooLarge);
    const wrongType = await vault.app.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: { ...auth(vault.adminKey), "content-type": "text/plain" },
      payload: "4242424242424242",
    });
    expectProblem(wrongType, "UNSUPPORTED_MEDIA_TYPE");
    expectSecurityHeaders(wrongType);
    // A URL the router cannot decode is refused before any hook runs: still a problem document
    // with every header.
    const undecodable = await vault.app.inject({ method: "GET", url: "/v1/tokens/%zz" });
    expectProblem(undecodable, "INVALID_REQUEST");
    expectSecurityHeaders(undecodable);
  });

  it("sends no-store on responses that carry card data", async () => {
    const created = await vault.app.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: auth(vault.adminKey),
      payload: tokenizeBody(CARDS.visa),
    });
    expect(created.statusCode, created.body).toBe(201);
    expectSecurityHeaders(created);
    const id = (created.json() as { id: string }).id;
    const read = await vault.app.inject({
      method: "GET",
      url: `/v1/tokens/${id}`,
      headers: auth(vault.adminKey),
    });
    expect(read.statusCode).toBe(200);
    expectSecurityHeaders(read);
    const revealed = await vault.app.inject({
      method: "POST",
      url: `/v1/tokens/${id}/reveal`,
      headers: auth(vault.adminKey),
      payload: { purpose: "security headers test" },
    });
    expect(revealed.statusCode, revealed.body).toBe(200);
    expect(revealed.body).toContain(CARDS.visa);
    expectSecurityHeaders(revealed);
  });

  it("lets only the JWKS and the frame's assets cache, and the frame set its own framing", async () => {
    const jwks = await vault.app.inject({ method: "GET", url: "/v1/capture/jwks" });
    expect(jwks.statusCode).toBe(200);
    expect(jwks.headers["cache-control"]).toMatch(/^public, max-age=\d+$/);
    expectSecurityHeaders(jwks, { cache: false });
    const script = await vault.app.inject({ method: "GET", url: "/capture/assets/frame.js" });
    expect(script.statusCode).toBe(200);
    expect(script.headers["cache-control"]).toBe("no-cache");
    expectSecurityHeaders(script, { cache: false });

    const session = await vault.app.inject({
      method: "POST",
      url: "/v1/capture/sessions",
      headers: auth(vault.adminKey),
      payload: { origins: [MERCHANT] },
    });
    expect(session.statusCode, session.body).toBe(201);
    expectSecurityHeaders(session);
    const frameUrl = new URL((session.json() as { frame_url: string }).frame_url);
    const frame = await vault.app.inject({
      method: "GET",
      url: `${frameUrl.pathname}${frameUrl.search}`,
    });
    expect(frame.statusCode).toBe(200);
    // Embeddable by the session's origin only: frame-ancestors names it, X-Frame-Options (which
    // cannot name an origin) is gone; everything else stays.
    expect(frame.headers["content-security-policy"]).toContain(`frame-ancestors ${MERCHANT}`);
    expect(frame.headers["x-frame-options"]).toBeUndefined();
    expect(frame.headers["cache-control"]).toBe("no-store");
    expect(frame.headers["strict-transport-security"]).toBe(HSTS);
    expect(frame.headers["x-content-type-options"]).toBe("nosniff");
    expect(frame.headers["referrer-policy"]).toBe("no-referrer");
  });

  it("grants no origin by default: simple requests, credentialed requests and preflights", async () => {
    for (const origin of [STRANGER, MERCHANT, "null"]) {
      const health = await vault.app.inject({
        method: "GET",
        url: "/healthz",
        headers: { origin },
      });
      expect(health.statusCode).toBe(200);
      expectNoCorsGrant(health);
      const token = await vault.app.inject({
        method: "GET",
        url: "/v1/tokens/tok_doesnotexist",
        headers: { ...auth(vault.adminKey), origin },
      });
      expectProblem(token, "TOKEN_NOT_FOUND");
      expectNoCorsGrant(token);
      expect(token.headers.vary).toBeUndefined();
    }
  });
});

describe("CORS with PAYVAULT_CORS_ORIGINS", () => {
  let vault: TestVault;
  const ADMIN_CONSOLE = "https://admin.example";

  beforeAll(async () => {
    vault = await startTestVault(driver, {
      env: { PAYVAULT_CORS_ORIGINS: `${MERCHANT}, ${ADMIN_CONSOLE}` },
    });
  });
  afterAll(async () => vault?.close());

  const preflight = (origin: string, extra: Record<string, string> = {}, url = "/v1/tokens") =>
    vault.app.inject({
      method: "OPTIONS",
      url,
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,idempotency-key",
        ...extra,
      },
    });

  it("answers a listed origin's preflight for the API: 204, that origin, never credentials", async () => {
    for (const origin of [MERCHANT, ADMIN_CONSOLE]) {
      const res = await preflight(origin);
      expect(res.statusCode, res.body).toBe(204);
      expect(res.body).toBe("");
      expect(res.headers["access-control-allow-origin"]).toBe(origin);
      expect(String(res.headers["access-control-allow-methods"]).split(", ")).toEqual(
        expect.arrayContaining(["GET", "POST", "DELETE"]),
      );
      expect(String(res.headers["access-control-allow-headers"]).split(", ")).toEqual(
        expect.arrayContaining(["authorization", "content-type", "idempotency-key"]),
      );
      expect(res.headers["access-control-allow-credentials"]).toBeUndefined();
      expect(res.headers.vary).toMatch(/\borigin\b/i);
      expectSecurityHeaders(res);
    }
  });

  it("grants nothing to any other origin, method, header or path", async () => {
    const refused = [
      await preflight(STRANGER),
      await preflight("null"),
      await preflight("http://shop.example"),
      await preflight("https://shop.example.evil.example"),
      await preflight("https://SHOP.example"),
      await preflight(MERCHANT, { "access-control-request-method": "PUT" }),
      await preflight(MERCHANT, {
        "access-control-request-headers": "authorization, x-forwarded-for",
      }),
      await preflight(MERCHANT, {}, "/capture/frame"),
    ];
    for (const res of refused) {
      expectProblem(res, "ROUTE_NOT_FOUND");
      expectNoCorsGrant(res);
      expectSecurityHeaders(res);
    }
  });

  it("names a listed origin on the API's responses, errors included, and no other", async () => {
    const ok = await vault.app.inject({
      method: "GET",
      url: "/v1/tokens/tok_doesnotexist",
      headers: { ...auth(vault.adminKey), origin: MERCHANT },
    });
    expectProblem(ok, "TOKEN_NOT_FOUND");
    expect(ok.headers["access-control-allow-origin"]).toBe(MERCHANT);
    expect(String(ok.headers["access-control-expose-headers"])).toContain("x-request-id");
    expect(ok.headers["access-control-allow-credentials"]).toBeUndefined();
    expect(ok.headers.vary).toMatch(/\borigin\b/i);
    const denied = await vault.app.inject({
      method: "GET",
      url: "/v1/tokens/tok_doesnotexist",
      headers: { origin: MERCHANT },
    });
    expectProblem(denied, "AUTH_MISSING");
    expect(denied.headers["access-control-allow-origin"]).toBe(MERCHANT);

    const stranger = await vault.app.inject({
      method: "GET",
      url: "/v1/tokens/tok_doesnotexist",
      headers: { ...auth(vault.adminKey), origin: STRANGER },
    });
    expectProblem(stranger, "TOKEN_NOT_FOUND");
    expectNoCorsGrant(stranger);
    expect(stranger.headers.vary).toMatch(/\borigin\b/i);
    // Outside the API (health, the capture frame's files) nothing is granted, even to a listed origin.
    const health = await vault.app.inject({
      method: "GET",
      url: "/healthz",
      headers: { origin: MERCHANT },
    });
    expectNoCorsGrant(health);
  });

  it("accepts only exact https origins in the allowlist", () => {
    expect(loadConfig({}).corsOrigins).toEqual([]);
    expect(
      loadConfig({ PAYVAULT_CORS_ORIGINS: `${MERCHANT},${MERCHANT}, https://a.example:8443` })
        .corsOrigins,
    ).toEqual([MERCHANT, "https://a.example:8443"]);
    for (const bad of [
      "*",
      "http://shop.example",
      "https://shop.example/",
      "https://shop.example/path",
      "https://*.example",
      "https://user@shop.example",
      "https://SHOP.example",
      "https://shop.example:443",
      "null",
      "shop.example",
    ]) {
      expect(() => loadConfig({ PAYVAULT_CORS_ORIGINS: bad }), bad).toThrow(ConfigError);
    }
  });
});

describe("security headers on the authentication backoff's 429", () => {
  let vault: TestVault;

  beforeAll(async () => {
    vault = await startTestVault(driver, { env: { PAYVAULT_AUTH_BACKOFF: "on" } });
  });
  afterAll(async () => vault?.close());

  it("keeps them on a 429 from the authentication backoff", async () => {
    const garbled = { authorization: "Bearer pv_live_garbled" };
    const first = await vault.app.inject({
      method: "GET",
      url: "/v1/tokens/tok_x",
      headers: garbled,
    });
    expectProblem(first, "AUTH_INVALID");
    const blocked = await vault.app.inject({
      method: "GET",
      url: "/v1/tokens/tok_x",
      headers: garbled,
    });
    expectProblem(blocked, "AUTH_BACKOFF");
    expect(blocked.headers["retry-after"]).toMatch(/^\d+$/);
    expectSecurityHeaders(blocked);
    expectNoCorsGrant(blocked);
  });
});
