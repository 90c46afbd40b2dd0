import { createHmac } from "node:crypto";
import { constantTimeEqual } from "../crypto/compare.js";
import { randomBytes } from "../crypto/random.js";
import { SecretBytes } from "../crypto/secret.js";

/**
 * Time-based one-time passwords for admin MFA (PCI DSS v4.0.1 8.4.2, 8.5.1): TOTP (RFC 6238)
 * over HOTP (RFC 4226), with the RFC 4648 base32 and `otpauth://` URI used for enrolment.
 */

export type TotpAlgorithm = "SHA1" | "SHA256" | "SHA512";

/** RFC 6238 §4: X = 30 s is the recommended default step. */
export const TOTP_PERIOD_SECONDS = 30;
/** Codes an admin types: exactly 6 ASCII digits (RFC 4226 §5.3 R4: at least 6). */
export const TOTP_DIGITS = 6;
/** RFC 6238 §5.2: accept at most one step of clock drift either way. */
export const TOTP_WINDOW_STEPS = 1;
/** RFC 4226 §4 R6: a shared secret of at least 128 bits; 160 recommended. */
export const TOTP_MIN_SECRET_BYTES = 16;

const NODE_HASH: Record<TotpAlgorithm, string> = {
  SHA1: "sha1",
  SHA256: "sha256",
  SHA512: "sha512",
};

/** Secret length = the hash's output size, as the RFC 6238 Appendix B seeds are (20/32/64). */
const SECRET_BYTES: Record<TotpAlgorithm, number> = { SHA1: 20, SHA256: 32, SHA512: 64 };

const SIX_DIGITS = /^[0-9]{6}$/;

/** A fresh shared secret from the CSPRNG: 160 bits for SHA-1, more for SHA-256/512. */
export function generateTotpSecret(algorithm: TotpAlgorithm = "SHA1"): SecretBytes {
  return SecretBytes.from(randomBytes(SECRET_BYTES[algorithm]));
}

/**
 * RFC 4226 §5.3 dynamic truncation: the low nibble of the last byte picks 4 bytes, whose top
 * bit is cleared so the value is the same signed or unsigned (a 31-bit integer).
 */
export function dynamicTruncation(digest: Uint8Array): number {
  const offset = digest[digest.length - 1]! & 0x0f;
  if (offset + 4 > digest.length) {
    throw new RangeError("digest too short for dynamic truncation");
  }
  return (
    ((digest[offset]! & 0x7f) << 24) |
    (digest[offset + 1]! << 16) |
    (digest[offset + 2]! << 8) |
    digest[offset + 3]!
  );
}

export interface HotpOptions {
  algorithm?: TotpAlgorithm;
  /** 6 to 8 (RFC 4226 §5.3; RFC 6238 Appendix B uses 8). */
  digits?: number;
}

/** HOTP(K, C) = Truncate(HMAC(K, C)) mod 10^digits, C an 8-byte big-endian counter (RFC 4226 §5). */
export function hotp(key: Uint8Array, counter: number, options: HotpOptions = {}): string {
  const { algorithm = "SHA1", digits = TOTP_DIGITS } = options;
  if (!Number.isSafeInteger(counter) || counter < 0) {
    throw new RangeError("HOTP counter must be a non-negative safe integer");
  }
  if (!Number.isInteger(digits) || digits < 6 || digits > 8) {
    throw new RangeError("HOTP codes have 6 to 8 digits");
  }
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const digest = createHmac(NODE_HASH[algorithm], key).update(message).digest();
  return String(dynamicTruncation(digest) % 10 ** digits).padStart(digits, "0");
}

/** RFC 6238 §4.2: T = floor((unix time - T0) / X), T0 = 0. */
export function totpStep(unixSeconds: number): number {
  if (!Number.isFinite(unixSeconds) || unixSeconds < 0) {
    throw new RangeError("time must be a non-negative number of seconds since the epoch");
  }
  return Math.floor(unixSeconds / TOTP_PERIOD_SECONDS);
}

/** The TOTP code for a time (RFC 6238 §4.2): used by the RFC vectors and by tests. */
export function totpAt(key: Uint8Array, unixSeconds: number, options: HotpOptions = {}): string {
  return hotp(key, totpStep(unixSeconds), options);
}

export interface VerifyTotpOptions {
  /** The server's clock: a Date or milliseconds since the epoch. */
  now: Date | number;
  /**
   * The step of the last code this user had accepted, or null if none yet. Required, so a
   * caller cannot forget replay protection: PCI DSS 8.5.1 and RFC 6238 §5.2 ("the verifier
   * MUST NOT accept the second attempt of the OTP after the successful validation").
   */
  lastUsedStep: number | null;
  algorithm?: TotpAlgorithm;
}

export type TotpVerification =
  /** Store `step` as the new lastUsedStep, atomically, before granting access. */
  | { ok: true; step: number }
  /**
   * MALFORMED: not exactly 6 ASCII digits. REPLAYED: the code is right for a step already used
   * (worth an audit event: someone else may have seen it). INVALID: anything else. Clients
   * should only ever see one generic failure.
   */
  | { ok: false; reason: "MALFORMED" | "INVALID" | "REPLAYED" };

/**
 * Checks a 6-digit code against the steps T-1, T, T+1 (RFC 6238 §5.2) and refuses any step at
 * or before `lastUsedStep`. Every candidate is computed and compared in constant time, without
 * an early exit, so the time taken says nothing about which step (if any) matched.
 */
export function verifyTotp(
  secret: SecretBytes,
  code: string,
  options: VerifyTotpOptions,
): TotpVerification {
  const { now, lastUsedStep, algorithm = "SHA1" } = options;
  if (lastUsedStep !== null && (!Number.isSafeInteger(lastUsedStep) || lastUsedStep < 0)) {
    throw new RangeError("lastUsedStep must be null or a non-negative safe integer");
  }
  if (secret.byteLength < TOTP_MIN_SECRET_BYTES) {
    throw new RangeError(`TOTP secret must be at least ${TOTP_MIN_SECRET_BYTES} bytes`);
  }
  if (typeof code !== "string" || !SIX_DIGITS.test(code)) {
    return { ok: false, reason: "MALFORMED" };
  }
  const nowMs = typeof now === "number" ? now : now.getTime();
  const current = totpStep(nowMs / 1000);
  let accepted = -1;
  let replayed = false;
  for (let step = current - TOTP_WINDOW_STEPS; step <= current + TOTP_WINDOW_STEPS; step++) {
    if (step < 0) continue;
    const expected = secret.use((key) => hotp(key, step, { algorithm, digits: TOTP_DIGITS }));
    const matches = constantTimeEqual(code, expected);
    const fresh = lastUsedStep === null || step > lastUsedStep;
    // The highest matching fresh step wins: storing the larger step can only refuse more.
    if (matches && fresh) accepted = step;
    if (matches && !fresh) replayed = true;
  }
  if (accepted >= 0) return { ok: true, step: accepted };
  return { ok: false, reason: replayed ? "REPLAYED" : "INVALID" };
}

// --- Enrolment: base32 and the otpauth URI -----------------------------------------------

const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** RFC 4648 §6 base32, without "=" padding (authenticator apps expect it unpadded). */
export function encodeBase32(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = ((buffer << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 0x1f];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 0x1f];
  return out;
}

/** Unpadded lengths RFC 4648 §6 can produce: 8 chars per 5 bytes, tails of 2, 4, 5 or 7. */
const VALID_TAIL = new Set([0, 2, 4, 5, 7]);

/**
 * Decodes RFC 4648 base32, case-insensitive, with or without correct padding. Returns
 * undefined for anything else, including non-zero leftover bits (RFC 4648 §3.5: canonical
 * encoding), so every accepted string names exactly one byte string.
 */
export function decodeBase32(text: string): Buffer | undefined {
  const unpadded = text.toUpperCase().replace(/=+$/, "");
  const padded = text.length !== unpadded.length;
  if (padded && text.length !== Math.ceil(unpadded.length / 8) * 8) return undefined;
  if (!VALID_TAIL.has(unpadded.length % 8)) return undefined;
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const char of unpadded) {
    const value = BASE32_ALPHABET.indexOf(char);
    if (value < 0) return undefined;
    buffer = ((buffer << 5) | value) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((buffer >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  if ((buffer & ((1 << bits) - 1)) !== 0) return undefined;
  return Buffer.from(out);
}

export interface TotpUriInput {
  secret: SecretBytes;
  /** The admin's login name, shown in the authenticator app. */
  account: string;
  issuer?: string;
  algorithm?: TotpAlgorithm;
}

/**
 * The `otpauth://totp/` URI an authenticator app reads from a QR code (the de facto "Key Uri
 * Format"): label `issuer:account`, issuer repeated as a parameter, secret in unpadded base32.
 * The URI IS the secret: render it as a QR code once, over TLS, and never log or store it.
 */
export function totpUri(input: TotpUriInput): string {
  const { secret, account, issuer = "payvault", algorithm = "SHA1" } = input;
  for (const [name, value] of [
    ["issuer", issuer],
    ["account", account],
  ] as const) {
    if (value.length === 0 || value.includes(":") || !value.isWellFormed()) {
      throw new RangeError(`${name} must be non-empty, well-formed and contain no colon`);
    }
  }
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(account)}`;
  // encodeURIComponent, not URLSearchParams: apps read "+" literally, not as a space.
  const query = [
    `secret=${secret.use(encodeBase32)}`,
    `issuer=${encodeURIComponent(issuer)}`,
    `algorithm=${algorithm}`,
    `digits=${TOTP_DIGITS}`,
    `period=${TOTP_PERIOD_SECONDS}`,
  ].join("&");
  return `otpauth://totp/${label}?${query}`;
}
