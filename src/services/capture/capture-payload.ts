import { compactDecrypt, decodeProtectedHeader } from "jose";
import { VaultError } from "../../errors/registry.js";
import { parseJsonBody } from "../../http/json-body-parser.js";
import type { Clock } from "../clock.js";
import type { CaptureClaims, CapturePayloadOpener } from "./capture-service.js";
import { CLOCK_SKEW_SECONDS, MAX_PAYLOAD_SECONDS } from "./capture-service.js";
import type { VaultJoseKeys } from "./vault-jose-keys.js";

const KEY_ALGS = new Set(["ECDH-ES+A256KW", "RSA-OAEP-256"]);
const MAX_COMPACT_LENGTH = 16_384;

/**
 * Opens capture payloads with the vault's capture keys: compact JWE only, key found by kid among
 * the vault's own keys, algorithm pinned to that key's, A256GCM content encryption, no `zip`.
 * Every decryption failure is the same JWE_INVALID.
 */
export function capturePayloadOpener(keys: VaultJoseKeys, clock: Clock): CapturePayloadOpener {
  return async (compact, expected) => {
    if (compact.length > MAX_COMPACT_LENGTH || compact.split(".").length !== 5) {
      throw new VaultError("JWE_INVALID");
    }
    let plaintext: Uint8Array;
    try {
      const header = decodeProtectedHeader(compact);
      const alg = header.alg;
      const kid = header.kid;
      if (typeof alg !== "string" || !KEY_ALGS.has(alg) || typeof kid !== "string") {
        throw new Error("refused header");
      }
      if ("zip" in header || "jku" in header || "x5u" in header || "jwk" in header) {
        throw new Error("refused header");
      }
      const key = await keys.findKey(kid, "enc");
      if (key === undefined || key.alg !== alg) throw new Error("unknown key");
      ({ plaintext } = await compactDecrypt(compact, key.privateKey, {
        keyManagementAlgorithms: [alg],
        contentEncryptionAlgorithms: ["A256GCM"],
      }));
    } catch {
      throw new VaultError("JWE_INVALID");
    }
    let claims: unknown;
    try {
      claims = parseJsonBody(Buffer.from(plaintext));
    } catch {
      throw new VaultError("JWE_INVALID");
    }
    return checkCaptureClaims(claims, expected, Math.floor(clock.now().getTime() / 1000));
  };
}

function checkCaptureClaims(
  claims: unknown,
  expected: { readonly issuer: string; readonly audience: string },
  now: number,
): CaptureClaims {
  if (claims === null || typeof claims !== "object" || Array.isArray(claims)) {
    throw new VaultError("JWT_CLAIMS_INVALID");
  }
  const c = claims as Record<string, unknown>;
  const { iat, exp, jti, card } = c;
  if (
    typeof iat !== "number" ||
    typeof exp !== "number" ||
    typeof jti !== "string" ||
    jti.length < 16 ||
    jti.length > 128 ||
    card === null ||
    typeof card !== "object" ||
    Array.isArray(card)
  ) {
    throw new VaultError("JWT_CLAIMS_INVALID");
  }
  if (c.iss !== expected.issuer || c.aud !== expected.audience) {
    throw new VaultError("JWT_CLAIMS_INVALID");
  }
  if (exp - iat > MAX_PAYLOAD_SECONDS || exp <= iat) throw new VaultError("JWT_CLAIMS_INVALID");
  if (iat > now + CLOCK_SKEW_SECONDS) throw new VaultError("JWT_NOT_YET_VALID");
  if (exp <= now - CLOCK_SKEW_SECONDS) throw new VaultError("JWT_EXPIRED");
  return { jti, exp, card: card as Record<string, unknown> };
}
