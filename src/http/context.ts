import type { FastifyRequest } from "fastify";
import type { Scope } from "../domain/scopes.js";
import { isSystemScope } from "../domain/scopes.js";
import type { KeyManager } from "../keys/key-manager.js";
import type { SealStatus } from "../keys/seal.js";
import type { Logger } from "../log/logger.js";
import type { VaultMetrics } from "../metrics/metrics.js";
import type { RouteRateLimiter } from "../ratelimit/route-rate-limiter.js";
import type { AdminAuth } from "../services/admin-users/admin-auth.js";
import type { ApiKeyService } from "../services/api-keys.js";
import type { AuditTrail } from "../services/audit/audit-trail.js";
import type { CaptureService } from "../services/capture/capture-service.js";
import type { CaptureSessions } from "../services/capture/capture-sessions.js";
import type { NestedJwt } from "../services/capture/nested-jwt.js";
import type { PublicOrigin } from "../services/capture/public-origin.js";
import type { TenantJoseKeys } from "../services/capture/tenant-jose-keys.js";
import type { VaultJoseKeys } from "../services/capture/vault-jose-keys.js";
import type { Clock } from "../services/clock.js";
import type { ForwardService } from "../services/forward/forward-service.js";
import type { IdempotencyService } from "../services/idempotency.js";
import type { CeremonyService } from "../services/keys/ceremonies.js";
import type { KeyLifecycle } from "../services/keys/key-lifecycle.js";
import type { Principal } from "../services/principal.js";
import type { TokenService } from "../services/tokens/token-service.js";
import type { EventDestinations } from "../services/webhooks/outbound/event-destinations.js";
import type { WebhookService } from "../services/webhooks/webhook-service.js";
import type { Database } from "../store/database.js";
import type { RouteSpec } from "./route-table.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route's entry in the route table (set by buildApp's onRoute hook from route-table.ts). */
    route?: RouteSpec;
  }
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

/** What the HTTP layer needs from the rest of the vault (wired in the composition root). */
export interface HttpDeps {
  readonly logger: Logger;
  readonly db: Database;
  readonly clock: Clock;
  readonly keyManager: KeyManager;
  readonly apiKeys: ApiKeyService;
  readonly audit: AuditTrail;
  readonly tokens: TokenService;
  readonly idempotency: IdempotencyService;
  readonly lifecycle: KeyLifecycle;
  readonly ceremonies: CeremonyService;
  readonly origin: PublicOrigin;
  readonly joseKeys: VaultJoseKeys;
  readonly captureSessions: CaptureSessions;
  readonly capture: CaptureService;
  readonly tenantJoseKeys: TenantJoseKeys;
  readonly nestedJwt: NestedJwt;
  readonly metrics: VaultMetrics;
  readonly forward: ForwardService;
  readonly webhooks: WebhookService;
  readonly events: EventDestinations;
  /** Admin users' access tokens (absent: only API keys authenticate). */
  readonly adminAuth?: AdminAuth;
  /** Exponential backoff of failed authentications per address and credential. */
  readonly authThrottle?: AuthThrottle | undefined;
  /** Token buckets of the route classes (rate-limit-hook.ts); absent: no limits (benchmarks). */
  readonly rateLimiter?: RouteRateLimiter | undefined;
  sealStatus(): SealStatus;
  submitUnsealShare(share: string): Promise<SealStatus>;
}

/** Backoff of failed authentications (ratelimit/): refuses with AUTH_BACKOFF while it lasts. */
export interface AuthThrottle {
  /** Throws VaultError AUTH_BACKOFF (with Retry-After) while the address or credential waits. */
  before(request: FastifyRequest, credentialKey: string | undefined): Promise<void>;
  /** Counts a failed authentication against the address and the credential. */
  failed(request: FastifyRequest, credentialKey: string | undefined): Promise<void>;
  /** Clears the credential's count after it authenticated (the address keeps its count). */
  succeeded(request: FastifyRequest, credentialKey: string): Promise<void>;
}

/**
 * The scopes a caller may hand on over HTTP (new API keys, rotations, admin users): its own, less
 * the system scopes, which only the CLI grants (an OS account: dual control stays two people).
 */
export function httpGrantable(principal: Principal): ReadonlySet<Scope> {
  return new Set([...principal.scopes].filter((scope) => !isSystemScope(scope)));
}

export function principalOf(request: { principal: Principal | undefined }): Principal {
  if (request.principal === undefined)
    throw new Error("route declared no scope but needs a principal");
  return request.principal;
}
