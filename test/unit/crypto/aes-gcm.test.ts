import { describe, expect, it } from "vitest";
import {
  AES_GCM_KEY_BYTES,
  aesGcmDecrypt,
  aesGcmEncrypt,
  GCM_NONCE_BYTES,
  GCM_TAG_BYTES,
} from "../../../src/crypto/aes-gcm.js";
import { expectDecryptionFailure } from "./expect-decryption-failure.js";

const key = Buffer.alloc(32, 7);
const nonce = Buffer.alloc(GCM_NONCE_BYTES, 9);
const aad = Buffer.from("aad");
const plaintext = Buffer.from("4111111111111111");

describe("aesGcmEncrypt / aesGcmDecrypt", () => {
  it("names the allowed sizes: 128/192/256-bit keys, 96-bit nonce, 128-bit tag", () => {
    expect(AES_GCM_KEY_BYTES).toEqual([16, 24, 32]);
    expect(GCM_NONCE_BYTES).toBe(12);
    expect(GCM_TAG_BYTES).toBe(16);
  });

  it.each([16, 24, 32])("round-trips with a %i-byte key", (size) => {
    const k = Buffer.alloc(size, 1);
    const { ciphertext, tag } = aesGcmEncrypt(k, nonce, plaintext, aad);
    expect(tag).toHaveLength(GCM_TAG_BYTES);
    expect(ciphertext).toHaveLength(plaintext.length);
    expect(ciphertext.equals(plaintext)).toBe(false);
    expect(aesGcmDecrypt(k, nonce, ciphertext, tag, aad)).toEqual(plaintext);
  });

  it.each([0, 8, 15, 31, 33, 64])("refuses to encrypt with a %i-byte key", (size) => {
    expect(() => aesGcmEncrypt(Buffer.alloc(size), nonce, plaintext, aad)).toThrow(RangeError);
  });

  it.each([0, 8, 11, 13, 16])("refuses to encrypt with a %i-byte nonce", (size) => {
    expect(() => aesGcmEncrypt(key, Buffer.alloc(size), plaintext, aad)).toThrow(RangeError);
  });

  it("fails generically on wrong key length, nonce length, short tag, AAD or key", () => {
    const { ciphertext, tag } = aesGcmEncrypt(key, nonce, plaintext, aad);
    expectDecryptionFailure(() => aesGcmDecrypt(key.subarray(0, 31), nonce, ciphertext, tag, aad));
    expectDecryptionFailure(() => aesGcmDecrypt(Buffer.alloc(0), nonce, ciphertext, tag, aad));
    expectDecryptionFailure(() => aesGcmDecrypt(key, nonce.subarray(0, 8), ciphertext, tag, aad));
    // A truncated tag must never be accepted (SP 800-38D Appendix C).
    expectDecryptionFailure(() => aesGcmDecrypt(key, nonce, ciphertext, tag.subarray(0, 12), aad));
    expectDecryptionFailure(() => aesGcmDecrypt(key, nonce, ciphertext, tag.subarray(0, 4), aad));
    expectDecryptionFailure(() => aesGcmDecrypt(key, nonce, ciphertext, tag, Buffer.from("aae")));
    expectDecryptionFailure(() => aesGcmDecrypt(Buffer.alloc(32, 8), nonce, ciphertext, tag, aad));
  });
});
