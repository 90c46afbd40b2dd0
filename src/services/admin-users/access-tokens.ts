import { decodeProtectedHeader, errors, jwtVerify, SignJWT } from "jose";
import { newId } from "../../crypto/random.js";
import type { VaultJoseKeys } from "../capture/vault-jose-keys.js";
import type { Clock } from "../clock.js";
import { ACCESS_TOKEN_TTL_SECONDS } from "./policy.js";

/** RFC 9068 §2.1: access tokens are explicitly typed, so no other JWT passes as one. */
const ACCESS_TOKEN_TYPE = "at+jwt";
const ALG = "EdDSA";
/** Nodes' clocks may differ a little; far below the token's lifetime. */
const CLOCK_SKEW_SECONDS = 5;
const MAX_TOKEN_LENGTH = 2048;

export interface AccessTokenSubject {
  readonly userId: string;
  readonly tenantId: string;
  readonly sessionId: string;
  readonly scopes: readonly string[];
}

export type AccessTokenCheck =
  | { readonly ok: true; readonly userId: string; readonly sessionId: string }
  | { readonly ok: false; readonly reason: "invalid" | "expired" };

/**
 * Admin access tokens: RFC 9068 JWTs signed by the vault's own EdDSA key (a key set apart from
 * the capture-session key), valid at most 15 minutes. Verification pins the algorithm, the type,
 * the issuer and the audience (RFC 8725 §3.1, §3.8, §3.11) and finds the key by kid among the
 * access-token keys only. The token says who and which session; what the user may do is read
 * from the store on every request, so disabling a user or ending a session takes effect at once.
 */
export class AccessTokens {
  constructor(
    private readonly keys: VaultJoseKeys,
    private readonly clock: Clock,
    private readonly vaultOrigin: () => string,
  ) {}

  private audience(): string {
    return `${this.vaultOrigin()}/admin`;
  }

  async issue(subject: AccessTokenSubject): Promise<{ token: string; expiresIn: number }> {
    const key = await this.keys.currentKey(ALG);
    const now = Math.floor(this.clock.now().getTime() / 1000);
    const token = await new SignJWT({
      client_id: "payvault-admin",
      scope: subject.scopes.join(" "),
      sid: subject.sessionId,
      tenant: subject.tenantId,
    })
      .setProtectedHeader({ alg: ALG, kid: key.kid, typ: ACCESS_TOKEN_TYPE })
      .setIssuer(this.vaultOrigin())
      .setAudience(this.audience())
      .setSubject(subject.userId)
      .setJti(newId("at"))
      .setIssuedAt(now)
      .setExpirationTime(now + ACCESS_TOKEN_TTL_SECONDS)
      .sign(key.privateKey);
    return { token, expiresIn: ACCESS_TOKEN_TTL_SECONDS };
  }

  async verify(token: string): Promise<AccessTokenCheck> {
    if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) {
      return { ok: false, reason: "invalid" };
    }
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      return { ok: false, reason: "invalid" };
    }
    if (header.alg !== ALG || typeof header.kid !== "string")
      return { ok: false, reason: "invalid" };
    // Outside the catch below: a store or key failure is the vault's 5xx, never "invalid".
    const key = await this.keys.findKey(header.kid, "sig");
    if (key?.publicKey === undefined || key.alg !== ALG) return { ok: false, reason: "invalid" };
    try {
      const { payload } = await jwtVerify(token, key.publicKey, {
        algorithms: [ALG],
        typ: ACCESS_TOKEN_TYPE,
        issuer: this.vaultOrigin(),
        audience: this.audience(),
        currentDate: this.clock.now(),
        clockTolerance: CLOCK_SKEW_SECONDS,
        maxTokenAge: ACCESS_TOKEN_TTL_SECONDS,
        requiredClaims: ["sub", "jti", "iat", "exp"],
      });
      if (typeof payload.sub !== "string" || typeof payload.sid !== "string") {
        return { ok: false, reason: "invalid" };
      }
      return { ok: true, userId: payload.sub, sessionId: payload.sid };
    } catch (err) {
      return { ok: false, reason: err instanceof errors.JWTExpired ? "expired" : "invalid" };
    }
  }
}
