import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { aesGcmEncrypt } from "../../../src/crypto/aes-gcm.js";
import type { EnvelopeContext } from "../../../src/crypto/envelope.js";
import {
  buildAad,
  ENVELOPE_VERSION,
  envelopeDekId,
  openEnvelope,
  PURPOSES,
  sealEnvelope,
} from "../../../src/crypto/envelope.js";
import { expectDecryptionFailure } from "./expect-decryption-failure.js";
import { CONTEXT, DEK_ID, KEY, TEST_PANS } from "./test-data.js";

const printableAscii = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
const dekIdArb = fc.string({ unit: printableAscii, minLength: 1, maxLength: 64 });
const fieldArb = fc.string({ unit: "grapheme", minLength: 1, maxLength: 24 });
const contextArb: fc.Arbitrary<EnvelopeContext> = fc.record({
  tenantId: fieldArb,
  objectId: fieldArb,
  purpose: fc.constantFrom(...PURPOSES),
});

function lp(text: string): Buffer {
  const bytes = Buffer.from(text, "utf8");
  const len = Buffer.alloc(2);
  len.writeUInt16BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

describe("envelope format", () => {
  it("pins the AAD encoding: label, version, then u16be length-prefixed fields", () => {
    const aad = buildAad({ tenantId: "ten_1", objectId: "tok_ü", purpose: "sad" }, "key_1");
    const expected = Buffer.concat([
      Buffer.from("payvault/envelope/v1", "ascii"),
      Buffer.of(0x01),
      lp("ten_1"),
      lp("tok_ü"),
      lp("sad"),
      lp("key_1"),
    ]);
    expect(aad.toString("hex")).toBe(expected.toString("hex"));
  });

  it("pins the byte layout: version, dekId length, dekId, nonce, ciphertext, tag", () => {
    const nonce = Buffer.from("000102030405060708090a0b", "hex");
    const plaintext = Buffer.from(TEST_PANS[0]);
    const blob = sealEnvelope({ dekId: DEK_ID, key: KEY, plaintext, context: CONTEXT, nonce });
    const { ciphertext, tag } = aesGcmEncrypt(KEY, nonce, plaintext, buildAad(CONTEXT, DEK_ID));
    const expected = Buffer.concat([
      Buffer.of(ENVELOPE_VERSION, DEK_ID.length),
      Buffer.from(DEK_ID, "ascii"),
      nonce,
      ciphertext,
      tag,
    ]);
    expect(blob.toString("hex")).toBe(expected.toString("hex"));
    expect(blob).toHaveLength(30 + DEK_ID.length + plaintext.length);
  });

  it("round-trips any plaintext, context and dekId (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        contextArb,
        dekIdArb,
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (plaintext, context, dekId, key) => {
          const blob = sealEnvelope({ dekId, key, plaintext, context });
          expect(blob[0]).toBe(0x01);
          expect(blob).toHaveLength(30 + dekId.length + plaintext.length);
          expect(envelopeDekId(blob)).toBe(dekId);
          expect(openEnvelope(blob, key, context)).toEqual(Buffer.from(plaintext));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("never gives two different contexts the same AAD (property)", () => {
    fc.assert(
      fc.property(contextArb, dekIdArb, contextArb, dekIdArb, (c1, d1, c2, d2) => {
        const same =
          c1.tenantId === c2.tenantId &&
          c1.objectId === c2.objectId &&
          c1.purpose === c2.purpose &&
          d1 === d2;
        fc.pre(!same);
        expect(buildAad(c1, d1).equals(buildAad(c2, d2))).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it("is unambiguous where plain concatenation would not be", () => {
    const a = buildAad({ tenantId: "ab", objectId: "c", purpose: "pan" }, DEK_ID);
    const b = buildAad({ tenantId: "a", objectId: "bc", purpose: "pan" }, DEK_ID);
    expect(a.equals(b)).toBe(false);
  });

  it("draws a fresh nonce for every seal", () => {
    const args = {
      dekId: DEK_ID,
      key: KEY,
      plaintext: Buffer.from(TEST_PANS[1]),
      context: CONTEXT,
    };
    const first = sealEnvelope(args);
    const second = sealEnvelope(args);
    expect(first.equals(second)).toBe(false);
    expect(openEnvelope(first, KEY, CONTEXT)).toEqual(openEnvelope(second, KEY, CONTEXT));
  });

  it("opens an envelope that sits inside a larger buffer", () => {
    const blob = sealEnvelope({
      dekId: DEK_ID,
      key: KEY,
      plaintext: Buffer.from(TEST_PANS[2]),
      context: CONTEXT,
    });
    const row = Buffer.concat([Buffer.from("prefix"), blob, Buffer.from("suffix")]);
    const view = row.subarray(6, 6 + blob.length);
    expect(openEnvelope(view, KEY, CONTEXT).toString()).toBe(TEST_PANS[2]);
    expect(envelopeDekId(view)).toBe(DEK_ID);
  });
});

describe("sealEnvelope rejects bad arguments (programming errors)", () => {
  const base = { dekId: DEK_ID, key: KEY, plaintext: Buffer.from("x"), context: CONTEXT };

  it.each([16, 24, 31, 33])("a %i-byte key", (size) => {
    expect(() => sealEnvelope({ ...base, key: Buffer.alloc(size) })).toThrow(RangeError);
  });

  it.each(["", "x".repeat(65), "key 1", "clé", "key\n1"])("dekId %j", (dekId) => {
    expect(() => sealEnvelope({ ...base, dekId })).toThrow(RangeError);
  });

  it("accepts a 64-character dekId", () => {
    const dekId = "k".repeat(64);
    expect(envelopeDekId(sealEnvelope({ ...base, dekId }))).toBe(dekId);
  });

  it("a nonce that is not 12 bytes", () => {
    expect(() => sealEnvelope({ ...base, nonce: Buffer.alloc(8) })).toThrow(RangeError);
  });

  it("an empty or malformed context field, or an unknown purpose", () => {
    expect(() => sealEnvelope({ ...base, context: { ...CONTEXT, tenantId: "" } })).toThrow(
      TypeError,
    );
    expect(() => sealEnvelope({ ...base, context: { ...CONTEXT, objectId: "\uD800" } })).toThrow(
      TypeError,
    );
    const purpose = "card" as EnvelopeContext["purpose"];
    expect(() => sealEnvelope({ ...base, context: { ...CONTEXT, purpose } })).toThrow(RangeError);
  });
});

describe("envelopeDekId", () => {
  const blob = sealEnvelope({
    dekId: DEK_ID,
    key: KEY,
    plaintext: Buffer.from("x"),
    context: CONTEXT,
  });

  it.each([
    ["empty", Buffer.alloc(0)],
    ["version only", Buffer.of(0x01)],
    ["version 0x02", Buffer.concat([Buffer.of(0x02), blob.subarray(1)])],
    ["dekId length 0", Buffer.concat([Buffer.of(0x01, 0x00), blob.subarray(2)])],
    ["dekId length 65", Buffer.concat([Buffer.of(0x01, 65), Buffer.alloc(65 + 28, 0x41)])],
    ["dekId longer than the blob", Buffer.of(0x01, 0x40, 0x41, 0x41)],
    ["no room for nonce and tag", blob.subarray(0, 2 + DEK_ID.length + 27)],
    [
      "space in dekId",
      Buffer.concat([blob.subarray(0, 2), Buffer.from(" ey_pan_2025q1"), blob.subarray(16)]),
    ],
    [
      "DEL in dekId",
      Buffer.concat([blob.subarray(0, 2), Buffer.from("\x7fey_pan_2025q1"), blob.subarray(16)]),
    ],
    ["non-ASCII in dekId", Buffer.concat([blob.subarray(0, 2), Buffer.of(0xe9), blob.subarray(3)])],
  ])("fails generically on %s", (_name, bad) => {
    expectDecryptionFailure(() => envelopeDekId(bad));
  });
});
