import * as zlib from "node:zlib";

/**
 * CRC-32 as in ISO-HDLC / zlib / PNG (reflected polynomial 0xEDB88320, init and final XOR
 * 0xFFFFFFFF; check value crc32("123456789") = 0xCBF43926), returned as an unsigned integer.
 *
 * `zlib.crc32` only exists from Node 20.15 / 22.2, and package.json allows Node >= 20.11, so
 * the table-driven version below is used when it is missing. Tests pin both to the same vectors.
 */
const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) {
      c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    }
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32Portable(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc = TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

type NativeCrc32 = (data: Uint8Array) => number;
const native: NativeCrc32 | undefined = (zlib as { crc32?: NativeCrc32 }).crc32;

/** True when Node's own implementation is used (Node >= 20.15). */
export const crc32IsNative = typeof native === "function";

export function crc32(data: Uint8Array): number {
  return native === undefined ? crc32Portable(data) : native(data) >>> 0;
}
