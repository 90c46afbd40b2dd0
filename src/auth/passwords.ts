import { scrypt } from "node:crypto";
import { constantTimeEqual } from "../crypto/compare.js";
import { randomBytes } from "../crypto/random.js";
import { utf8Exact } from "../crypto/utf8.js";
import type { FieldIssue } from "../domain/field-issue.js";

/**
 * Admin passwords: scrypt hashes in a self-describing PHC-style string, and the PCI DSS v4.0.1
 * 8.3.6 / 8.3.7 policy. Parameters follow the OWASP Password Storage Cheat Sheet's scrypt
 * minimum (N=2^17, r=8, p=1), with RFC 7914 scrypt from node:crypto.
 */

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  ln: number;
  /** Block size. */
  r: number;
  /** Parallelization. */
  p: number;
}

/** What new hashes use. Raising it makes older hashes report `needsRehash` at their next login. */
export const SCRYPT_CURRENT: Readonly<ScryptParams> = Object.freeze({ ln: 17, r: 8, p: 1 });
/** The floor: a stored hash below any of these is refused, never verified (OWASP minimum). */
export const SCRYPT_MINIMUM: Readonly<ScryptParams> = Object.freeze({ ln: 17, r: 8, p: 1 });
/** The ceiling: bounds what a stored string can make us spend (128·N·r = 1 GiB, p runs). */
const SCRYPT_MAXIMUM: Readonly<ScryptParams> = Object.freeze({ ln: 19, r: 16, p: 4 });

const KEY_BYTES = 64;
const SALT_BYTES = 16;
const MAX_SALT_BYTES = 64;

/** PCI DSS 8.3.6: at least 12 characters. */
export const PASSWORD_MIN_CODE_POINTS = 12;
/** Bounds the normalization and KDF input; a passphrase never needs more. */
export const PASSWORD_MAX_CODE_POINTS = 1024;
/** PCI DSS 8.3.7: a new password differs from each of the last four. */
export const PASSWORD_HISTORY_DEPTH = 4;

export const PASSWORD_ISSUE_CODES = [
  "PASSWORD_TOO_SHORT",
  "PASSWORD_TOO_LONG",
  "PASSWORD_NEEDS_LETTERS_AND_DIGITS",
  "PASSWORD_INVALID_UNICODE",
  "PASSWORD_REUSED",
] as const;
export type PasswordIssueCode = (typeof PASSWORD_ISSUE_CODES)[number];

/** A stored hash we refuse to verify: unknown scheme, malformed, or weaker than the floor. */
export class UnsupportedPasswordHashError extends Error {
  readonly code = "PASSWORD_HASH_UNSUPPORTED";
  constructor(reason: string) {
    super(`stored password hash refused: ${reason}`);
    this.name = "UnsupportedPasswordHashError";
  }
}

/**
 * The form we hash and count: NFKC, so the same password typed through different input methods
 * (e.g. full-width digits from an IME) is the same password (NIST SP 800-63B §5.1.1.2 names
 * NFKC/NFKD). Undefined for strings that are not well-formed Unicode (a lone surrogate would
 * become U+FFFD in UTF-8 and collide with other passwords), or absurdly long ones.
 */
function normalizedPasswordBytes(password: string): Buffer | undefined {
  // A UTF-16 length cap before normalizing, so the work is bounded whatever arrives.
  if (typeof password !== "string" || password.length > PASSWORD_MAX_CODE_POINTS * 4) {
    return undefined;
  }
  if (!password.isWellFormed()) return undefined;
  return utf8Exact(password.normalize("NFKC"));
}

function deriveKey(password: Uint8Array, salt: Uint8Array, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.ln;
  // OpenSSL refuses when 128·r·(N + p + 2) exceeds maxmem (Node's default 32 MiB); N=2^17, r=8
  // needs 128 MiB. Twice 128·N·r covers it for any p up to the ceiling.
  const maxmem = 2 * 128 * N * params.r;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_BYTES, { N, r: params.r, p: params.p, maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64").replace(/=+$/, "");
}

function encode(params: ScryptParams, salt: Uint8Array, key: Uint8Array): string {
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

const ENCODED =
  /^\$scrypt\$ln=([0-9]{1,2}),r=([0-9]{1,2}),p=([0-9]{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  key: Buffer;
}

/** Strict parse: canonical base64, lengths, and params within [minimum, maximum]. */
function parseEncoded(encoded: string): ParsedHash {
  const match = typeof encoded === "string" ? ENCODED.exec(encoded) : null;
  if (match === null) throw new UnsupportedPasswordHashError("not a $scrypt$ hash");
  const [, ln, r, p, saltText, keyText] = match;
  const params = { ln: Number(ln), r: Number(r), p: Number(p) };
  const salt = Buffer.from(saltText!, "base64");
  const key = Buffer.from(keyText!, "base64");
  if (b64(salt) !== saltText || b64(key) !== keyText) {
    throw new UnsupportedPasswordHashError("non-canonical base64");
  }
  if (salt.length < SALT_BYTES || salt.length > MAX_SALT_BYTES || key.length !== KEY_BYTES) {
    throw new UnsupportedPasswordHashError("salt or key length");
  }
  for (const name of ["ln", "r", "p"] as const) {
    if (params[name] < SCRYPT_MINIMUM[name]) {
      throw new UnsupportedPasswordHashError(`${name} below the minimum`);
    }
    if (params[name] > SCRYPT_MAXIMUM[name]) {
      throw new UnsupportedPasswordHashError(`${name} above the maximum`);
    }
  }
  return { params, salt, key };
}

/**
 * Hashes a password for storage (PCI DSS 8.3.2: authentication factors unreadable in storage):
 * `$scrypt$ln=17,r=8,p=1$<salt>$<key>`, salt 16 CSPRNG bytes, key 64 bytes, both base64
 * without padding. Call {@link checkPasswordPolicy} first; this only refuses what cannot be
 * hashed faithfully (ill-formed Unicode, over-long input).
 */
export async function hashPassword(password: string): Promise<string> {
  const bytes = normalizedPasswordBytes(password);
  if (bytes === undefined) {
    throw new RangeError("password is not well-formed Unicode or is too long");
  }
  const salt = randomBytes(SALT_BYTES);
  return encode(SCRYPT_CURRENT, salt, await deriveKey(bytes, salt, SCRYPT_CURRENT));
}

export interface PasswordVerification {
  ok: boolean;
  /** True when `ok` and the hash was made with other than the current params: store a new one. */
  needsRehash: boolean;
}

let dummyHash: ParsedHash | undefined;

/** A hash of nothing anyone knows, at the current params; made once per process. */
function dummy(): ParsedHash {
  dummyHash ??= {
    params: { ...SCRYPT_CURRENT },
    salt: randomBytes(SALT_BYTES),
    key: randomBytes(KEY_BYTES),
  };
  return dummyHash;
}

/**
 * Verifies a password against a stored hash in constant time. Pass `undefined` when the user
 * does not exist: the same scrypt work is done against a dummy hash and the answer is false, so
 * login takes one path whether or not the user exists (issue 5; OWASP Authentication Cheat
 * Sheet). Ill-formed or over-long input also does the work and fails.
 *
 * @throws UnsupportedPasswordHashError when the stored string is malformed, of another scheme,
 *   or weaker than {@link SCRYPT_MINIMUM}: fail closed, and loudly, rather than verify it.
 */
export async function verifyPassword(
  password: string,
  encoded: string | undefined,
): Promise<PasswordVerification> {
  const stored = encoded === undefined ? dummy() : parseEncoded(encoded);
  const bytes = normalizedPasswordBytes(password);
  const candidate = await deriveKey(bytes ?? Buffer.alloc(0), stored.salt, stored.params);
  const ok =
    constantTimeEqual(candidate, stored.key) && bytes !== undefined && encoded !== undefined;
  const current =
    stored.params.ln === SCRYPT_CURRENT.ln &&
    stored.params.r === SCRYPT_CURRENT.r &&
    stored.params.p === SCRYPT_CURRENT.p &&
    stored.salt.length === SALT_BYTES;
  return { ok, needsRehash: ok && !current };
}

export interface PasswordPolicyInput {
  /** The user's last {@link PASSWORD_HISTORY_DEPTH} stored hashes, the current one included. */
  previousHashes: readonly string[];
}

export type PasswordPolicyResult = { ok: true } | { ok: false; issues: FieldIssue[] };

const LETTER = /\p{L}/u;
const DIGIT = /\p{Nd}/u;

function issue(code: PasswordIssueCode, message: string): FieldIssue {
  return { field: "password", code, message };
}

/**
 * PCI DSS v4.0.1 8.3.6 ("a minimum length of 12 characters ... contain both numeric and
 * alphabetic characters") and 8.3.7 (not the same as any of the last four). Characters are
 * Unicode code points after NFKC normalization, so "é" is one character however it was typed.
 * The reuse check runs only when the rest passes: it costs one scrypt per previous hash.
 */
export async function checkPasswordPolicy(
  password: string,
  input: PasswordPolicyInput,
): Promise<PasswordPolicyResult> {
  const bytes = normalizedPasswordBytes(password);
  if (bytes === undefined) {
    const tooLong = typeof password === "string" && password.length > PASSWORD_MAX_CODE_POINTS * 4;
    return {
      ok: false,
      issues: [
        tooLong
          ? issue("PASSWORD_TOO_LONG", `Use at most ${PASSWORD_MAX_CODE_POINTS} characters.`)
          : issue("PASSWORD_INVALID_UNICODE", "The password is not well-formed Unicode text."),
      ],
    };
  }
  const normalized = bytes.toString("utf8");
  const length = [...normalized].length;
  const issues: FieldIssue[] = [];
  if (length < PASSWORD_MIN_CODE_POINTS) {
    issues.push(
      issue("PASSWORD_TOO_SHORT", `Use at least ${PASSWORD_MIN_CODE_POINTS} characters.`),
    );
  }
  if (length > PASSWORD_MAX_CODE_POINTS) {
    issues.push(issue("PASSWORD_TOO_LONG", `Use at most ${PASSWORD_MAX_CODE_POINTS} characters.`));
  }
  if (!LETTER.test(normalized) || !DIGIT.test(normalized)) {
    issues.push(
      issue("PASSWORD_NEEDS_LETTERS_AND_DIGITS", "Use both letters and digits in the password."),
    );
  }
  if (issues.length > 0) return { ok: false, issues };
  for (const previous of input.previousHashes) {
    if ((await verifyPassword(password, previous)).ok) {
      return {
        ok: false,
        issues: [
          issue(
            "PASSWORD_REUSED",
            `Choose a password different from your last ${PASSWORD_HISTORY_DEPTH}.`,
          ),
        ],
      };
    }
  }
  return { ok: true };
}
