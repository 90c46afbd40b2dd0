/**
 * The header policy for JWEs sent to the vault (RFC 7516 §4, RFC 7518 §4.6.1, RFC 8725 §3).
 *
 * Checked in a fixed order so refusals are predictable: algorithm allowlist (RFC 8725 §3.1),
 * content encryption allowlist, key-source headers (RFC 7515 §4.1.2-4.1.6), "crit"
 * (RFC 7516 §4.1.13), "zip" (RFC 7516 §4.1.3: a compression bomb and a compression side
 * channel; capture payloads are small), then the ephemeral public key (RFC 7518 §4.6.1.1),
 * which must be a bare P-256 public key. That the point lies on the curve is checked when the
 * key is imported for ECDH (invalid-curve attacks; the JWE's other layers add nothing here).
 */
import {
  CAPTURE_JWE_ENC,
  type CaptureJweAlg,
  isCaptureJweAlg,
  KEY_SOURCE_HEADERS,
} from "./algorithms.js";
import { isCanonicalBase64url, refuseCommonHeaders } from "./compact.js";
import { JoseRejected } from "./rejected.js";

const P256_COORDINATE_BYTES = 32;

function isCoordinate(value: unknown): boolean {
  return (
    typeof value === "string" &&
    isCanonicalBase64url(value) &&
    Buffer.from(value, "base64url").length === P256_COORDINATE_BYTES
  );
}

function checkEpk(header: Record<string, unknown>, alg: CaptureJweAlg): void {
  const epk = header.epk;
  if (alg === "RSA-OAEP-256") {
    if (epk !== undefined) throw new JoseRejected("JWE_INVALID", "epk");
    return;
  }
  if (typeof epk !== "object" || epk === null || Array.isArray(epk)) {
    throw new JoseRejected("JWE_INVALID", "epk");
  }
  const members = epk as Record<string, unknown>;
  const names = Object.keys(members).sort().join(",");
  if (names !== "crv,kty,x,y" || members.kty !== "EC" || members.crv !== "P-256") {
    throw new JoseRejected("JWE_INVALID", "epk");
  }
  if (!isCoordinate(members.x) || !isCoordinate(members.y)) {
    throw new JoseRejected("JWE_INVALID", "epk");
  }
}

export function checkJweHeader(header: Record<string, unknown>): CaptureJweAlg {
  const alg = header.alg;
  if (!isCaptureJweAlg(alg)) throw new JoseRejected("JWE_INVALID", "alg_not_allowed");
  if (header.enc !== CAPTURE_JWE_ENC) throw new JoseRejected("JWE_INVALID", "enc_not_allowed");
  refuseCommonHeaders(header, KEY_SOURCE_HEADERS, "JWE_INVALID");
  if (Object.hasOwn(header, "zip")) throw new JoseRejected("JWE_INVALID", "zip");
  for (const name of ["cty", "typ", "apu", "apv"]) {
    const value = header[name];
    if (value !== undefined && typeof value !== "string") {
      throw new JoseRejected("JWE_INVALID", "malformed");
    }
  }
  checkEpk(header, alg);
  return alg;
}
