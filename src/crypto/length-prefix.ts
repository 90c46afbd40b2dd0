/** Largest field a u16 length prefix can describe. */
export const U16_MAX = 0xffff;

/**
 * `len || bytes` with a 2-byte big-endian length. Prefixing every variable
 * field makes a concatenation uniquely decodable, so distinct field tuples can
 * never produce the same MAC input (the Datalen || Data form of NIST SP 800-56A
 * Rev. 3 §5.8.2.1.1).
 */
export function u16LengthPrefixed(bytes: Uint8Array): Buffer {
  if (bytes.length > U16_MAX) {
    throw new RangeError(`field longer than ${U16_MAX} bytes`);
  }
  const out = Buffer.alloc(2 + bytes.length);
  out.writeUInt16BE(bytes.length, 0);
  out.set(bytes, 2);
  return out;
}
