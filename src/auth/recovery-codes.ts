import { constantTimeEqual } from "../crypto/compare.js";
import { hmacSha256 } from "../crypto/hmac.js";
import { u16LengthPrefixed } from "../crypto/length-prefix.js";
import { randomBytes } from "../crypto/random.js";
import { utf8Exact } from "../crypto/utf8.js";

/**
 * Single-use recovery codes: the fallback second factor when an admin loses their authenticator
 * (issue 5; PCI DSS v4.0.1 8.4.2 still holds, as a code is "something you have" written down).
 *
 * Stored as HMAC-SHA-256 under a server-held key, not scrypt: each code carries 60 random bits,
 * so a slow hash adds nothing against guessing, while the key makes a stolen table useless on
 * its own (the same reasoning as PCI DSS 3.5.1.1 keyed hashes). It also lets one login attempt
 * cost one HMAC instead of ten scrypt runs (~1.3 GiB of memory), which would be a DoS lever.
 */

/** Codes handed out per enrolment. */
export const RECOVERY_CODE_COUNT = 10;
/** Symbols per code; 5 bits each (Crockford base32), so 60 bits (≥ 50 asked). */
const CODE_SYMBOLS = 12;
const GROUP = 4;
/** Crockford base32: no I, L, O or U, so codes read aloud or copied by hand stay unambiguous. */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** SP 800-107r1 §5.3.4: the key carries the full strength of the MAC. */
export const RECOVERY_KEY_MIN_BYTES = 32;
const DOMAIN = Buffer.from("payvault recovery code v1", "utf8");

export interface RecoveryCodeSet {
  /** Shown to the admin exactly once, e.g. "7K2M-9QXA-D4TB"; never stored or logged. */
  codes: string[];
  /** Store these (one row each, with a used-at column); same order as `codes`. */
  hashes: string[];
}

function checkKey(key: Uint8Array): void {
  if (key.length < RECOVERY_KEY_MIN_BYTES) {
    throw new RangeError(`recovery code key must be at least ${RECOVERY_KEY_MIN_BYTES} bytes`);
  }
}

/**
 * base64url HMAC-SHA-256(key, lp(domain) || lp(userId) || code). The user id binds a code to
 * its owner, so a hash copied to another account's rows matches nothing.
 */
function hashCode(key: Uint8Array, userId: string, canonical: string): string {
  const user = utf8Exact(userId);
  if (user === undefined || user.length === 0) {
    throw new TypeError("userId must be a non-empty, well-formed string");
  }
  return hmacSha256(
    key,
    u16LengthPrefixed(DOMAIN),
    u16LengthPrefixed(user),
    Buffer.from(canonical, "ascii"),
  ).toString("base64url");
}

function display(canonical: string): string {
  const groups: string[] = [];
  for (let i = 0; i < canonical.length; i += GROUP) groups.push(canonical.slice(i, i + GROUP));
  return groups.join("-");
}

/**
 * What the admin typed, in canonical form: case, spaces and hyphens ignored, and the Crockford
 * look-alikes O→0, I/L→1 accepted. Undefined unless exactly 12 alphabet symbols remain.
 */
export function canonicalRecoveryCode(input: string): string | undefined {
  if (typeof input !== "string" || input.length > 64) return undefined;
  const canonical = input
    .toUpperCase()
    .replace(/[\s-]/g, "")
    .replace(/O/g, "0")
    .replace(/[IL]/g, "1");
  if (canonical.length !== CODE_SYMBOLS) return undefined;
  for (const char of canonical) {
    if (!ALPHABET.includes(char)) return undefined;
  }
  return canonical;
}

/** A fresh set of codes from the CSPRNG (each symbol one random byte mod 32: unbiased). */
export function generateRecoveryCodes(
  key: Uint8Array,
  userId: string,
  count = RECOVERY_CODE_COUNT,
): RecoveryCodeSet {
  checkKey(key);
  if (!Number.isInteger(count) || count < 1 || count > 100) {
    throw new RangeError("recovery code count must be 1 to 100");
  }
  const codes: string[] = [];
  const hashes: string[] = [];
  for (let i = 0; i < count; i++) {
    const canonical = [...randomBytes(CODE_SYMBOLS)].map((b) => ALPHABET[b & 0x1f]).join("");
    codes.push(display(canonical));
    hashes.push(hashCode(key, userId, canonical));
  }
  return { codes, hashes };
}

export interface StoredRecoveryCode {
  hash: string;
  /** When it was consumed, or null while still usable. */
  usedAt: Date | null;
}

export type RecoveryCodeVerification =
  /**
   * Consume `hash` before granting access, atomically and once, e.g.
   * `UPDATE … SET used_at = now() WHERE user_id = $1 AND hash = $2 AND used_at IS NULL`, and
   * grant only if exactly one row changed (two concurrent logins with one code: one wins).
   */
  | { ok: true; hash: string }
  /** USED: a consumed code came back (worth an audit event). Clients see one generic failure. */
  | { ok: false; reason: "MALFORMED" | "INVALID" | "USED" };

/**
 * Checks a typed code against every stored code of the user, used ones included, comparing
 * each in constant time with no early exit.
 */
export function verifyRecoveryCode(
  key: Uint8Array,
  userId: string,
  input: string,
  stored: readonly StoredRecoveryCode[],
): RecoveryCodeVerification {
  checkKey(key);
  const canonical = canonicalRecoveryCode(input);
  if (canonical === undefined) return { ok: false, reason: "MALFORMED" };
  const candidate = hashCode(key, userId, canonical);
  let match: string | undefined;
  let used = false;
  for (const code of stored) {
    if (constantTimeEqual(candidate, code.hash)) {
      if (code.usedAt === null) match = code.hash;
      else used = true;
    }
  }
  if (match !== undefined) return { ok: true, hash: match };
  return { ok: false, reason: used ? "USED" : "INVALID" };
}
