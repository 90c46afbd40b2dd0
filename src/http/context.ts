import type { Scope } from "../domain/scopes.js";
import type { KeyManager } from "../keys/key-manager.js";
import type { SealStatus } from "../keys/seal.js";
import type { Logger } from "../log/logger.js";
import type { ApiKeyService, Principal } from "../services/api-keys.js";
import type { AuditTrail } from "../services/audit/audit-trail.js";
import type { CaptureService } from "../services/capture/capture-service.js";
import type { CaptureSessions } from "../services/capture/capture-sessions.js";
import type { NestedJwt } from "../services/capture/nested-jwt.js";
import type { PublicOrigin } from "../services/capture/public-origin.js";
import type { TenantJoseKeys } from "../services/capture/tenant-jose-keys.js";
import type { VaultJoseKeys } from "../services/capture/vault-jose-keys.js";
import type { IdempotencyService } from "../services/idempotency.js";
import type { CeremonyService } from "../services/keys/ceremonies.js";
import type { KeyLifecycle } from "../services/keys/key-lifecycle.js";
import type { TokenService } from "../services/tokens/token-service.js";
import type { Database } from "../store/database.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** The scope a route needs; routes without one are public (health checks). */
    scope?: Scope;
  }
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

/** What the HTTP layer needs from the rest of the vault (wired in the composition root). */
export interface HttpDeps {
  readonly logger: Logger;
  readonly db: Database;
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
  sealStatus(): SealStatus;
  submitUnsealShare(share: string): Promise<SealStatus>;
}

export function principalOf(request: { principal: Principal | undefined }): Principal {
  if (request.principal === undefined)
    throw new Error("route declared no scope but needs a principal");
  return request.principal;
}
