import { u16LengthPrefixed } from "../crypto/length-prefix.js";
import type { KeyContext } from "./key-manager.js";

/**
 * AAD for wrapping a DEK under a KEK: a fixed label, then the KEK's id and version and the DEK's
 * id, owner and purpose, each length-prefixed so no two identities encode to the same bytes. A
 * wrapped key copied onto another key record therefore fails to unwrap.
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
  return Buffer.concat(fields.map((field) => u16LengthPrefixed(Buffer.from(field, "utf8"))));
}
