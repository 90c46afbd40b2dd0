import { u16LengthPrefixed } from "../crypto/length-prefix.js";
import type { KeyContext } from "./key-manager.js";

/**
 * AAD for wrapping a DEK under a KEK: a fixed label, then the KEK's id and version and the DEK's
 * id, owner, purpose and environment, each length-prefixed so no two identities encode to the
 * same bytes. A wrapped key copied onto another key record therefore fails to unwrap. Adapters
 * whose backend takes a structured context instead (AWS KMS EncryptionContext) pass the same
 * fields.
 */
export function wrapAad(kekId: string, kekVersion: number, context: KeyContext): Buffer {
  return encode([
    "payvault/dek-wrap/v2",
    kekId,
    String(kekVersion),
    context.dekId,
    context.owner,
    context.purpose,
    context.environment,
  ]);
}

/**
 * The AAD of the first release (no environment field): DEKs wrapped by a `payvault-kek/v1` file
 * still unwrap, and are moved to the v2 AAD by the next KEK rotation.
 */
export function legacyWrapAad(kekId: string, kekVersion: number, context: KeyContext): Buffer {
  return encode([
    "payvault/dek-wrap/v1",
    kekId,
    String(kekVersion),
    context.dekId,
    context.owner,
    context.purpose,
  ]);
}

function encode(fields: readonly string[]): Buffer {
  return Buffer.concat(fields.map((field) => u16LengthPrefixed(Buffer.from(field, "utf8"))));
}
