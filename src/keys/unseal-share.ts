/**
 * The text form of one Shamir share of the unseal key (src/crypto/shamir.ts), as a custodian
 * receives it, stores it and types or pastes it back (PCI DSS v4.0.1 3.6.1.2: each custodian
 * holds one full-length share). Written by hand for payvault: no small, maintained library has
 * a share format with a key set id and a checksum.
 *
 *   pvs1.<kekSetId>.<threshold>.<index>.<value>.<checksum>
 *   pvs1.kset_4V8kqo2GZ3S1mXbTn7yWcD.3.2.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8.e3b96095
 *   (share 2 of a 3-of-n set; the value here is the bytes 00..1f, a real one is random)
 *
 * - `pvs1`: format and version. A different version is refused, never guessed at.
 * - `kekSetId`: the set of shares this one belongs to (1-64 of A-Z a-z 0-9 _ -). A share of
 *   another vault, or of a set replaced by a rekey, names another set and is refused before it
 *   is combined with anything. The id itself rather than a hash of it: it is not secret, it
 *   lets the share say which set it belongs to, and a custodian can read it.
 * - `threshold`: how many shares rebuild the key (2-255); `index`: this share's x-coordinate
 *   (1-255). Decimal, no leading zeros.
 * - `value`: the share bytes, base64url without padding (RFC 4648 §5), canonical.
 * - `checksum`: the first 4 bytes of SHA-256 over the text before the last dot (whitespace
 *   removed, prefix in lowercase), as 8 hex digits. A mistyped share fails here (a chance of 2^-32 to slip through) rather than being
 *   combined into a wrong key, which would only show up as a failed unseal after every custodian
 *   has typed theirs. It protects against typing mistakes, not forgery: it is not keyed.
 *
 * Parts are separated by dots, which base64url never contains. Whitespace anywhere is ignored
 * (custodians paste with line breaks). The prefix and the checksum are case-insensitive; the
 * set id and the value are case-sensitive.
 *
 * Errors are ShareFormatError with a short message that says what is wrong and never contains
 * any part of the text (the value is secret; the rest is no help to an attacker either).
 */
import { createHash } from "node:crypto";
import { zeroize } from "../crypto/secret.js";
import { MAX_SHARES, MIN_THRESHOLD } from "../crypto/shamir.js";

export const SHARE_PREFIX = "pvs1";
/** Longest share value accepted (bytes). The unseal key is 32 bytes. */
export const MAX_SHARE_VALUE_BYTES = 256;
/** Longest text `decodeShare` reads, whitespace included; longer input is refused unread. */
export const MAX_SHARE_TEXT_LENGTH = 2048;

const PART_COUNT = 6;
const CHECKSUM_HEX_LENGTH = 8;
const KEK_SET_ID = /^[A-Za-z0-9_-]{1,64}$/;
const DECIMAL = /^[1-9][0-9]{0,2}$/;
const HEX_CHECKSUM = /^[0-9a-f]{8}$/;
const VERSION_LIKE = /^pvs[0-9]+$/;
const WHITESPACE = /\s/g;

export interface UnsealShare {
  readonly kekSetId: string;
  readonly index: number;
  readonly threshold: number;
  /** The share bytes: secret. The caller zeroizes them when done. */
  readonly value: Buffer;
}

/**
 * `malformed`: not a well-formed pvs1 share; `checksum`: well-formed but mistyped or damaged;
 * `foreign`: intact, but of another key set than the one expected.
 */
export type ShareFormatReason = "malformed" | "checksum" | "foreign";

/** A share text that cannot be used. The message never repeats the text. */
export class ShareFormatError extends Error {
  override readonly name = "ShareFormatError";

  constructor(
    readonly reason: ShareFormatReason,
    message: string,
  ) {
    super(message);
  }
}

/** Writes a share as one line of text (see the file comment for the format). */
export function encodeShare(share: UnsealShare): string {
  const { kekSetId, index, threshold, value } = share;
  if (!KEK_SET_ID.test(kekSetId)) {
    throw new RangeError("kekSetId must be 1-64 characters of A-Z a-z 0-9 _ -");
  }
  if (!Number.isInteger(threshold) || threshold < MIN_THRESHOLD || threshold > MAX_SHARES) {
    throw new RangeError(`threshold must be an integer from ${MIN_THRESHOLD} to ${MAX_SHARES}`);
  }
  if (!Number.isInteger(index) || index < 1 || index > MAX_SHARES) {
    throw new RangeError(`share index must be an integer from 1 to ${MAX_SHARES}`);
  }
  if (value.length === 0 || value.length > MAX_SHARE_VALUE_BYTES) {
    throw new RangeError(`share value must be 1 to ${MAX_SHARE_VALUE_BYTES} bytes`);
  }
  const body = [SHARE_PREFIX, kekSetId, threshold, index, value.toString("base64url")].join(".");
  return `${body}.${checksumOf(body)}`;
}

/**
 * Reads a share typed or pasted by a custodian. With `expectedKekSetId`, a share of any other
 * set is refused (reason `foreign`); without it the caller compares `kekSetId` itself.
 */
export function decodeShare(text: string, expectedKekSetId?: string): UnsealShare {
  if (typeof text !== "string") {
    throw malformed("a share must be text");
  }
  if (text.length > MAX_SHARE_TEXT_LENGTH) {
    throw malformed("the text is too long to be a share");
  }
  const parts = text.replace(WHITESPACE, "").split(".");
  const prefix = (parts[0] ?? "").toLowerCase();
  if (prefix !== SHARE_PREFIX) {
    throw malformed(
      VERSION_LIKE.test(prefix)
        ? "this share format version is not supported"
        : `not a payvault unseal share (it should start with "${SHARE_PREFIX}.")`,
    );
  }
  if (parts.length !== PART_COUNT) {
    throw malformed(`a share has ${PART_COUNT} parts separated by dots`);
  }
  const [, kekSetId = "", thresholdText = "", indexText = "", valueText = "", checksumText = ""] =
    parts;
  const checksum = checksumText.toLowerCase();
  if (!HEX_CHECKSUM.test(checksum)) {
    throw malformed(`the checksum (last part) must be ${CHECKSUM_HEX_LENGTH} hexadecimal digits`);
  }
  // The checksum is a hash of text the submitter already has, so comparing it in variable time
  // tells them nothing new.
  const body = [SHARE_PREFIX, kekSetId, thresholdText, indexText, valueText].join(".");
  if (checksumOf(body) !== checksum) {
    throw new ShareFormatError(
      "checksum",
      "the checksum does not match: a character was mistyped, left out or added",
    );
  }
  if (!KEK_SET_ID.test(kekSetId)) {
    throw malformed("the key set id is malformed");
  }
  const threshold = parseDecimal(thresholdText, MIN_THRESHOLD);
  if (threshold === undefined) {
    throw malformed(`the threshold must be a whole number from ${MIN_THRESHOLD} to ${MAX_SHARES}`);
  }
  const index = parseDecimal(indexText, 1);
  if (index === undefined) {
    throw malformed(`the share number must be a whole number from 1 to ${MAX_SHARES}`);
  }
  if (expectedKekSetId !== undefined && kekSetId !== expectedKekSetId) {
    throw new ShareFormatError("foreign", "the share belongs to another key set");
  }
  return { kekSetId, index, threshold, value: decodeValue(valueText) };
}

function malformed(message: string): ShareFormatError {
  return new ShareFormatError("malformed", message);
}

function checksumOf(body: string): string {
  return createHash("sha256")
    .update(body, "utf8")
    .digest()
    .subarray(0, CHECKSUM_HEX_LENGTH / 2)
    .toString("hex");
}

function parseDecimal(text: string, min: number): number | undefined {
  if (!DECIMAL.test(text)) return undefined;
  const n = Number(text);
  return n >= min && n <= MAX_SHARES ? n : undefined;
}

/**
 * Node's base64url decoder skips characters outside the alphabet and ignores stray trailing
 * bits, so several texts decode to the same bytes; only the one canonical spelling is accepted.
 * The bytes are moved out of Node's shared small-buffer pool (where any pooled Buffer's
 * `.buffer` could reach them) into memory of their own.
 */
function decodeValue(valueText: string): Buffer {
  const decoded = Buffer.from(valueText, "base64url");
  try {
    if (decoded.toString("base64url") !== valueText) {
      throw malformed("the share value is not valid base64url");
    }
    if (decoded.length === 0 || decoded.length > MAX_SHARE_VALUE_BYTES) {
      throw malformed(`the share value must be 1 to ${MAX_SHARE_VALUE_BYTES} bytes`);
    }
    const value = Buffer.alloc(decoded.length);
    decoded.copy(value);
    return value;
  } finally {
    zeroize(decoded);
  }
}
