/**
 * The versioned, self-describing ciphertext format for stored card data.
 *
 * Byte layout (version 0x01), all offsets in bytes, L = dekId length:
 *
 * | offset      | size | field                                            |
 * |-------------|------|--------------------------------------------------|
 * | 0           | 1    | format version, 0x01                             |
 * | 1           | 1    | L, length of the DEK id, 1..64                   |
 * | 2           | L    | DEK id, printable ASCII 0x21..0x7e               |
 * | 2+L         | 12   | nonce (96-bit random IV, NIST SP 800-38D §8.2.2) |
 * | 14+L        | n    | AES-256-GCM ciphertext, n = plaintext length     |
 * | 14+L+n      | 16   | GCM authentication tag (128 bits)                |
 *
 * Overhead is 30 + L bytes. The plaintext is not padded, so the envelope
 * length reveals the plaintext length (e.g. a 15- vs 16-digit PAN).
 *
 * The AAD is never stored; it is rebuilt from the caller's context:
 *
 *   "payvault/envelope/v1" || 0x01 || lp(tenantId) || lp(objectId)
 *                          || lp(purpose) || lp(dekId)
 *
 * where lp(x) = u16 big-endian byte length of UTF-8(x) || UTF-8(x). The label
 * and version have fixed width and every other field is length-prefixed, so
 * the encoding is injective: two different contexts never share an AAD.
 * Binding tenant, object and purpose means a ciphertext copied to another
 * row, tenant or purpose fails to open (DESIGN.md; PCI DSS 3.5.1). The header
 * is bound too: the version and the DEK id are both inside the AAD.
 */
import { randomBytes } from "node:crypto";
import {
  AES_256_KEY_BYTES,
  aesGcmDecrypt,
  aesGcmEncrypt,
  GCM_NONCE_BYTES,
  GCM_TAG_BYTES,
} from "./aes-gcm.js";
import { DecryptionError } from "./decryption-error.js";
import { u16LengthPrefixed } from "./length-prefix.js";
import { utf8Exact } from "./utf8.js";

export const ENVELOPE_VERSION = 0x01;

/**
 * One key, one purpose (NIST SP 800-57 Part 1 Rev. 5 §5.2); SAD keys are apart from
 * PAN keys (DESIGN.md). The purpose is in the AAD, so ciphertexts never cross over.
 */
export const PURPOSES = [
  "pan",
  "sad",
  "fingerprint",
  "audit",
  "apikey",
  "jose",
  "totp",
  "authn",
  "webhook",
] as const;
export type Purpose = (typeof PURPOSES)[number];

export interface EnvelopeContext {
  tenantId: string;
  objectId: string;
  purpose: Purpose;
}

/**
 * With random 96-bit nonces, SP 800-38D §8.3 caps one key at 2^32 encryptions.
 * The key layer must rotate a DEK before it has sealed this many envelopes.
 */
export const MAX_SEALS_PER_KEY = 2 ** 32;

export const DEK_ID_MAX_LENGTH = 64;
const DEK_ID_PATTERN = /^[\x21-\x7e]{1,64}$/;
const AAD_LABEL = Buffer.from("payvault/envelope/v1", "ascii");
const PREFIX_BYTES = 2;
const MIN_BODY_BYTES = GCM_NONCE_BYTES + GCM_TAG_BYTES;

export function isPurpose(value: unknown): value is Purpose {
  return typeof value === "string" && (PURPOSES as readonly string[]).includes(value);
}

function contextField(value: string): Buffer {
  const bytes = utf8Exact(value);
  if (bytes === undefined || bytes.length === 0) {
    throw new TypeError("context fields must be non-empty, well-formed strings");
  }
  return u16LengthPrefixed(bytes);
}

/**
 * Canonical AAD for an envelope (layout in the file comment). Throws
 * RangeError/TypeError for a malformed context or DEK id.
 */
export function buildAad(ctx: EnvelopeContext, dekId: string): Buffer {
  if (!DEK_ID_PATTERN.test(dekId)) {
    throw new RangeError(`DEK id must be 1..${DEK_ID_MAX_LENGTH} printable ASCII characters`);
  }
  if (!isPurpose(ctx.purpose)) {
    throw new RangeError("unknown envelope purpose");
  }
  return Buffer.concat([
    AAD_LABEL,
    Buffer.of(ENVELOPE_VERSION),
    contextField(ctx.tenantId),
    contextField(ctx.objectId),
    contextField(ctx.purpose),
    contextField(dekId),
  ]);
}

export interface SealEnvelopeArgs {
  dekId: string;
  key: Uint8Array;
  plaintext: Uint8Array;
  context: EnvelopeContext;
  /**
   * Known-answer tests only. A nonce must never repeat under one key
   * (SP 800-38D §8): leave it out and a fresh random one is drawn.
   */
  nonce?: Uint8Array;
}

/** Encrypts `plaintext` under a 256-bit DEK into a version 0x01 envelope. */
export function sealEnvelope(args: SealEnvelopeArgs): Buffer {
  if (args.key.length !== AES_256_KEY_BYTES) {
    throw new RangeError(`envelope key must be ${AES_256_KEY_BYTES} bytes (AES-256)`);
  }
  // A key buffer zeroed under a caller (evicted from the key cache mid-operation) must fail the
  // request, never seal card data under a key anyone knows.
  if (args.key.every((byte) => byte === 0)) {
    throw new RangeError("envelope key is all zeros");
  }
  const aad = buildAad(args.context, args.dekId);
  const nonce = args.nonce ?? randomBytes(GCM_NONCE_BYTES);
  const { ciphertext, tag } = aesGcmEncrypt(args.key, nonce, args.plaintext, aad);
  const header = Buffer.of(ENVELOPE_VERSION, args.dekId.length);
  return Buffer.concat([header, Buffer.from(args.dekId, "ascii"), nonce, ciphertext, tag]);
}

interface EnvelopeHeader {
  dekId: string;
  bodyOffset: number;
}

function parseHeader(blob: Uint8Array): EnvelopeHeader {
  if (blob.length < PREFIX_BYTES || blob[0] !== ENVELOPE_VERSION) {
    throw new DecryptionError();
  }
  const idLength = blob[1] ?? 0;
  const bodyOffset = PREFIX_BYTES + idLength;
  if (idLength < 1 || idLength > DEK_ID_MAX_LENGTH || blob.length < bodyOffset + MIN_BODY_BYTES) {
    throw new DecryptionError();
  }
  const dekId = Buffer.from(blob.buffer, blob.byteOffset + PREFIX_BYTES, idLength).toString(
    "latin1",
  );
  if (!DEK_ID_PATTERN.test(dekId)) {
    throw new DecryptionError();
  }
  return { dekId, bodyOffset };
}

/**
 * The DEK id an envelope names, so the caller can fetch that key. Only the
 * header's shape is checked here; the id is authenticated when the envelope
 * is opened. Throws {@link DecryptionError} if the header is malformed.
 */
export function envelopeDekId(blob: Uint8Array): string {
  return parseHeader(blob).dekId;
}

function aadOrFail(context: EnvelopeContext, dekId: string): Buffer {
  try {
    return buildAad(context, dekId);
  } catch {
    throw new DecryptionError();
  }
}

/**
 * Verifies and decrypts an envelope sealed for exactly this `context`. Every
 * failure (format, version, length, key size, context, tag) throws the same
 * {@link DecryptionError}.
 */
export function openEnvelope(blob: Uint8Array, key: Uint8Array, context: EnvelopeContext): Buffer {
  if (key.length !== AES_256_KEY_BYTES) {
    throw new DecryptionError();
  }
  const { dekId, bodyOffset } = parseHeader(blob);
  const aad = aadOrFail(context, dekId);
  const view = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const ciphertextOffset = bodyOffset + GCM_NONCE_BYTES;
  const tagOffset = view.length - GCM_TAG_BYTES;
  const nonce = view.subarray(bodyOffset, ciphertextOffset);
  const ciphertext = view.subarray(ciphertextOffset, tagOffset);
  return aesGcmDecrypt(key, nonce, ciphertext, view.subarray(tagOffset), aad);
}
