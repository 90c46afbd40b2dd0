import type { Scope } from "../domain/scopes.js";
import type { RouteClass } from "../ratelimit/rate-limit-policies.js";

/**
 * Who may call a route:
 * - a scope: an API key or an admin user's access token holding it (PCI DSS 7.2.1, 7.2.2);
 * - `user`: any admin user's access token, never an API key (one's own session and password);
 * - `public`: no Authorization header; `credential` says what authenticates the caller instead.
 */
export type Access = Scope | "user" | "public";

export interface RouteSpec {
  readonly method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Fastify's pattern, as registered. */
  readonly url: string;
  readonly access: Access;
  /** For public routes: the credential the route checks itself (documentation and tests). */
  readonly credential?: string;
  /** The rate-limit class (docs/rate-limits.md); unclassed routes have only the auth backoff. */
  readonly rateClass?: RouteClass;
  /** An admin user needs a second factor within the step-up window (PCI DSS 8.4.1, 8.5.1). */
  readonly stepUp?: boolean;
  /** The route's `:id` names an object of one tenant: another tenant's caller gets 404. */
  readonly tenantObject?: boolean;
  readonly summary: string;
}

/**
 * The one table that drives authorization: `buildApp` refuses to start if a route is registered
 * without an entry here, the auth hook reads each route's access from it, the authorization test
 * suite is generated from it, and so is the role matrix in docs/access-control.md (a test fails
 * if the document drifts).
 */
export const ROUTES: readonly RouteSpec[] = [
  { method: "GET", url: "/healthz", access: "public", credential: "none", summary: "Liveness" },
  { method: "GET", url: "/readyz", access: "public", credential: "none", summary: "Readiness" },
  {
    method: "POST",
    url: "/v1/tokens",
    access: "tokens:write",
    rateClass: "tokenize",
    summary: "Tokenize a card (JSON or nested JWT)",
  },
  {
    method: "POST",
    url: "/v1/tokens/batch",
    access: "tokens:write",
    rateClass: "tokenize",
    summary: "Tokenize up to 1,000 cards",
  },
  {
    method: "GET",
    url: "/v1/tokens/:id",
    access: "tokens:read",
    tenantObject: true,
    summary: "Read a token's masked card and metadata",
  },
  {
    method: "POST",
    url: "/v1/tokens/:id/reveal",
    access: "tokens:reveal",
    rateClass: "reveal",
    stepUp: true,
    tenantObject: true,
    summary: "Reveal the full card",
  },
  {
    method: "DELETE",
    url: "/v1/tokens/:id",
    access: "tokens:delete",
    tenantObject: true,
    summary: "Delete a token and its card data",
  },
  {
    method: "GET",
    url: "/v1/capture/jwks",
    access: "public",
    credential: "none",
    summary: "The vault's capture encryption keys",
  },
  {
    method: "POST",
    url: "/v1/capture/sessions",
    access: "capture",
    summary: "Open a capture session for the card frame",
  },
  {
    method: "POST",
    url: "/v1/capture/tokenize",
    access: "public",
    credential: "capture session",
    rateClass: "tokenize",
    summary: "Tokenize a card encrypted in the browser",
  },
  {
    method: "GET",
    url: "/capture/frame",
    access: "public",
    credential: "capture session",
    summary: "The card capture frame",
  },
  {
    method: "GET",
    url: "/capture/assets/*",
    access: "public",
    credential: "none",
    summary: "The capture frame's scripts and styles",
  },
  {
    method: "POST",
    url: "/v1/tenant/jose-keys",
    access: "keys:manage",
    summary: "Register a tenant JOSE key",
  },
  {
    method: "GET",
    url: "/v1/tenant/jose-keys",
    access: "keys:manage",
    summary: "List the tenant's JOSE keys",
  },
  {
    method: "DELETE",
    url: "/v1/tenant/jose-keys/:kid",
    access: "keys:manage",
    tenantObject: true,
    summary: "Revoke a tenant JOSE key",
  },
  {
    method: "POST",
    url: "/v1/api-keys",
    access: "tenant:admin",
    // Minting a credential is as sensitive as what it grants (it could hold tokens:reveal).
    stepUp: true,
    summary: "Create an API key (the secret is shown once)",
  },
  { method: "GET", url: "/v1/api-keys", access: "tenant:admin", summary: "List API keys" },
  {
    method: "GET",
    url: "/v1/api-keys/:id",
    access: "tenant:admin",
    tenantObject: true,
    summary: "Read an API key (never its secret)",
  },
  {
    method: "POST",
    url: "/v1/api-keys/:id/rotate",
    access: "tenant:admin",
    stepUp: true,
    tenantObject: true,
    summary: "Rotate an API key; the old secret works until the overlap ends",
  },
  {
    method: "DELETE",
    url: "/v1/api-keys/:id",
    access: "tenant:admin",
    tenantObject: true,
    summary: "Revoke an API key at once",
  },
  {
    method: "GET",
    url: "/v1/audit/events",
    access: "audit:read",
    summary: "Read the tenant's audit events",
  },
  {
    method: "POST",
    url: "/v1/auth/login",
    access: "public",
    credential: "username, password and TOTP code",
    rateClass: "auth",
    summary: "Log in as an admin user",
  },
  {
    method: "POST",
    url: "/v1/auth/refresh",
    access: "public",
    credential: "refresh token",
    rateClass: "auth",
    summary: "Exchange a refresh token for new tokens",
  },
  {
    method: "POST",
    url: "/v1/auth/enroll",
    access: "public",
    credential: "enrollment token",
    rateClass: "auth",
    summary: "Set a new admin user's password and TOTP",
  },
  {
    method: "POST",
    url: "/v1/auth/enroll/confirm",
    access: "public",
    credential: "enrollment token",
    rateClass: "auth",
    summary: "Confirm TOTP enrollment with a first code",
  },
  {
    method: "POST",
    url: "/v1/auth/logout",
    access: "user",
    summary: "End the current session",
  },
  {
    method: "POST",
    url: "/v1/auth/step-up",
    access: "user",
    rateClass: "auth",
    summary: "Prove a fresh second factor",
  },
  {
    method: "POST",
    url: "/v1/auth/password",
    access: "user",
    rateClass: "auth",
    summary: "Change one's password",
  },
  {
    method: "POST",
    url: "/v1/admin-users",
    access: "tenant:admin",
    stepUp: true,
    summary: "Create an admin user (returns a one-time enrollment token)",
  },
  { method: "GET", url: "/v1/admin-users", access: "tenant:admin", summary: "List admin users" },
  {
    method: "DELETE",
    url: "/v1/admin-users/:id",
    access: "tenant:admin",
    tenantObject: true,
    summary: "Disable an admin user and end their sessions",
  },
  {
    method: "POST",
    url: "/v1/admin-users/:id/unlock",
    access: "tenant:admin",
    stepUp: true,
    tenantObject: true,
    summary: "Lift a lockout",
  },
  {
    method: "POST",
    url: "/v1/forward",
    access: "proxy:forward",
    rateClass: "forward",
    summary: "Detokenize into a request to an allowlisted processor and relay its answer",
  },
  {
    method: "POST",
    url: "/v1/forward/destinations",
    access: "tenant:admin",
    // Widening where card data may be sent is as sensitive as minting a key.
    stepUp: true,
    summary: "Allow a forward destination (HTTPS host and path prefix)",
  },
  {
    method: "GET",
    url: "/v1/forward/destinations",
    access: "tenant:admin",
    summary: "List the forward destinations",
  },
  {
    method: "DELETE",
    url: "/v1/forward/destinations/:id",
    access: "tenant:admin",
    tenantObject: true,
    summary: "Remove a forward destination",
  },
  {
    method: "POST",
    url: "/v1/webhooks/:provider/:endpoint_id",
    access: "public",
    credential: "the provider's signature",
    rateClass: "webhook",
    summary: "Receive a provider's signed webhook",
  },
  {
    method: "POST",
    url: "/v1/webhook-endpoints",
    access: "webhooks:manage",
    summary: "Register a webhook intake endpoint and its signing secret",
  },
  {
    method: "GET",
    url: "/v1/webhook-endpoints",
    access: "webhooks:manage",
    summary: "List webhook intake endpoints",
  },
  {
    method: "GET",
    url: "/v1/webhook-endpoints/:id",
    access: "webhooks:manage",
    tenantObject: true,
    summary: "Read a webhook intake endpoint (never its secrets)",
  },
  {
    method: "POST",
    url: "/v1/webhook-endpoints/:id/secrets",
    access: "webhooks:manage",
    tenantObject: true,
    summary: "Rotate an intake endpoint's secret; the old one works until the overlap ends",
  },
  {
    method: "DELETE",
    url: "/v1/webhook-endpoints/:id",
    access: "webhooks:manage",
    tenantObject: true,
    summary: "Delete a webhook intake endpoint and its events",
  },
  {
    method: "GET",
    url: "/v1/webhook-events",
    access: "webhooks:manage",
    summary: "List received webhook events (metadata only); state=dead is the DLQ",
  },
  {
    method: "GET",
    url: "/v1/webhook-events/:id",
    access: "webhooks:manage",
    tenantObject: true,
    summary: "Read a received webhook event",
  },
  {
    method: "POST",
    url: "/v1/webhook-events/:id/replay",
    access: "webhooks:manage",
    tenantObject: true,
    summary: "Queue a dead-lettered event again",
  },
  {
    method: "DELETE",
    url: "/v1/webhook-events/:id",
    access: "webhooks:manage",
    tenantObject: true,
    summary: "Purge a dead-lettered event",
  },
  {
    method: "POST",
    url: "/v1/event-destinations",
    access: "webhooks:manage",
    summary: "Register a merchant endpoint for the vault's events (the secret is shown once)",
  },
  {
    method: "GET",
    url: "/v1/event-destinations",
    access: "webhooks:manage",
    summary: "List event destinations",
  },
  {
    method: "GET",
    url: "/v1/event-destinations/:id",
    access: "webhooks:manage",
    tenantObject: true,
    summary: "Read an event destination (never its secret)",
  },
  {
    method: "POST",
    url: "/v1/event-destinations/:id/rotate-secret",
    access: "webhooks:manage",
    tenantObject: true,
    summary: "Rotate an event destination's signing secret (overlap)",
  },
  {
    method: "DELETE",
    url: "/v1/event-destinations/:id",
    access: "webhooks:manage",
    tenantObject: true,
    summary: "Delete an event destination and its deliveries",
  },
  {
    method: "GET",
    url: "/v1/event-deliveries",
    access: "webhooks:manage",
    summary: "List deliveries to event destinations; state=dead is the DLQ",
  },
  {
    method: "POST",
    url: "/v1/event-deliveries/:id/replay",
    access: "webhooks:manage",
    tenantObject: true,
    summary: "Queue a dead-lettered delivery again",
  },
  {
    method: "DELETE",
    url: "/v1/event-deliveries/:id",
    access: "webhooks:manage",
    tenantObject: true,
    summary: "Purge a dead-lettered delivery",
  },
  {
    method: "GET",
    url: "/v1/sys/seal-status",
    access: "public",
    credential: "none",
    summary: "Seal status",
  },
  {
    method: "POST",
    url: "/v1/sys/unseal",
    access: "public",
    credential: "unseal share",
    summary: "Submit an unseal share",
  },
  { method: "GET", url: "/v1/sys/rekey", access: "sys:admin", summary: "Custodian rekey status" },
  {
    method: "POST",
    url: "/v1/sys/rekey/verify",
    access: "sys:admin",
    stepUp: true,
    summary: "Confirm a new custodian share",
  },
  {
    method: "POST",
    url: "/v1/sys/rekey/cancel",
    access: "sys:admin",
    stepUp: true,
    summary: "Cancel a staged custodian rekey",
  },
  { method: "GET", url: "/v1/sys/keys", access: "sys:admin", summary: "Key inventory" },
  { method: "GET", url: "/v1/sys/ceremonies", access: "sys:admin", summary: "List ceremonies" },
  {
    method: "POST",
    url: "/v1/sys/ceremonies",
    access: "sys:admin",
    stepUp: true,
    summary: "Propose a key ceremony",
  },
  {
    method: "POST",
    url: "/v1/sys/ceremonies/:id/approve",
    access: "sys:admin",
    stepUp: true,
    summary: "Approve a key ceremony",
  },
  {
    method: "POST",
    url: "/v1/sys/ceremonies/:id/reject",
    access: "sys:admin",
    stepUp: true,
    summary: "Reject a key ceremony",
  },
];

const BY_ROUTE = new Map(ROUTES.map((spec) => [`${spec.method} ${spec.url}`, spec]));

/** The table's entry for a registered route, or undefined. */
export function routeSpec(method: string, url: string): RouteSpec | undefined {
  return BY_ROUTE.get(`${method} ${url}`);
}
