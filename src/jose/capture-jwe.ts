/**
 * Decrypting the JWEs that browsers and tenants send to the vault (RFC 7516 §5.2; RFC 8725).
 *
 * Keys are found by "kid" only (RFC 7515 §4.1.4), through a lookup the caller backs with keys
 * unwrapped from the key hierarchy or held in an HSM; a header can never bring or point to its
 * own key (RFC 8725 §3.10). The key found must be of the header's algorithm (RFC 8725 §3.1).
 * Every failure past this point is the one `JoseRejected` with code JWE_INVALID.
 */
import { readKid } from "./compact.js";
import {
  type DecryptionKey,
  openParsedJwe,
  type ReadJweOptions,
  readCompactJwe,
} from "./jwe-open.js";
import { JoseRejected } from "./rejected.js";

/** Finds the vault's private key for a kid; `undefined` when the kid is unknown or retired. */
export type DecryptionKeys = (
  kid: string,
) => DecryptionKey | undefined | Promise<DecryptionKey | undefined>;

export type DecryptCaptureJweOptions = ReadJweOptions;

export interface DecryptedJwe {
  readonly plaintext: Uint8Array;
  readonly protectedHeader: Readonly<Record<string, unknown>>;
  readonly kid: string;
}

/**
 * Decrypts a compact JWE under the capture policy. Errors thrown by `keys` itself (an HSM that
 * is down) propagate unchanged: they are the vault's fault, not the sender's.
 */
export async function decryptCaptureJwe(
  compact: string,
  keys: DecryptionKeys,
  options: DecryptCaptureJweOptions = {},
): Promise<DecryptedJwe> {
  const parsed = readCompactJwe(compact, options);
  const kid = readKid(parsed.header, "JWE_INVALID");
  const key = await keys(kid);
  if (key === undefined) throw new JoseRejected("JWE_INVALID", "kid_unknown");
  const plaintext = await openParsedJwe(parsed, key);
  return { plaintext, protectedHeader: parsed.header, kid };
}
