import type { ReplayGuard } from "../../ephemeral/replay-guard.js";
import { VaultError } from "../../errors/registry.js";
import { encryptResponse } from "../../jose/encrypt-response.js";
import { openNestedJwt } from "../../jose/nested-jwt.js";
import type { Principal } from "../api-keys.js";
import type { Clock } from "../clock.js";
import type { TenantJoseKeys } from "./tenant-jose-keys.js";
import type { VaultJoseKeys } from "./vault-jose-keys.js";
import {
  asJsonBody,
  CLOCK_SKEW_SECONDS,
  isRecord,
  MAX_JOSE_LIFETIME_SECONDS,
  MAX_JWE_LENGTH,
  vaultDecryptionKeys,
  withJoseProblems,
} from "./vault-jwe.js";

export const JOSE_CONTENT_TYPE = "application/jose";

/**
 * Server-to-server calls from PCI-scoped merchants (sign with your private key, encrypt with the
 * vault's public key; RFC 7519 §5.2, RFC 8725 §2.7): the JOSE layer opens the JWE to a vault
 * capture key and verifies the inner JWS with a key the calling tenant registered (found by kid
 * among that tenant's keys only, algorithm pinned). The claims bind the request to the tenant
 * (iss), this vault (aud), a 5-minute window (iat, exp), one use (jti, on every node) and the
 * method and URL (htm, htu, compared as RFC 9449 §4.3 does), so a captured request cannot be
 * replayed or sent to another route. Responses can be encrypted to the tenant's registered key.
 */
export class NestedJwt {
  constructor(
    private readonly vaultKeys: VaultJoseKeys,
    private readonly tenantKeys: TenantJoseKeys,
    private readonly replay: ReplayGuard,
    private readonly clock: Clock,
    private readonly vaultOrigin: () => string,
  ) {}

  /** The signed request's body (its `request` claim), once every check passed. */
  async open(
    compact: string,
    principal: Principal,
    binding: { readonly method: string; readonly path: string },
  ): Promise<Record<string, unknown>> {
    const origin = this.vaultOrigin();
    const opened = await withJoseProblems(() =>
      openNestedJwt(compact, {
        decryptionKeys: vaultDecryptionKeys(this.vaultKeys, ["ECDH-ES+A256KW", "RSA-OAEP-256"]),
        signerKeys: async (kid) => {
          const key = await this.tenantKeys.find(principal, kid);
          return key === undefined ? undefined : { alg: key.alg, publicKey: key.key };
        },
        claims: {
          issuer: principal.tenantId,
          audience: origin,
          htm: binding.method,
          htu: `${origin}${binding.path}`,
          maxLifetimeSec: MAX_JOSE_LIFETIME_SECONDS,
          clockSkewSec: CLOCK_SKEW_SECONDS,
          now: this.clock.now(),
        },
        maxLength: MAX_JWE_LENGTH,
      }),
    );
    const { request } = opened.claims.claims;
    if (!isRecord(request)) {
      throw new VaultError("JWT_CLAIMS_INVALID", {
        detail: "The request claim is missing (request).",
      });
    }
    const until = new Date(opened.claims.replayUntil * 1000);
    if (!(await this.replay.firstUse(`nested.${principal.tenantId}`, opened.claims.jti, until))) {
      throw new VaultError("JWT_REPLAYED");
    }
    return asJsonBody(request);
  }

  /** Fails before any work is done when the tenant asks for an encrypted response but has no key. */
  async requireResponseKey(principal: Principal): Promise<void> {
    if ((await this.tenantKeys.encryptionJwk(principal)) === undefined) {
      throw new VaultError("JOSE_KEY_NOT_FOUND", {
        detail: "Register an encryption key (use enc) to receive encrypted responses.",
      });
    }
  }

  /** A response body encrypted to the tenant's newest encryption key (compact JWE, A256GCM). */
  async encryptResponse(principal: Principal, body: string): Promise<string> {
    const jwk = await this.tenantKeys.encryptionJwk(principal);
    if (jwk === undefined) throw new VaultError("JOSE_KEY_NOT_FOUND");
    return encryptResponse(body, jwk, { cty: "json" });
  }
}
