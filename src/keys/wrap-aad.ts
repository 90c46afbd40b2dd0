import type { KeyContext } from "./key-manager.js";

/**
 * AAD for wrapping a DEK under a KEK: a fixed label, then each field length-prefixed (u16
 * big-endian) so that no two different identities encode to the same bytes.
 */
export function wrapAad(kekId: string, kekVersion: number, context: KeyContext): Buffer {
  const fields = [
    "payvault/dek-wrap/v1",
    kekId,
    String(kekVersion),
    context.dekId,
    context.owner,
    context.purpose,
  ];
  const parts: Buffer[] = [];
  for (const field of fields) {
    const bytes = Buffer.from(field, "utf8");
    const length = Buffer.alloc(2);
    length.writeUInt16BE(bytes.length);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}
