import { VaultError } from "../../errors/registry.js";
import { parseJsonBody } from "../../http/json-body-parser.js";
import type { CaptureJweAlg } from "../../jose/algorithms.js";
import type { DecryptionKeys } from "../../jose/capture-jwe.js";
import { JwtClaimsInvalid } from "../../jose/claims-error.js";
import { JoseRejected } from "../../jose/rejected.js";
import type { VaultJoseKeys } from "./vault-jose-keys.js";

/** JWEs sent to the vault: a capture payload is a few hundred bytes, a nested request more. */
export const MAX_JWE_LENGTH = 65_536;
/** A capture payload or a signed request lives at most 5 minutes; clocks may differ by 30 s. */
export const MAX_JOSE_LIFETIME_SECONDS = 300;
export const CLOCK_SKEW_SECONDS = 30;

/** The vault's capture encryption keys of the given algorithms, by kid, for the JOSE layer. */
export function vaultDecryptionKeys(
  keys: VaultJoseKeys,
  algorithms: readonly CaptureJweAlg[],
): DecryptionKeys {
  return async (kid) => {
    const key = await keys.findKey(kid, "enc");
    if (key === undefined || !(algorithms as readonly string[]).includes(key.alg)) return undefined;
    return { alg: key.alg as CaptureJweAlg, privateKey: key.privateKey };
  };
}

/**
 * The JOSE layer's refusals as problems: every JWE or inner-JWS failure is the one JWE_INVALID
 * (which check failed is not told); an expired or future token has its own code; any other
 * claim (issuer, audience, lifetime, jti, method, URL) is JWT_CLAIMS_INVALID naming the claim in
 * the vault's own words, never its value. Errors of the vault itself (an HSM that is down) pass.
 */
export function joseProblem(err: unknown): unknown {
  if (err instanceof JoseRejected) return new VaultError("JWE_INVALID");
  if (err instanceof JwtClaimsInvalid) {
    if (err.code === "JWT_EXPIRED" || err.code === "JWT_NOT_YET_VALID") {
      return new VaultError(err.code);
    }
    return new VaultError("JWT_CLAIMS_INVALID", { detail: `${err.message} (${err.claim}).` });
  }
  return err;
}

export async function withJoseProblems<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw joseProblem(err);
  }
}

/**
 * A JSON object from inside a JOSE payload, given the checks a JSON request body gets
 * (json-body-parser.ts): no `__proto__`/`constructor` keys, no NUL or lone surrogate, so a
 * request sent as a nested JWT or a capture payload is refused exactly as its JSON twin would be.
 */
export function asJsonBody(value: Record<string, unknown>): Record<string, unknown> {
  return parseJsonBody(Buffer.from(JSON.stringify(value), "utf8")) as Record<string, unknown>;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
