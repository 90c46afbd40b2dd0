import { decodeProtectedHeader, jwtVerify, SignJWT } from "jose";
import { newId } from "../../crypto/random.js";
import { VaultError } from "../../errors/registry.js";
import type { Environment } from "../../keys/key-manager.js";
import { isEnvironment } from "../../keys/key-manager.js";
import type { SqlClient } from "../../store/database.js";
import type { Principal } from "../api-keys.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { CaptureSession, CaptureSessionVerifier } from "./capture-session.js";
import { CaptureSessionError } from "./capture-session.js";
import type { VaultJoseKeys } from "./vault-jose-keys.js";
import { CLOCK_SKEW_SECONDS } from "./vault-jwe.js";

/** A capture session lives at most 15 minutes (issue 4; the frame is filled in by a person). */
export const MAX_SESSION_SECONDS = 900;
export const MAX_SESSION_ORIGINS = 10;
const SESSION_TYPE = "payvault-capture-session+jwt";
/** Sessions verified on this node, kept until they expire: one signature check per session. */
const MAX_CACHED_SESSIONS = 10_000;
/** A DNS name or an IP literal: no wildcard or other characters URL parsing lets through. */
const HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9-]+(\.[a-z0-9-]+)*)$/;
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * A merchant origin the frame may be embedded in and post its token to: `https://host[:port]`
 * exactly (no path, no wildcard), or `http://` for a loopback host (local development).
 */
export function parseOrigin(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.origin !== value || !HOST.test(url.hostname)) return undefined;
  if (url.protocol === "https:") return value;
  if (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname)) return value;
  return undefined;
}

/**
 * Capture sessions: short-lived JWS tokens (RFC 7515, RFC 7519) the vault signs with its ES256
 * key for a merchant backend, naming the tenant, the environment and the origins allowed to
 * embed the capture frame. Verification pins the algorithm, the type, the issuer and audience
 * (RFC 8725 §3.1, §3.8, §3.11) and finds the key by kid among the vault's own keys only.
 */
export class CaptureSessions implements CaptureSessionVerifier {
  private readonly verified = new Map<string, CaptureSession>();

  constructor(
    private readonly db: SqlClient,
    private readonly keys: VaultJoseKeys,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
    private readonly vaultOrigin: () => string,
  ) {}

  async create(
    principal: Principal,
    request: { origins: readonly string[]; ttlSeconds?: number },
  ): Promise<{ session: string; id: string; expiresAt: Date }> {
    // Plain-http loopback origins are for development: test environment only.
    const origins = request.origins.map((origin, i) => ({
      origin,
      parsed:
        principal.environment === "test" || origin.startsWith("https:")
          ? parseOrigin(origin)
          : undefined,
      i,
    }));
    const bad = origins.filter((o) => o.parsed === undefined);
    if (bad.length > 0 || origins.length === 0 || origins.length > MAX_SESSION_ORIGINS) {
      throw new VaultError("VALIDATION_FAILED", {
        errors:
          bad.length > 0
            ? bad.map((o) => ({
                field: `origins.${o.i}`,
                code: "ORIGIN_INVALID",
                message:
                  "An origin is https://host[:port] with no path (http:// only for localhost, with a test key).",
              }))
            : [
                {
                  field: "origins",
                  code: "ORIGIN_INVALID",
                  message: `Give 1 to ${MAX_SESSION_ORIGINS} origins.`,
                },
              ],
      });
    }
    const ttl = request.ttlSeconds ?? MAX_SESSION_SECONDS;
    const now = Math.floor(this.clock.now().getTime() / 1000);
    const id = newId("cs");
    const key = await this.keys.currentKey("ES256");
    const session = await new SignJWT({ origins: request.origins, env: principal.environment })
      .setProtectedHeader({ alg: "ES256", kid: key.kid, typ: SESSION_TYPE })
      .setIssuer(this.vaultOrigin())
      .setAudience(`${this.vaultOrigin()}/capture`)
      .setSubject(principal.tenantId)
      .setJti(id)
      .setIssuedAt(now)
      .setExpirationTime(now + ttl)
      .sign(key.privateKey);
    const expiresAt = new Date((now + ttl) * 1000);
    await this.audit.record(this.db, {
      tenantId: principal.tenantId,
      actor: principal.keyId,
      action: "capture.session",
      objectId: id,
      outcome: "success",
      details: { origins: request.origins.join(" "), expires_at: expiresAt.toISOString() },
    });
    return { session, id, expiresAt };
  }

  /**
   * A valid session, from this node's cache of verified ones (a session is immutable and signed,
   * so only its expiry can change the answer) or by checking its signature and claims.
   */
  async verify(token: string): Promise<CaptureSession> {
    if (typeof token !== "string" || token.length > 4096) throw new CaptureSessionError();
    const cached = this.verified.get(token);
    if (cached !== undefined) {
      if (cached.expiresAt.getTime() + CLOCK_SKEW_SECONDS * 1000 > this.clock.now().getTime()) {
        return cached;
      }
      this.verified.delete(token);
    }
    const session = await this.check(token);
    if (this.verified.size >= MAX_CACHED_SESSIONS) this.evictExpired();
    if (this.verified.size < MAX_CACHED_SESSIONS) this.verified.set(token, session);
    return session;
  }

  private evictExpired(): void {
    const now = this.clock.now();
    for (const [token, session] of this.verified) {
      if (session.expiresAt <= now) this.verified.delete(token);
    }
  }

  private async check(token: string): Promise<CaptureSession> {
    // The key lookup runs first and outside the catch below: a store, key-service or sealed
    // vault failure is a 5xx of the vault, never an invalid session.
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new CaptureSessionError();
    }
    const key =
      typeof header.kid === "string" ? await this.keys.findKey(header.kid, "sig") : undefined;
    if (key?.publicKey === undefined || key.alg !== header.alg) throw new CaptureSessionError();
    const publicKey = key.publicKey;
    try {
      const { payload } = await jwtVerify(token, publicKey, {
        // Nodes' clocks may differ a little: a session made on one is good on the others.
        clockTolerance: CLOCK_SKEW_SECONDS,
        algorithms: ["ES256"],
        typ: SESSION_TYPE,
        issuer: this.vaultOrigin(),
        audience: `${this.vaultOrigin()}/capture`,
        currentDate: this.clock.now(),
        maxTokenAge: MAX_SESSION_SECONDS,
        requiredClaims: ["sub", "jti", "iat", "exp"],
      });
      const origins = payload.origins;
      if (
        typeof payload.sub !== "string" ||
        typeof payload.jti !== "string" ||
        typeof payload.exp !== "number" ||
        !isEnvironment(payload.env) ||
        !Array.isArray(origins) ||
        !origins.every((o): o is string => typeof o === "string" && parseOrigin(o) === o)
      ) {
        throw new CaptureSessionError();
      }
      return {
        id: payload.jti,
        tenantId: payload.sub,
        environment: payload.env as Environment,
        origins,
        expiresAt: new Date(payload.exp * 1000),
      };
    } catch {
      throw new CaptureSessionError();
    }
  }
}
