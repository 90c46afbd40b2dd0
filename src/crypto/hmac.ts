import { createHmac } from "node:crypto";
import { u16LengthPrefixed } from "./length-prefix.js";
import { utf8Exact } from "./utf8.js";

/** HMAC-SHA-256 (RFC 2104, FIPS 198-1) over the concatenation of `parts`. */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const mac = createHmac("sha256", key);
  for (const part of parts) {
    mac.update(part);
  }
  return mac.digest();
}

/**
 * A fingerprint key must carry the full 256-bit strength: a PAN has far less
 * entropy than that, so the key is the only thing standing between the
 * fingerprint and a brute force of the card number space (SP 800-107r1 §5.3.4).
 */
export const FINGERPRINT_MIN_KEY_BYTES = 32;

/**
 * Keyed fingerprint for dedupe: base64url (no padding) of
 * HMAC-SHA-256(key, u16be(len(label)) || label || value).
 *
 * Never a plain hash (PCI DSS 3.5.1.1: keyed cryptographic hashes of the
 * entire PAN). The key is per tenant (DESIGN.md), so the same card in two
 * tenants gives unlinkable fingerprints. The label separates uses of one key
 * ("pan", "pan+expiry", ...); only it needs a length prefix because the value
 * is the last field. Callers normalize `value` first (e.g. PAN digits only).
 */
export function fingerprintOf(key: Uint8Array, label: string, value: string): string {
  if (key.length < FINGERPRINT_MIN_KEY_BYTES) {
    throw new RangeError(`fingerprint key must be at least ${FINGERPRINT_MIN_KEY_BYTES} bytes`);
  }
  const labelBytes = utf8Exact(label);
  const valueBytes = utf8Exact(value);
  if (labelBytes === undefined || labelBytes.length === 0 || valueBytes === undefined) {
    throw new TypeError("fingerprint label must be non-empty and both strings well-formed");
  }
  return hmacSha256(key, u16LengthPrefixed(labelBytes), valueBytes).toString("base64url");
}
