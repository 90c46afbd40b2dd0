import type { CipherGCMTypes } from "node:crypto";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { DecryptionError } from "./decryption-error.js";

/**
 * AES-GCM, the raw primitive (NIST SP 800-38D).
 *
 * Production code encrypts card data with 256-bit keys only (PCI DSS 3.5.1 and
 * 3.6: strong cryptography; DESIGN.md: AES-256 DEKs). The primitive also takes
 * 128- and 192-bit keys so that published known-answer vectors for those sizes
 * can run against it; the envelope format enforces {@link AES_256_KEY_BYTES}.
 */

/** Key sizes the raw primitive accepts, in bytes (AES-128, AES-192, AES-256). */
export const AES_GCM_KEY_BYTES: readonly number[] = [16, 24, 32];
/** The only key size used for stored data. */
export const AES_256_KEY_BYTES = 32;
/** 96-bit IVs: SP 800-38D §5.2.1.1 recommends exactly this length. */
export const GCM_NONCE_BYTES = 12;
/** Full 128-bit tags only; SP 800-38D Appendix C warns against short tags. */
export const GCM_TAG_BYTES = 16;

export interface GcmSealed {
  ciphertext: Buffer;
  tag: Buffer;
}

function algorithmFor(key: Uint8Array): CipherGCMTypes | undefined {
  switch (key.length) {
    case 16:
      return "aes-128-gcm";
    case 24:
      return "aes-192-gcm";
    case 32:
      return "aes-256-gcm";
    default:
      return undefined;
  }
}

/**
 * Encrypts and authenticates. Bad parameters are programming errors and throw
 * RangeError (they are not reachable from attacker-supplied ciphertext).
 */
export function aesGcmEncrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): GcmSealed {
  const algorithm = algorithmFor(key);
  if (algorithm === undefined) {
    throw new RangeError(`AES-GCM key must be one of ${AES_GCM_KEY_BYTES.join("/")} bytes`);
  }
  if (nonce.length !== GCM_NONCE_BYTES) {
    throw new RangeError(`AES-GCM nonce must be ${GCM_NONCE_BYTES} bytes`);
  }
  const cipher = createCipheriv(algorithm, key, nonce, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/**
 * Verifies and decrypts. Every failure, including wrong parameter lengths,
 * throws the same {@link DecryptionError}. Plaintext is returned only after
 * the tag has verified (SP 800-38D §7.2 step 8: release nothing on FAIL).
 */
export function aesGcmDecrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  aad: Uint8Array,
): Buffer {
  const algorithm = algorithmFor(key);
  if (algorithm === undefined || nonce.length !== GCM_NONCE_BYTES || tag.length !== GCM_TAG_BYTES) {
    throw new DecryptionError();
  }
  let unverified: Buffer | undefined;
  try {
    const decipher = createDecipheriv(algorithm, key, nonce, { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    unverified = decipher.update(ciphertext);
    const rest = decipher.final();
    return rest.length === 0 ? unverified : Buffer.concat([unverified, rest]);
  } catch {
    // Wipe the unauthenticated plaintext before it can be observed anywhere.
    unverified?.fill(0);
    throw new DecryptionError();
  }
}
