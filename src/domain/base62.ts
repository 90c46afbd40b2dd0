/**
 * Base62 (0-9, A-Z, a-z) for identifiers: URL-safe, no padding or punctuation, and a
 * double-click in a terminal selects the whole id.
 */
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE = 62n;
const BASE62_ONLY = /^[0-9A-Za-z]+$/;

/**
 * Characters needed for `byteLength` bytes: ceil(bits / log2(62)). 16 bytes -> 22 chars.
 * Every input of a given length encodes to this many characters, so ids of one kind always
 * have the same length and a length check can reject malformed ids before any lookup.
 */
export function base62Length(byteLength: number): number {
  return Math.ceil((byteLength * 8) / Math.log2(62));
}

/** Big-endian base conversion of the whole input, left-padded with '0' to `base62Length`. */
export function encodeBase62(bytes: Uint8Array): string {
  let value = 0n;
  for (const byte of bytes) {
    value = (value << 8n) | BigInt(byte);
  }
  const chars = new Array<string>(base62Length(bytes.length));
  for (let i = chars.length - 1; i >= 0; i--) {
    chars[i] = ALPHABET.charAt(Number(value % BASE));
    value /= BASE;
  }
  return chars.join("");
}

/** True for a non-empty string made only of base62 characters. */
export function isBase62(s: string): boolean {
  return BASE62_ONLY.test(s);
}
