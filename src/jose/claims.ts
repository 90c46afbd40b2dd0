/**
 * JWT claims checks (RFC 7519 §4.1.1-4.1.7, §7.2 step 10; RFC 8725 §3.8 issuer, §3.9
 * audience; RFC 9449 §4.3 htm/htu binding). Times are NumericDate seconds (RFC 7519 §2) and
 * compared with a small clock-skew allowance. Replay is the caller's job: it stores `jti`
 * until `replayUntil` (exp plus the skew: the last moment the token could still be accepted)
 * in a store shared by every vault node.
 */
import { JwtClaimsInvalid } from "./claims-error.js";
import { normalizeHtu } from "./htu.js";

export interface ClaimsPolicy {
  /** Accepted "iss" values; when absent, "iss" is optional. */
  readonly issuer?: string | readonly string[];
  /** Accepted "aud" values: the token must name at least one (RFC 7519 §4.1.3). */
  readonly audience: string | readonly string[];
  /** Upper bound on exp - iat. */
  readonly maxLifetimeSec: number;
  /** Allowance for clocks that disagree. Default 30 s. */
  readonly clockSkewSec?: number;
  readonly now: Date;
  /** "jti" is always required; the field documents that it cannot be turned off. */
  readonly requireJti?: true;
  /** Required "htm" (the HTTP method the token is bound to). */
  readonly htm?: string;
  /** Required "htu" (the URL the token is bound to), compared per RFC 9449 §4.3. */
  readonly htu?: string;
}

export interface CheckedClaims {
  readonly iss?: string;
  readonly sub?: string;
  readonly aud: readonly string[];
  readonly iat: number;
  readonly exp: number;
  readonly nbf?: number;
  readonly jti: string;
  readonly htm?: string;
  readonly htu?: string;
  /** Keep `jti` in the replay store until this NumericDate. */
  readonly replayUntil: number;
  readonly claims: Readonly<Record<string, unknown>>;
}

export const DEFAULT_CLOCK_SKEW_SEC = 30;
const MAX_JTI_LENGTH = 256;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The JWT Claims Set of a verified payload: a JSON object (RFC 7519 §7.2 step 10). */
export function parseClaims(payload: Uint8Array): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(payload));
  } catch {
    throw new JwtClaimsInvalid("JWT_CLAIMS", "payload");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new JwtClaimsInvalid("JWT_CLAIMS", "payload");
  }
  return parsed as Record<string, unknown>;
}

function numericDate(claims: Record<string, unknown>, name: string, required: boolean) {
  const value = claims[name];
  if (value === undefined && !required) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new JwtClaimsInvalid("JWT_CLAIMS", name);
  }
  return value;
}

function optionalString(claims: Record<string, unknown>, name: string): string | undefined {
  const value = claims[name];
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw new JwtClaimsInvalid("JWT_CLAIMS", name);
  return value;
}

function requiredString(claims: Record<string, unknown>, name: string): string {
  const value = optionalString(claims, name);
  if (value === undefined) throw new JwtClaimsInvalid("JWT_CLAIMS", name);
  return value;
}

function audienceOf(claims: Record<string, unknown>): string[] {
  const aud = claims.aud;
  if (typeof aud === "string") return [aud];
  if (Array.isArray(aud) && aud.length > 0 && aud.every((a) => typeof a === "string")) {
    return aud as string[];
  }
  throw new JwtClaimsInvalid("JWT_CLAIMS", "aud");
}

function asList(value: string | readonly string[]): readonly string[] {
  return typeof value === "string" ? [value] : value;
}

function checkPolicy(policy: ClaimsPolicy): number {
  const skew = policy.clockSkewSec ?? DEFAULT_CLOCK_SKEW_SEC;
  if (!Number.isFinite(skew) || skew < 0 || skew > 300) throw new TypeError("clockSkewSec");
  if (!Number.isFinite(policy.maxLifetimeSec) || policy.maxLifetimeSec <= 0) {
    throw new TypeError("maxLifetimeSec");
  }
  if (asList(policy.audience).length === 0) throw new TypeError("audience");
  if (Number.isNaN(policy.now.getTime())) throw new TypeError("now");
  return skew;
}

interface Times {
  readonly iat: number;
  readonly exp: number;
  readonly nbf: number | undefined;
}

function checkTimes(claims: Record<string, unknown>, policy: ClaimsPolicy, skew: number): Times {
  const iat = numericDate(claims, "iat", true) as number;
  const exp = numericDate(claims, "exp", true) as number;
  const nbf = numericDate(claims, "nbf", false);
  if (exp <= iat) throw new JwtClaimsInvalid("JWT_CLAIMS", "exp");
  const now = policy.now.getTime() / 1000;
  if (now >= exp + skew) throw new JwtClaimsInvalid("JWT_EXPIRED", "exp");
  if (iat > now + skew) throw new JwtClaimsInvalid("JWT_NOT_YET_VALID", "iat");
  if (nbf !== undefined && nbf > now + skew) throw new JwtClaimsInvalid("JWT_NOT_YET_VALID", "nbf");
  if (exp - iat > policy.maxLifetimeSec) throw new JwtClaimsInvalid("JWT_LIFETIME", "exp");
  return { iat, exp, nbf };
}

function checkBinding(claims: Record<string, unknown>, policy: ClaimsPolicy) {
  const htm =
    policy.htm === undefined ? optionalString(claims, "htm") : requiredString(claims, "htm");
  const htu =
    policy.htu === undefined ? optionalString(claims, "htu") : requiredString(claims, "htu");
  if (policy.htm !== undefined && htm !== policy.htm) throw new JwtClaimsInvalid("JWT_HTM", "htm");
  if (policy.htu !== undefined) {
    const expected = normalizeHtu(policy.htu);
    if (expected === undefined) throw new TypeError("htu policy is not an http(s) URL");
    if (htu === undefined || normalizeHtu(htu) !== expected) {
      throw new JwtClaimsInvalid("JWT_HTU", "htu");
    }
  }
  return { htm, htu };
}

/** Checks a verified payload's claims against the policy; throws `JwtClaimsInvalid`. */
export function checkClaims(payload: unknown, policy: ClaimsPolicy): CheckedClaims {
  const skew = checkPolicy(policy);
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new JwtClaimsInvalid("JWT_CLAIMS", "payload");
  }
  const claims = payload as Record<string, unknown>;
  const jti = requiredString(claims, "jti");
  if (jti.length === 0 || jti.length > MAX_JTI_LENGTH)
    throw new JwtClaimsInvalid("JWT_CLAIMS", "jti");
  const aud = audienceOf(claims);
  const iss =
    policy.issuer === undefined ? optionalString(claims, "iss") : requiredString(claims, "iss");
  const sub = optionalString(claims, "sub");
  const times = checkTimes(claims, policy, skew);
  if (policy.issuer !== undefined && !asList(policy.issuer).includes(iss as string)) {
    throw new JwtClaimsInvalid("JWT_ISSUER", "iss");
  }
  if (!aud.some((a) => asList(policy.audience).includes(a))) {
    throw new JwtClaimsInvalid("JWT_AUDIENCE", "aud");
  }
  const { htm, htu } = checkBinding(claims, policy);
  return {
    ...(iss !== undefined && { iss }),
    ...(sub !== undefined && { sub }),
    aud,
    iat: times.iat,
    exp: times.exp,
    ...(times.nbf !== undefined && { nbf: times.nbf }),
    jti,
    ...(htm !== undefined && { htm }),
    ...(htu !== undefined && { htu }),
    replayUntil: times.exp + skew,
    claims: Object.freeze({ ...claims }),
  };
}
