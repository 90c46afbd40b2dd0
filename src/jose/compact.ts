/**
 * The size and format gate every compact JOSE object passes before anything is decoded
 * (RFC 7515 §7.1 and RFC 7516 §7.1 compact serialization; RFC 8725 §3.4-style bounds).
 *
 * Only the compact serialization is accepted: the JSON serializations (RFC 7515 §7.2,
 * RFC 7516 §7.2) carry unprotected headers and multiple recipients, which this vault never
 * needs. Every segment must be canonical base64url without padding (RFC 7515 §2): no spaces,
 * no foreign characters, no non-zero unused bits, so one object has exactly one encoding.
 */
import { type JoseRejectCode, JoseRejected } from "./rejected.js";

/** Default bound on a compact object, checked before any parsing. */
export const DEFAULT_MAX_COMPACT_LENGTH = 16 * 1024;

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function isCanonicalBase64url(segment: string): boolean {
  if (!BASE64URL.test(segment) || segment.length % 4 === 1) return false;
  return Buffer.from(segment, "base64url").toString("base64url") === segment;
}

/** Length and shape only: nothing is decoded yet. */
export function splitCompact(
  input: unknown,
  parts: 3 | 5,
  maxLength: number,
  code: JoseRejectCode,
): string[] {
  if (typeof input !== "string") throw new JoseRejected(code, "not_compact");
  if (input.length > maxLength) throw new JoseRejected(code, "oversize");
  if (input.startsWith("{")) throw new JoseRejected(code, "not_compact");
  const segments = input.split(".");
  if (segments.length !== parts) throw new JoseRejected(code, "not_compact");
  return segments;
}

/** RFC 7515 §5.2 steps 1-4: decode the protected header into a JSON object. */
export function decodeHeader(segment: string, code: JoseRejectCode): Record<string, unknown> {
  if (segment.length === 0 || !isCanonicalBase64url(segment)) {
    throw new JoseRejected(code, "malformed");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(Buffer.from(segment, "base64url")));
  } catch {
    throw new JoseRejected(code, "malformed");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new JoseRejected(code, "malformed");
  }
  return parsed as Record<string, unknown>;
}

/** The segments after the header: canonical base64url; `nonEmpty` ones must carry bytes. */
export function checkSegments(
  segments: readonly string[],
  nonEmpty: readonly number[],
  code: JoseRejectCode,
): void {
  segments.forEach((segment, index) => {
    if (!isCanonicalBase64url(segment)) throw new JoseRejected(code, "malformed");
    if (segment.length === 0 && nonEmpty.includes(index)) {
      throw new JoseRejected(code, "malformed");
    }
  });
}

/** A `kid` the vault can look up: a short printable string (RFC 7515 §4.1.4). */
export function readKid(header: Record<string, unknown>, code: JoseRejectCode): string {
  const kid = header.kid;
  if (kid === undefined) throw new JoseRejected(code, "kid_missing");
  if (
    typeof kid !== "string" ||
    kid.length === 0 ||
    kid.length > 256 ||
    !/^[\x20-\x7e]+$/.test(kid)
  ) {
    throw new JoseRejected(code, "malformed");
  }
  return kid;
}

/** RFC 7515 §4.1.11: "crit" lists extensions the recipient must understand; we understand none. */
export function refuseCommonHeaders(
  header: Record<string, unknown>,
  forbidden: readonly string[],
  code: JoseRejectCode,
): void {
  for (const name of forbidden) {
    if (Object.hasOwn(header, name)) throw new JoseRejected(code, "header_forbidden");
  }
  if (Object.hasOwn(header, "crit")) throw new JoseRejected(code, "crit");
}
