/** A CSPRNG: `node:crypto`'s `randomBytes` in production, a fixed source in tests. */
export type RandomSource = (n: number) => Uint8Array;

/** A byte below 250 maps to a digit with no modulo bias (250 = 25 * 10); others are redrawn. */
const UNBIASED_BYTE_LIMIT = 250;
/** A working CSPRNG rejects 6 bytes in 256; this many empty rounds means it is broken. */
const MAX_DRAWS = 64;

/** `rand(n)`, refusing a source that returns another number of bytes. */
export function randomBytesExactly(rand: RandomSource, n: number): Uint8Array {
  const bytes = rand(n);
  if (bytes.length !== n) throw new RangeError("random source returned the wrong number of bytes");
  return bytes;
}

/** `count` uniform random decimal digits, by rejection sampling on bytes. */
export function randomDigits(rand: RandomSource, count: number): string {
  let digits = "";
  for (let draw = 0; draw < MAX_DRAWS && digits.length < count; draw++) {
    for (const byte of randomBytesExactly(rand, count - digits.length + 2)) {
      if (byte < UNBIASED_BYTE_LIMIT && digits.length < count) digits += String(byte % 10);
    }
  }
  if (digits.length < count) throw new Error("random source keeps returning out-of-range bytes");
  return digits;
}
