/**
 * Reading and opening one compact JWE under the vault's policy (RFC 7516 §5.2 decryption steps,
 * with the allowlists of RFC 8725 §3.1 and the key binding of §3.1/§2.1).
 *
 * Split in two so the key lookup sits between them: `readCompactJwe` runs the size gate and
 * the header policy without touching a key; `openParsedJwe` checks that the key found for the
 * header is the right kind of key for the header's algorithm, then lets `jose` decrypt with
 * exactly that one algorithm. Any failure inside `jose` becomes the one generic error; jose
 * itself substitutes a random CEK when RSA-OAEP unwrapping fails (RFC 7516 §11.5).
 */
import { compactDecrypt } from "jose";
import { CAPTURE_JWE_ENC, type CaptureJweAlg } from "./algorithms.js";
import {
  checkSegments,
  DEFAULT_MAX_COMPACT_LENGTH,
  decodeHeader,
  splitCompact,
} from "./compact.js";
import { checkJweHeader } from "./jwe-header.js";
import { type AsymmetricKey, keyFits } from "./key-fit.js";
import { JoseRejected } from "./rejected.js";

/** A private key the vault decrypts with, and the one algorithm it serves. */
export interface DecryptionKey {
  readonly alg: CaptureJweAlg;
  readonly privateKey: AsymmetricKey;
}

export interface ReadJweOptions {
  /** Bound on the compact string, checked before parsing. Default 16 KiB. */
  readonly maxLength?: number;
  /** When set, the protected "cty" must equal it, case-insensitively (RFC 7515 §4.1.10). */
  readonly requiredCty?: string;
}

export interface ParsedJwe {
  readonly compact: string;
  readonly header: Readonly<Record<string, unknown>>;
  readonly alg: CaptureJweAlg;
}

// Segment indexes after the header: encrypted key, IV, ciphertext, tag.
const NON_EMPTY_SEGMENTS = [0, 1, 3];

export function readCompactJwe(compact: unknown, options: ReadJweOptions = {}): ParsedJwe {
  const maxLength = options.maxLength ?? DEFAULT_MAX_COMPACT_LENGTH;
  const segments = splitCompact(compact, 5, maxLength, "JWE_INVALID");
  const header = decodeHeader(segments[0] ?? "", "JWE_INVALID");
  const alg = checkJweHeader(header);
  checkSegments(segments.slice(1), NON_EMPTY_SEGMENTS, "JWE_INVALID");
  if (options.requiredCty !== undefined) {
    const cty = header.cty;
    if (typeof cty !== "string" || cty.toLowerCase() !== options.requiredCty.toLowerCase()) {
      throw new JoseRejected("JWE_INVALID", "cty");
    }
  }
  return { compact: compact as string, header: Object.freeze(header), alg };
}

export async function openParsedJwe(parsed: ParsedJwe, key: DecryptionKey): Promise<Uint8Array> {
  if (key.alg !== parsed.alg || !keyFits(key.privateKey, key.alg, "private")) {
    throw new JoseRejected("JWE_INVALID", "key_mismatch");
  }
  try {
    const { plaintext } = await compactDecrypt(parsed.compact, key.privateKey, {
      keyManagementAlgorithms: [key.alg],
      contentEncryptionAlgorithms: [CAPTURE_JWE_ENC],
      maxDecompressedLength: 0,
    });
    return plaintext;
  } catch {
    throw new JoseRejected("JWE_INVALID", "decrypt_failed");
  }
}
