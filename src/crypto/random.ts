import { randomBytes as cryptoRandomBytes } from "node:crypto";
import { encodeBase62 } from "../domain/base62.js";

/**
 * `n` bytes from the operating system CSPRNG via node:crypto (an approved DRBG
 * source in the sense of NIST SP 800-90A; never Math.random).
 */
export function randomBytes(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError("byte count must be a non-negative integer");
  }
  return cryptoRandomBytes(n);
}

/** Ids and tokens carry at least 128 random bits (DESIGN.md: tokens 128+ CSPRNG bits). */
export const MIN_ID_BYTES = 16;

const ID_PREFIX = /^[a-z][a-z0-9]{0,15}$/;

/**
 * A typed random id: `${prefix}_` + base62 of `bytes` CSPRNG bytes, e.g.
 * `tok_…`, `ten_…`. Random, so it reveals nothing about the object it names
 * (PCI DSS 3.5.1: a token must not be derivable from the PAN). The base62 part
 * has a fixed length for a given byte count.
 */
export function newId(prefix: string, bytes = MIN_ID_BYTES): string {
  if (!ID_PREFIX.test(prefix)) {
    throw new RangeError(
      "id prefix must be 1-16 lowercase letters or digits, starting with a letter",
    );
  }
  if (!Number.isSafeInteger(bytes) || bytes < MIN_ID_BYTES) {
    throw new RangeError(`id needs at least ${MIN_ID_BYTES} random bytes`);
  }
  return `${prefix}_${encodeBase62(randomBytes(bytes))}`;
}
