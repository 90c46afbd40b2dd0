import type { CompactJWEHeaderParameters } from "jose";
import { compactDecrypt, decodeProtectedHeader } from "jose";
import { VaultError } from "../../errors/registry.js";
import type { VaultJoseKeys } from "./vault-jose-keys.js";

/** The key-management algorithms clients may encrypt to the vault with (RFC 7518 §4.3, §4.6). */
const KEY_ALGS = new Set(["ECDH-ES+A256KW", "RSA-OAEP-256"]);
/** Header parameters that would let the sender choose the key or defer checks: refused. */
const REFUSED_HEADERS = ["zip", "jku", "x5u", "jwk", "x5c", "x5t", "crit"];
export const MAX_JWE_LENGTH = 65_536;

/**
 * Opens a compact JWE (RFC 7516) sent to the vault: the key is found by `kid` among the vault's
 * own capture keys only, its algorithm is pinned to that key's (no algorithm confusion, RFC 8725
 * §3.1), content encryption is A256GCM, and `zip` (decompression bombs), key URLs and embedded
 * keys are refused. Every failure is the same JWE_INVALID: which check failed is not told.
 */
export async function openVaultJwe(
  keys: VaultJoseKeys,
  compact: string,
): Promise<{ plaintext: Uint8Array; header: CompactJWEHeaderParameters }> {
  if (compact.length > MAX_JWE_LENGTH || compact.split(".").length !== 5) {
    throw new VaultError("JWE_INVALID");
  }
  try {
    const header = decodeProtectedHeader(compact);
    const { alg, kid } = header;
    if (typeof alg !== "string" || !KEY_ALGS.has(alg) || typeof kid !== "string") {
      throw new Error("refused header");
    }
    if (REFUSED_HEADERS.some((name) => name in header)) throw new Error("refused header");
    const key = await keys.findKey(kid, "enc");
    if (key === undefined || key.alg !== alg) throw new Error("unknown key");
    const opened = await compactDecrypt(compact, key.privateKey, {
      keyManagementAlgorithms: [alg],
      contentEncryptionAlgorithms: ["A256GCM"],
    });
    return { plaintext: opened.plaintext, header: opened.protectedHeader };
  } catch {
    throw new VaultError("JWE_INVALID");
  }
}

/** JWT times (RFC 7519 §4.1.4, §4.1.6) with a lifetime cap and a clock-skew allowance. */
export function checkTimes(
  claims: Readonly<Record<string, unknown>>,
  now: number,
  limits: { readonly maxLifetimeSeconds: number; readonly skewSeconds: number },
): { iat: number; exp: number } {
  const { iat, exp } = claims;
  if (typeof iat !== "number" || typeof exp !== "number" || !Number.isFinite(iat + exp)) {
    throw new VaultError("JWT_CLAIMS_INVALID");
  }
  if (exp <= iat || exp - iat > limits.maxLifetimeSeconds) {
    throw new VaultError("JWT_CLAIMS_INVALID");
  }
  if (iat > now + limits.skewSeconds) throw new VaultError("JWT_NOT_YET_VALID");
  if (exp <= now - limits.skewSeconds) throw new VaultError("JWT_EXPIRED");
  return { iat, exp };
}

/** A jti: 16 to 128 characters (a UUID or 128 random bits, encoded). */
export function jtiOf(claims: Readonly<Record<string, unknown>>): string {
  const { jti } = claims;
  if (typeof jti !== "string" || jti.length < 16 || jti.length > 128) {
    throw new VaultError("JWT_CLAIMS_INVALID");
  }
  return jti;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
