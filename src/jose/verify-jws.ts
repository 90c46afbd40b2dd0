/**
 * Verifying compact JWSs: the vault's own capture-session tokens and tenants' signed requests
 * (RFC 7515 §5.2 validation steps; RFC 8725 §3.1, §3.10, §3.11).
 *
 * The caller names the algorithms it accepts for this kind of token, a subset of ES256, EdDSA
 * and PS256. The header may not carry or point to a key, may not list critical extensions
 * (RFC 7515 §4.1.11; "b64": false of RFC 7797 is refused outright, since an unencoded payload
 * changes what is signed), and must name its key by "kid". The key found must be of the
 * header's algorithm. When `typ` is given the header must carry it (explicit typing,
 * RFC 8725 §3.11), so a token minted for one purpose cannot be replayed as another.
 */
import { compactVerify } from "jose";
import { isJwsAlg, type JwsAlg, KEY_SOURCE_HEADERS } from "./algorithms.js";
import {
  checkSegments,
  DEFAULT_MAX_COMPACT_LENGTH,
  decodeHeader,
  readKid,
  refuseCommonHeaders,
  splitCompact,
} from "./compact.js";
import { type AsymmetricKey, keyFits } from "./key-fit.js";
import { JoseRejected } from "./rejected.js";

/** A public key the vault verifies with, and the one algorithm it serves. */
export interface VerificationKey {
  readonly alg: JwsAlg;
  readonly publicKey: AsymmetricKey;
}

export type VerificationKeys = (
  kid: string,
) => VerificationKey | undefined | Promise<VerificationKey | undefined>;

export interface VerifyJwsOptions {
  readonly algorithms: readonly JwsAlg[];
  /** Bound on the compact string, checked before parsing. Default 16 KiB. */
  readonly maxLength?: number;
  /** Required "typ" (RFC 8725 §3.11), compared case-insensitively without "application/". */
  readonly typ?: string;
}

export interface VerifiedJws {
  readonly payload: Uint8Array;
  readonly protectedHeader: Readonly<Record<string, unknown>>;
  readonly kid: string;
}

export interface ParsedJws {
  readonly compact: string;
  readonly header: Readonly<Record<string, unknown>>;
  readonly alg: JwsAlg;
}

function mediaType(value: string): string {
  const lower = value.toLowerCase();
  return lower.startsWith("application/") ? lower.slice("application/".length) : lower;
}

function checkAlgorithms(algorithms: readonly JwsAlg[]): void {
  if (algorithms.length === 0 || !algorithms.every(isJwsAlg)) {
    throw new TypeError(`algorithms must be a non-empty subset of ES256, EdDSA, PS256`);
  }
}

export function readCompactJws(compact: unknown, options: VerifyJwsOptions): ParsedJws {
  checkAlgorithms(options.algorithms);
  const maxLength = options.maxLength ?? DEFAULT_MAX_COMPACT_LENGTH;
  const segments = splitCompact(compact, 3, maxLength, "JWS_INVALID");
  const header = decodeHeader(segments[0] ?? "", "JWS_INVALID");
  const alg = header.alg;
  if (!isJwsAlg(alg) || !options.algorithms.includes(alg)) {
    throw new JoseRejected("JWS_INVALID", "alg_not_allowed");
  }
  if (Object.hasOwn(header, "b64")) throw new JoseRejected("JWS_INVALID", "b64");
  refuseCommonHeaders(header, KEY_SOURCE_HEADERS, "JWS_INVALID");
  if (options.typ !== undefined) {
    const typ = header.typ;
    if (typeof typ !== "string" || mediaType(typ) !== mediaType(options.typ)) {
      throw new JoseRejected("JWS_INVALID", "typ");
    }
  }
  checkSegments(segments.slice(1), [1], "JWS_INVALID");
  return { compact: compact as string, header: Object.freeze(header), alg };
}

export async function verifyParsedJws(
  parsed: ParsedJws,
  key: VerificationKey,
): Promise<Uint8Array> {
  if (key.alg !== parsed.alg || !keyFits(key.publicKey, key.alg, "public")) {
    throw new JoseRejected("JWS_INVALID", "key_mismatch");
  }
  try {
    const { payload } = await compactVerify(parsed.compact, key.publicKey, {
      algorithms: [key.alg],
      crit: {},
    });
    return payload;
  } catch {
    throw new JoseRejected("JWS_INVALID", "signature_invalid");
  }
}

/** Verifies a compact JWS; the key is found by the header's kid through `keys` only. */
export async function verifyJws(
  compact: string,
  keys: VerificationKeys,
  options: VerifyJwsOptions,
): Promise<VerifiedJws> {
  const parsed = readCompactJws(compact, options);
  const kid = readKid(parsed.header, "JWS_INVALID");
  const key = await keys(kid);
  if (key === undefined) throw new JoseRejected("JWS_INVALID", "kid_unknown");
  const payload = await verifyParsedJws(parsed, key);
  return { payload, protectedHeader: parsed.header, kid };
}
