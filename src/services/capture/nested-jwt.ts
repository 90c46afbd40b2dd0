import { CompactEncrypt, compactVerify, decodeProtectedHeader } from "jose";
import type { ReplayGuard } from "../../ephemeral/replay-guard.js";
import { VaultError } from "../../errors/registry.js";
import { parseJsonBody } from "../../http/json-body-parser.js";
import type { Principal } from "../api-keys.js";
import type { Clock } from "../clock.js";
import type { TenantJoseKeys } from "./tenant-jose-keys.js";
import type { VaultJoseKeys } from "./vault-jose-keys.js";
import { checkTimes, isRecord, jtiOf, openVaultJwe } from "./vault-jwe.js";

/** A signed request lives at most 5 minutes; clocks may differ by 30 s. */
export const MAX_REQUEST_SECONDS = 300;
const SKEW_SECONDS = 30;
/** JWS header parameters that would let the sender pick or embed the key, or defer checks. */
const REFUSED_JWS_HEADERS = ["jku", "x5u", "jwk", "x5c", "x5t", "crit", "b64"];

export const JOSE_CONTENT_TYPE = "application/jose";

/** `htu` compared as RFC 9449 §4.3 does: scheme, host and path; no query or fragment. */
function normalizedHtu(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  try {
    const url = new URL(value);
    return `${url.origin}${url.pathname}`;
  } catch {
    return undefined;
  }
}

/**
 * Server-to-server calls from PCI-scoped merchants (sign with your private key, encrypt with the
 * vault's public key): a compact JWE to a vault capture key (RFC 7516) whose plaintext is a JWS
 * (RFC 7515) signed by a key the tenant registered, found by kid among that tenant's keys only,
 * with its algorithm pinned to the registered one. The claims bind the request to the tenant
 * (iss), this vault (aud), a 5-minute window (iat, exp), one use (jti) and the method and URL
 * (htm, htu, as in RFC 9449), so a captured request cannot be replayed or sent to another route.
 * Responses can be encrypted to the tenant's registered encryption key.
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
  ): Promise<unknown> {
    const { plaintext, header } = await openVaultJwe(this.vaultKeys, compact);
    if (header.cty !== "JWT") throw new VaultError("JWE_INVALID");
    const jws = Buffer.from(plaintext).toString("latin1");
    const claims = await this.verifySignature(jws, principal.tenantId);
    const origin = this.vaultOrigin();
    if (
      claims.iss !== principal.tenantId ||
      claims.aud !== origin ||
      claims.htm !== binding.method ||
      normalizedHtu(claims.htu) !== `${origin}${binding.path}`
    ) {
      throw new VaultError("JWT_CLAIMS_INVALID");
    }
    const jti = jtiOf(claims);
    const { exp } = checkTimes(claims, Math.floor(this.clock.now().getTime() / 1000), {
      maxLifetimeSeconds: MAX_REQUEST_SECONDS,
      skewSeconds: SKEW_SECONDS,
    });
    if (!isRecord(claims.request)) throw new VaultError("JWT_CLAIMS_INVALID");
    // One use per jti and tenant, on every node (RFC 7519 §4.1.7).
    if (!(await this.replay.firstUse(`nested.${principal.tenantId}`, jti, new Date(exp * 1000)))) {
      throw new VaultError("JWT_REPLAYED");
    }
    return claims.request;
  }

  /** Fails before any work is done when the tenant asks for an encrypted response but has no key. */
  async requireResponseKey(tenantId: string): Promise<void> {
    if ((await this.tenantKeys.encryptionKey(tenantId)) === undefined) {
      throw new VaultError("JOSE_KEY_NOT_FOUND", {
        detail: "Register an encryption key (use enc) to receive encrypted responses.",
      });
    }
  }

  /** A response body encrypted to the tenant's newest encryption key (compact JWE, A256GCM). */
  async encryptResponse(tenantId: string, body: string): Promise<string> {
    const key = await this.tenantKeys.encryptionKey(tenantId);
    if (key === undefined) throw new VaultError("JOSE_KEY_NOT_FOUND");
    return new CompactEncrypt(new TextEncoder().encode(body))
      .setProtectedHeader({ alg: key.alg, enc: "A256GCM", kid: key.kid, cty: "json" })
      .encrypt(key.key);
  }

  private async verifySignature(jws: string, tenantId: string): Promise<Record<string, unknown>> {
    let payload: Uint8Array;
    try {
      if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(jws)) throw new Error("shape");
      const header = decodeProtectedHeader(jws);
      const { alg, kid } = header;
      if (typeof alg !== "string" || typeof kid !== "string") throw new Error("header");
      if (REFUSED_JWS_HEADERS.some((name) => name in header)) throw new Error("header");
      const key = await this.tenantKeys.find(tenantId, kid, "sig");
      if (key === undefined || key.alg !== alg) throw new Error("key");
      ({ payload } = await compactVerify(jws, key.key, { algorithms: [key.alg] }));
    } catch {
      throw new VaultError("SIGNATURE_INVALID");
    }
    let claims: unknown;
    try {
      claims = parseJsonBody(Buffer.from(payload));
    } catch {
      throw new VaultError("JWT_CLAIMS_INVALID");
    }
    if (!isRecord(claims)) throw new VaultError("JWT_CLAIMS_INVALID");
    return claims;
  }
}
