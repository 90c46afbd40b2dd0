import { createHmac } from "node:crypto";
import { constantTimeEqual } from "../../crypto/compare.js";
import type { SecretBytes } from "../../crypto/secret.js";

export type MacAlgorithm = "sha256" | "sha512";

/** HMAC (RFC 2104) over the concatenation of `parts`; no intermediate copy of the body. */
export function macOf(
  algorithm: MacAlgorithm,
  secret: SecretBytes,
  parts: readonly Uint8Array[],
): Buffer {
  return secret.use((key) => {
    const mac = createHmac(algorithm, key);
    for (const part of parts) {
      mac.update(part);
    }
    return mac.digest();
  });
}

/**
 * Index of the first secret whose MAC equals one of the presented signatures, or -1.
 *
 * Every (secret, signature) pair is compared, with `timingSafeEqual` after a length check
 * (STYLE.md), and the loop never stops early: the time taken depends on the number of secrets
 * and signatures, not on which one matched. Several secrets are how rotation overlaps: the
 * old and the new secret are both accepted until the sender has switched.
 */
export function matchingSecretIndex(
  algorithm: MacAlgorithm,
  secrets: readonly SecretBytes[],
  parts: readonly Uint8Array[],
  presented: readonly Uint8Array[],
): number {
  let found = -1;
  secrets.forEach((secret, index) => {
    const expected = macOf(algorithm, secret, parts);
    for (const candidate of presented) {
      const equal = constantTimeEqual(expected, candidate);
      if (equal && found === -1) {
        found = index;
      }
    }
  });
  return found;
}
