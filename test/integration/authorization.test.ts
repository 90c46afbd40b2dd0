import { generateKeyPairSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Role, Scope } from "../../src/domain/scopes.js";
import { expandScopes, ROLE_NAMES, SCOPES, TENANT_SCOPES } from "../../src/domain/scopes.js";
import type { ErrorCode } from "../../src/errors/registry.js";
import { roleMayCall } from "../../src/http/access-matrix.js";
import type { RouteSpec } from "../../src/http/route-table.js";
import { ROUTES } from "../../src/http/route-table.js";
import type { EnrolledUser } from "../support/admin-users.js";
import { enrolledUser, SteppingClock } from "../support/admin-users.js";
import {
  auditRows,
  auth,
  CARDS,
  cardOf,
  expectProblem,
  keyIdOf,
  randomBase62,
  tokenize,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/** One request to a route, made fresh for each call (a DELETE never reuses another's object). */
interface Call {
  readonly url: string;
  readonly payload?: unknown;
}

/**
 * How to call each route of the table, and what an authorized caller gets. The expected status
 * of an authorized call is exact: a success, or for routes whose success needs a ceremony in
 * flight, the route's own refusal (never 401/403).
 */
interface Sample {
  /** `tenantId`: the tenant whose objects the call names. */
  make(vault: TestVault, tenantId: string): Promise<Call>;
  readonly allowed: number;
  /** For routes on one tenant's object: the 404 another tenant's caller gets. */
  readonly notFound?: ErrorCode;
  /** The call ends the caller's session: an admin user makes it from a session of its own. */
  readonly newSession?: boolean;
}

const PAN = CARDS.visa;

let ipCounter = 0;
/** Each request from its own address, so the per-address failure backoff never mixes cases. */
const nextIp = () => {
  ipCounter += 1;
  return `10.${(ipCounter >> 16) & 255}.${(ipCounter >> 8) & 255}.${ipCounter & 255}`;
};

async function newToken(vault: TestVault, tenantId: string): Promise<string> {
  const key = await vault.newKey(tenantId, ["tokens:write"]);
  return (await tokenize(vault, key, { card: cardOf(PAN), dedupe: false })).id;
}

async function newApiKeyId(vault: TestVault, tenantId: string): Promise<string> {
  return keyIdOf(await vault.newKey(tenantId, ["tokens:read"]));
}

async function newAdminUserId(vault: TestVault, tenantId: string): Promise<string> {
  const created = await vault.core.adminAuth.users.create(
    { actor: "test", ip: "127.0.0.1", grantable: "any" },
    { tenantId, username: `authz-${randomBase62(12)}`, roles: ["reader"] },
  );
  return created.user.id;
}

function publicJwk(): Record<string, unknown> {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return publicKey.export({ format: "jwk" }) as Record<string, unknown>;
}

async function newJoseKey(vault: TestVault, tenantId: string): Promise<string> {
  const kid = `authz-${randomBase62(12)}`;
  const key = await vault.newKey(tenantId, ["keys:manage"]);
  const res = await vault.app.inject({
    method: "POST",
    url: "/v1/tenant/jose-keys",
    headers: auth(key),
    payload: { jwk: { ...publicJwk(), kid }, use: "sig", alg: "ES256" },
  });
  expect(res.statusCode, res.body).toBe(201);
  return kid;
}

async function newForwardDestination(vault: TestVault, tenantId: string): Promise<string> {
  const key = await vault.newKey(tenantId, ["tenant:admin"]);
  const res = await vault.app.inject({
    method: "POST",
    url: "/v1/forward/destinations",
    headers: auth(key),
    payload: { host: `authz-${randomBase62(12).toLowerCase()}.example`, path_prefix: "/" },
  });
  expect(res.statusCode, res.body).toBe(201);
  return (res.json() as { id: string }).id;
}

const WEBHOOK_SECRET = "whsec_authorizationTestSecret01";

async function newWebhookEndpoint(vault: TestVault, tenantId: string): Promise<string> {
  const key = await vault.newKey(tenantId, ["webhooks:manage"]);
  const res = await vault.app.inject({
    method: "POST",
    url: "/v1/webhook-endpoints",
    headers: auth(key),
    payload: { provider: "stripe", secret: WEBHOOK_SECRET },
  });
  expect(res.statusCode, res.body).toBe(201);
  return (res.json() as { id: string }).id;
}

/**
 * One endpoint (or destination) per tenant for the samples that only read, rotate or hang
 * events on it: the suite makes hundreds of calls, more than a tenant may hold (tenant-limits.ts).
 * DELETE samples make their own.
 */
const sharedEndpoints = new Map<string, Promise<string>>();
const sharedEndpoint = (vault: TestVault, tenantId: string): Promise<string> => {
  let id = sharedEndpoints.get(tenantId);
  if (id === undefined) {
    id = newWebhookEndpoint(vault, tenantId);
    sharedEndpoints.set(tenantId, id);
  }
  return id;
};

/** A received event already in the dead-letter queue (replay and purge need one). */
async function newDeadEvent(vault: TestVault, tenantId: string): Promise<string> {
  const endpointId = await sharedEndpoint(vault, tenantId);
  const id = `evt_${randomBase62(22)}`;
  const now = new Date();
  await vault.core.db.query(
    `INSERT INTO webhook_events (id, tenant_id, endpoint_id, provider, provider_event_id, event_type,
       metadata, received_at, state, attempts, run_at, finished_at)
     VALUES ($1, $2, $3, 'stripe', $1, 'charge.failed', '{}', $4, 'dead', 8, $4, $4)`,
    [id, tenantId, endpointId, now],
  );
  return id;
}

async function newEventDestination(vault: TestVault, tenantId: string): Promise<string> {
  // Calls refused before the DELETE leave their destination behind: clear those first, so the
  // tenant stays under its limit of destinations (the shared one stays).
  const shared = await sharedDestinations.get(tenantId);
  await vault.core.db.query("DELETE FROM event_destinations WHERE tenant_id = $1 AND id <> $2", [
    tenantId,
    shared ?? "",
  ]);
  const key = await vault.newKey(tenantId, ["webhooks:manage"]);
  const res = await vault.app.inject({
    method: "POST",
    url: "/v1/event-destinations",
    headers: auth(key),
    payload: { url: "https://hooks.shop.example.com/payvault", event_types: ["*"] },
  });
  expect(res.statusCode, res.body).toBe(201);
  return (res.json() as { id: string }).id;
}

const sharedDestinations = new Map<string, Promise<string>>();
const sharedDestination = (vault: TestVault, tenantId: string): Promise<string> => {
  let id = sharedDestinations.get(tenantId);
  if (id === undefined) {
    id = newEventDestination(vault, tenantId);
    sharedDestinations.set(tenantId, id);
  }
  return id;
};

/** A delivery to the tenant's shared destination, already in the dead-letter queue. */
async function newDeadDelivery(vault: TestVault, tenantId: string): Promise<string> {
  const destinationId = await sharedDestination(vault, tenantId);
  const eventId = `evt_${randomBase62(22)}`;
  await vault.core.events.publish(vault.core.db, {
    id: eventId,
    tenantId,
    type: "payment.charge.failed",
    createdAt: new Date(),
    data: { provider: "stripe" },
  });
  const { rows } = await vault.core.db.query<{ id: string }>(
    `UPDATE event_deliveries SET state = 'dead', attempts = 16, finished_at = now()
      WHERE destination_id = $1 AND event_id = $2 RETURNING id`,
    [destinationId, eventId],
  );
  expect(rows).toHaveLength(1);
  return rows[0]?.id as string;
}

const fixed = (url: string, payload?: unknown) => async () => ({ url, payload });
const CEREMONY_ID = `cer_${randomBase62(22)}`;

/** Admin users and their sessions (routes/auth.ts, routes/admin-users.ts). */
const ADMIN_USER_SAMPLES: Record<string, Sample> = {
  "POST /v1/auth/logout": { make: fixed("/v1/auth/logout"), allowed: 204, newSession: true },
  // A wrong code: a user gets the step-up's own refusal (no API key ever reaches it).
  "POST /v1/auth/step-up": { make: fixed("/v1/auth/step-up", { code: "000000" }), allowed: 401 },
  "POST /v1/auth/password": {
    make: fixed("/v1/auth/password", {
      current_password: "not the password 1",
      new_password: "another good password 2",
      code: "000000",
    }),
    allowed: 401,
  },
  "POST /v1/admin-users": {
    make: async () => ({
      url: "/v1/admin-users",
      payload: { username: `authz-${randomBase62(12)}`, roles: ["auditor"] },
    }),
    allowed: 201,
  },
  "GET /v1/admin-users": { make: fixed("/v1/admin-users"), allowed: 200 },
  "DELETE /v1/admin-users/:id": {
    make: async (v, t) => ({ url: `/v1/admin-users/${await newAdminUserId(v, t)}` }),
    allowed: 204,
    notFound: "ADMIN_USER_NOT_FOUND",
  },
  "POST /v1/admin-users/:id/unlock": {
    make: async (v, t) => ({ url: `/v1/admin-users/${await newAdminUserId(v, t)}/unlock` }),
    allowed: 204,
    notFound: "ADMIN_USER_NOT_FOUND",
  },
};

const SAMPLES: Record<string, Sample> = {
  "POST /v1/tokens": {
    make: fixed("/v1/tokens", { card: cardOf(PAN), dedupe: false }),
    allowed: 201,
  },
  "POST /v1/tokens/batch": {
    make: fixed("/v1/tokens/batch", { cards: [{ card: cardOf(PAN), dedupe: false }] }),
    allowed: 200,
  },
  "GET /v1/tokens/:id": {
    make: async (v, t) => ({ url: `/v1/tokens/${await newToken(v, t)}` }),
    allowed: 200,
    notFound: "TOKEN_NOT_FOUND",
  },
  "POST /v1/tokens/:id/reveal": {
    make: async (v, t) => ({
      url: `/v1/tokens/${await newToken(v, t)}/reveal`,
      payload: { purpose: "authorization test" },
    }),
    allowed: 200,
    notFound: "TOKEN_NOT_FOUND",
  },
  "DELETE /v1/tokens/:id": {
    make: async (v, t) => ({ url: `/v1/tokens/${await newToken(v, t)}` }),
    allowed: 204,
    notFound: "TOKEN_NOT_FOUND",
  },
  "POST /v1/capture/sessions": {
    make: fixed("/v1/capture/sessions", { origins: ["https://shop.example"] }),
    allowed: 201,
  },
  "POST /v1/tenant/jose-keys": {
    make: async () => ({
      url: "/v1/tenant/jose-keys",
      payload: { jwk: { ...publicJwk(), kid: `authz-${randomBase62(12)}` }, use: "sig" },
    }),
    allowed: 201,
  },
  "GET /v1/tenant/jose-keys": { make: fixed("/v1/tenant/jose-keys"), allowed: 200 },
  "DELETE /v1/tenant/jose-keys/:kid": {
    make: async (v, t) => ({ url: `/v1/tenant/jose-keys/${await newJoseKey(v, t)}` }),
    allowed: 204,
    notFound: "JOSE_KEY_NOT_FOUND",
  },
  "POST /v1/api-keys": {
    make: fixed("/v1/api-keys", { name: "authz", scopes: ["audit:read"] }),
    allowed: 201,
  },
  "GET /v1/api-keys": { make: fixed("/v1/api-keys"), allowed: 200 },
  "GET /v1/api-keys/:id": {
    make: async (v, t) => ({ url: `/v1/api-keys/${await newApiKeyId(v, t)}` }),
    allowed: 200,
    notFound: "API_KEY_NOT_FOUND",
  },
  "POST /v1/api-keys/:id/rotate": {
    make: async (v, t) => ({
      url: `/v1/api-keys/${await newApiKeyId(v, t)}/rotate`,
      payload: { overlap_seconds: 60 },
    }),
    allowed: 201,
    notFound: "API_KEY_NOT_FOUND",
  },
  "DELETE /v1/api-keys/:id": {
    make: async (v, t) => ({ url: `/v1/api-keys/${await newApiKeyId(v, t)}` }),
    allowed: 204,
    notFound: "API_KEY_NOT_FOUND",
  },
  "GET /v1/audit/events": { make: fixed("/v1/audit/events?limit=5"), allowed: 200 },
  "GET /v1/sys/rekey": { make: fixed("/v1/sys/rekey"), allowed: 200 },
  "POST /v1/sys/rekey/verify": {
    make: fixed("/v1/sys/rekey/verify", { share: "not-a-share" }),
    allowed: 409,
  },
  "POST /v1/sys/rekey/cancel": { make: fixed("/v1/sys/rekey/cancel"), allowed: 409 },
  "GET /v1/sys/keys": { make: fixed("/v1/sys/keys"), allowed: 200 },
  "GET /v1/sys/ceremonies": { make: fixed("/v1/sys/ceremonies"), allowed: 200 },
  "POST /v1/sys/ceremonies": {
    make: fixed("/v1/sys/ceremonies", { action: "kek.rotate", params: { environment: "test" } }),
    allowed: 201,
  },
  "POST /v1/sys/ceremonies/:id/approve": {
    make: fixed(`/v1/sys/ceremonies/${CEREMONY_ID}/approve`),
    allowed: 404,
  },
  "POST /v1/sys/ceremonies/:id/reject": {
    make: fixed(`/v1/sys/ceremonies/${CEREMONY_ID}/reject`),
    allowed: 404,
  },
  // An unknown placeholder field: an authorized caller gets the template's own 400.
  "POST /v1/forward": {
    make: fixed("/v1/forward", { url: "https://x.example/", body: { n: "{{ bad }}" } }),
    allowed: 400,
  },
  "POST /v1/forward/destinations": {
    make: async () => ({
      url: "/v1/forward/destinations",
      payload: { host: `authz-${randomBase62(12).toLowerCase()}.example`, path_prefix: "/" },
    }),
    allowed: 201,
  },
  "GET /v1/forward/destinations": { make: fixed("/v1/forward/destinations"), allowed: 200 },
  "DELETE /v1/forward/destinations/:id": {
    make: async (v, t) => ({
      url: `/v1/forward/destinations/${await newForwardDestination(v, t)}`,
    }),
    allowed: 204,
    notFound: "FORWARD_DESTINATION_NOT_FOUND",
  },
  "POST /v1/webhook-endpoints": {
    make: fixed("/v1/webhook-endpoints", { provider: "stripe", secret: WEBHOOK_SECRET }),
    allowed: 201,
  },
  "GET /v1/webhook-endpoints": { make: fixed("/v1/webhook-endpoints"), allowed: 200 },
  "GET /v1/webhook-endpoints/:id": {
    make: async (v, t) => ({ url: `/v1/webhook-endpoints/${await sharedEndpoint(v, t)}` }),
    allowed: 200,
    notFound: "WEBHOOK_ENDPOINT_NOT_FOUND",
  },
  "POST /v1/webhook-endpoints/:id/secrets": {
    make: async (v, t) => ({
      url: `/v1/webhook-endpoints/${await sharedEndpoint(v, t)}/secrets`,
      payload: { secret: "whsec_authorizationTestSecret02", overlap_seconds: 60 },
    }),
    allowed: 200,
    notFound: "WEBHOOK_ENDPOINT_NOT_FOUND",
  },
  "DELETE /v1/webhook-endpoints/:id": {
    make: async (v, t) => ({ url: `/v1/webhook-endpoints/${await newWebhookEndpoint(v, t)}` }),
    allowed: 204,
    notFound: "WEBHOOK_ENDPOINT_NOT_FOUND",
  },
  "GET /v1/webhook-events": { make: fixed("/v1/webhook-events?limit=5"), allowed: 200 },
  "GET /v1/webhook-events/:id": {
    make: async (v, t) => ({ url: `/v1/webhook-events/${await newDeadEvent(v, t)}` }),
    allowed: 200,
    notFound: "WEBHOOK_EVENT_NOT_FOUND",
  },
  "POST /v1/webhook-events/:id/replay": {
    make: async (v, t) => ({ url: `/v1/webhook-events/${await newDeadEvent(v, t)}/replay` }),
    allowed: 200,
    notFound: "WEBHOOK_EVENT_NOT_FOUND",
  },
  "DELETE /v1/webhook-events/:id": {
    make: async (v, t) => ({ url: `/v1/webhook-events/${await newDeadEvent(v, t)}` }),
    allowed: 204,
    notFound: "WEBHOOK_EVENT_NOT_FOUND",
  },
  "POST /v1/event-destinations": {
    make: fixed("/v1/event-destinations", {
      url: "https://hooks.shop.example.com/payvault",
      event_types: ["token.created"],
    }),
    allowed: 201,
  },
  "GET /v1/event-destinations": { make: fixed("/v1/event-destinations"), allowed: 200 },
  "GET /v1/event-destinations/:id": {
    make: async (v, t) => ({ url: `/v1/event-destinations/${await sharedDestination(v, t)}` }),
    allowed: 200,
    notFound: "EVENT_DESTINATION_NOT_FOUND",
  },
  "POST /v1/event-destinations/:id/rotate-secret": {
    make: async (v, t) => ({
      url: `/v1/event-destinations/${await sharedDestination(v, t)}/rotate-secret`,
      payload: { overlap_seconds: 60 },
    }),
    allowed: 200,
    notFound: "EVENT_DESTINATION_NOT_FOUND",
  },
  "DELETE /v1/event-destinations/:id": {
    make: async (v, t) => ({ url: `/v1/event-destinations/${await newEventDestination(v, t)}` }),
    allowed: 204,
    notFound: "EVENT_DESTINATION_NOT_FOUND",
  },
  "GET /v1/event-deliveries": { make: fixed("/v1/event-deliveries?limit=5"), allowed: 200 },
  "POST /v1/event-deliveries/:id/replay": {
    make: async (v, t) => ({ url: `/v1/event-deliveries/${await newDeadDelivery(v, t)}/replay` }),
    allowed: 200,
    notFound: "EVENT_DELIVERY_NOT_FOUND",
  },
  "DELETE /v1/event-deliveries/:id": {
    make: async (v, t) => ({ url: `/v1/event-deliveries/${await newDeadDelivery(v, t)}` }),
    allowed: 204,
    notFound: "EVENT_DELIVERY_NOT_FOUND",
  },
  ...ADMIN_USER_SAMPLES,
};

const PROTECTED = ROUTES.filter((spec) => spec.access !== "public");

async function expectStale(response: Promise<{ statusCode: number; body: string }>) {
  const res = await response;
  expect(res.statusCode, res.body).toBe(401);
  expect((JSON.parse(res.body) as { code: string }).code).toBe("MFA_STEP_UP_REQUIRED");
}

/** Rate limits out of the way: their own suites test them; this one makes many calls. */
const UNTHROTTLED = { PAYVAULT_RATE_LIMITS: "off" };

for (const driver of DRIVERS) {
  describe(`authorization from the route table on ${driver.name}`, () => {
    let vault: TestVault;
    let other: { tenantId: string; key: string };
    const roleKeys = new Map<Role, string>();
    const roleUsers = new Map<Role, { user: EnrolledUser; token: string }>();
    const clock = new SteppingClock();

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock, env: UNTHROTTLED });
      other = await vault.newTenant([...SCOPES]);
      for (const role of ROLE_NAMES)
        roleKeys.set(role, await vault.newKey(vault.tenantId, expandScopes([role])));
      // Every user enrolls first, then all log in: each login's second factor stays within the
      // step-up window for the whole suite (the clock moves 30 s per TOTP code, and no further).
      const users = [];
      for (const role of ROLE_NAMES)
        users.push([role, await enrolledUser(vault, clock, vault.tenantId, [role])] as const);
      for (const [role, user] of users) roleUsers.set(role, { user, token: await user.login() });
    }, 120_000);
    afterAll(async () => vault?.close());

    const send = async (spec: RouteSpec, call: Call, headers: Record<string, string>) =>
      vault.app.inject({
        method: spec.method,
        url: call.url,
        headers,
        remoteAddress: nextIp(),
        ...(call.payload === undefined ? {} : { payload: call.payload as object }),
      });

    it("every route of the table is registered, and has a sample here", () => {
      for (const spec of ROUTES) {
        expect(vault.app.hasRoute({ method: spec.method, url: spec.url }), spec.url).toBe(true);
        if (spec.access !== "public")
          expect(SAMPLES[`${spec.method} ${spec.url}`], `${spec.method} ${spec.url}`).toBeDefined();
      }
    });

    for (const spec of PROTECTED) {
      const name = `${spec.method} ${spec.url}`;
      const sample = SAMPLES[name];
      // A route without a sample fails "every route … has a sample" above.
      if (sample === undefined) continue;
      describe(name, () => {
        const call = () => sample.make(vault, vault.tenantId);

        /** Refused with `code`, and one auth.failure event names the reason and the route. */
        const expectRefused = async (
          headers: Record<string, string>,
          code: ErrorCode,
          actor: string,
        ) => {
          const before = new Set((await auditRows(vault, "auth.failure")).map((e) => e.id));
          expectProblem(await send(spec, await call(), headers), code);
          const added = (await auditRows(vault, "auth.failure")).filter((e) => !before.has(e.id));
          expect(added).toHaveLength(1);
          expect(added[0]).toMatchObject({ actor });
          expect(added[0]?.details).toMatchObject({ reason: code, route: spec.url });
          expect(String(added[0]?.details.ip)).toMatch(/^10\./);
        };

        it("no credential → 401 AUTH_MISSING", async () => {
          await expectRefused({}, "AUTH_MISSING", "anonymous");
        });

        if (spec.method === "GET") {
          it("HEAD is authorized as GET: no credential → 401, a permitted key → the GET status", async () => {
            const target = await call();
            const head = (headers: Record<string, string>) =>
              vault.app.inject({
                method: "HEAD",
                url: target.url,
                headers,
                remoteAddress: nextIp(),
              });
            expect((await head({})).statusCode).toBe(401);
            const permitted = ROLE_NAMES.find((role) => roleMayCall(role, spec));
            if (permitted !== undefined)
              expect((await head(auth(roleKeys.get(permitted) as string))).statusCode).toBe(
                sample.allowed,
              );
          });
        }

        it("a garbled credential → 401 AUTH_INVALID", async () => {
          for (const header of [
            "Bearer nonsense",
            "Basic dXNlcjpwYXNz",
            `Bearer pv_live_${randomBase62(22)}_${randomBase62(43)}`,
            "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig",
          ])
            await expectRefused({ authorization: header }, "AUTH_INVALID", "anonymous");
        });

        it("a revoked key with every scope → 401 AUTH_REVOKED", async () => {
          const key = await vault.newKey(vault.tenantId, [...SCOPES]);
          expect(await vault.core.apiKeys.revoke(keyIdOf(key), "test")).toBe(true);
          await expectRefused(auth(key), "AUTH_REVOKED", keyIdOf(key));
        });

        it("an expired key with every scope → 401 AUTH_EXPIRED", async () => {
          const { secret } = await vault.core.apiKeys.create({
            tenantId: vault.tenantId,
            environment: "live",
            name: "expired",
            scopes: [...SCOPES],
            actor: "test",
            expiresAt: new Date(Date.now() - 1000),
          });
          await expectRefused(auth(secret), "AUTH_EXPIRED", keyIdOf(secret));
        });

        for (const role of ROLE_NAMES) {
          const may = roleMayCall(role, spec);
          it(`role ${role} → ${may ? sample.allowed : "403 INSUFFICIENT_SCOPE"}`, async () => {
            const key = roleKeys.get(role) as string;
            if (!may) {
              await expectRefused(auth(key), "INSUFFICIENT_SCOPE", keyIdOf(key));
              return;
            }
            const res = await send(spec, await call(), auth(key));
            expect(res.statusCode, res.body).toBe(sample.allowed);
          });
        }

        for (const role of ROLE_NAMES) {
          const may = roleMayCall(role, spec, true);
          it(`an admin user with role ${role} → ${may ? sample.allowed : "403 INSUFFICIENT_SCOPE"}`, async () => {
            const { user, token } = roleUsers.get(role) as { user: EnrolledUser; token: string };
            if (!may) {
              await expectRefused(auth(token), "INSUFFICIENT_SCOPE", user.id);
              return;
            }
            const session = sample.newSession ? await user.loginWithRecoveryCode() : token;
            const res = await send(spec, await call(), auth(session));
            expect(res.statusCode, res.body).toBe(sample.allowed);
          });
        }

        if (spec.tenantObject === true) {
          it(`another tenant's key with every scope → 404 ${sample.notFound}`, async () => {
            const res = await send(spec, await call(), auth(other.key));
            expectProblem(res, sample.notFound as ErrorCode);
          });
        } else if (spec.access !== "user" && spec.access !== "sys:admin") {
          it("another tenant's key acts on its own tenant only (never 401/403)", async () => {
            const res = await send(spec, await call(), auth(other.key));
            expect(res.statusCode, res.body).toBe(sample.allowed);
          });
        }
      });
    }

    it("a tenant administrator cannot unlock or disable an operator; it can disable others", async () => {
      const tenantAdmin = roleKeys.get("tenant_admin") as string;
      const operator = roleUsers.get("operator")?.user.id as string;
      for (const [method, url] of [
        ["POST", `/v1/admin-users/${operator}/unlock`],
        ["DELETE", `/v1/admin-users/${operator}`],
      ] as const) {
        const res = await vault.app.inject({ method, url, headers: auth(tenantAdmin) });
        expectProblem(res, "SCOPE_NOT_GRANTABLE");
      }
      const reader = await newAdminUserId(vault, vault.tenantId);
      const res = await vault.app.inject({
        method: "DELETE",
        url: `/v1/admin-users/${reader}`,
        headers: auth(tenantAdmin),
      });
      expect(res.statusCode, res.body).toBe(204);
    });

    it("a key gets only the scopes asked for: none are added by default", async () => {
      const admin = roleKeys.get("tenant_admin") as string;
      const res = await vault.app.inject({
        method: "POST",
        url: "/v1/api-keys",
        headers: auth(admin),
        payload: { name: "only read", scopes: ["tokens:read"] },
      });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json()).toMatchObject({ scopes: ["tokens:read"] });
      const key = (res.json() as { api_key: string }).api_key;
      for (const scope of TENANT_SCOPES.filter((s: Scope) => s !== "tokens:read")) {
        const spec = PROTECTED.find((r) => r.access === scope);
        if (spec === undefined) continue;
        const sample = SAMPLES[`${spec.method} ${spec.url}`] as Sample;
        expectProblem(
          await send(spec, await sample.make(vault, vault.tenantId), auth(key)),
          "INSUFFICIENT_SCOPE",
        );
      }
    });

    // Last: it moves the clock past the step-up window for every session of the suite.
    it("once a person's second factor is stale, minting credentials and revealing need a step-up", async () => {
      clock.advance(6 * 60_000);
      const { user, token } = roleUsers.get("tenant_admin") as {
        user: EnrolledUser;
        token: string;
      };
      const mint = (credential: string) =>
        vault.app.inject({
          method: "POST",
          url: "/v1/api-keys",
          headers: auth(credential),
          remoteAddress: nextIp(),
          payload: { name: "after a stale login", scopes: ["audit:read"] },
        });
      await expectStale(mint(token));
      const revealer = roleUsers.get("revealer") as { user: EnrolledUser; token: string };
      const tokenId = await newToken(vault, vault.tenantId);
      await expectStale(
        vault.app.inject({
          method: "POST",
          url: `/v1/tokens/${tokenId}/reveal`,
          headers: auth(revealer.token),
          remoteAddress: nextIp(),
          payload: { purpose: "stale" },
        }),
      );
      // A step-up with a fresh code gives a token that may again.
      const stepped = await vault.app.inject({
        method: "POST",
        url: "/v1/auth/step-up",
        headers: auth(token),
        remoteAddress: nextIp(),
        payload: { code: user.nextCode() },
      });
      expect(stepped.statusCode, stepped.body).toBe(200);
      const fresh = (stepped.json() as { access_token: string }).access_token;
      expect((await mint(fresh)).statusCode).toBe(201);
      // Machines have no second factor: an API key is not held to it.
      expect((await mint(roleKeys.get("tenant_admin") as string)).statusCode).toBe(201);
    });
  });
}
