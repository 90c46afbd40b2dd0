import { describe, expect, it } from "vitest";
import type { DecryptionError } from "../../../src/crypto/decryption-error.js";
import type { EnvelopeContext } from "../../../src/crypto/envelope.js";
import { openEnvelope, PURPOSES, sealEnvelope } from "../../../src/crypto/envelope.js";
import { expectDecryptionFailure } from "./expect-decryption-failure.js";
import { CONTEXT, DEK_ID, KEY, OTHER_KEY, TEST_PANS } from "./test-data.js";

const PLAINTEXT = Buffer.from(TEST_PANS[0]);
const blob = sealEnvelope({ dekId: DEK_ID, key: KEY, plaintext: PLAINTEXT, context: CONTEXT });
const nonceStart = 2 + DEK_ID.length;
const ciphertextStart = nonceStart + 12;
const tagStart = blob.length - 16;

function open(bytes: Uint8Array, key: Uint8Array = KEY, context: EnvelopeContext = CONTEXT) {
  return () => openEnvelope(bytes, key, context);
}

function withByte(index: number, mask: number): Buffer {
  const copy = Buffer.from(blob);
  copy[index] = (copy[index] ?? 0) ^ mask;
  return copy;
}

function withDekId(dekId: string): Buffer {
  const header = Buffer.of(0x01, dekId.length);
  return Buffer.concat([header, Buffer.from(dekId, "ascii"), blob.subarray(nonceStart)]);
}

describe("openEnvelope tamper resistance", () => {
  it("opens the untouched envelope (control)", () => {
    expect(openEnvelope(blob, KEY, CONTEXT)).toEqual(PLAINTEXT);
  });

  it("rejects a flip of every byte position", () => {
    for (let i = 0; i < blob.length; i++) {
      expectDecryptionFailure(open(withByte(i, 0xff)));
    }
  });

  it("rejects every single-bit flip in the version, length, dekId, nonce, ciphertext and tag", () => {
    const positions = [
      0,
      1,
      2,
      nonceStart,
      nonceStart + 11,
      ciphertextStart,
      tagStart,
      blob.length - 1,
    ];
    for (const i of positions) {
      for (let bit = 0; bit < 8; bit++) {
        expectDecryptionFailure(open(withByte(i, 1 << bit)));
      }
    }
  });

  it("rejects truncation at every length and an appended byte", () => {
    for (let length = 0; length < blob.length; length++) {
      expectDecryptionFailure(open(blob.subarray(0, length)));
    }
    expectDecryptionFailure(open(Buffer.concat([blob, Buffer.of(0)])));
  });

  it("rejects another tenant, object or purpose", () => {
    expectDecryptionFailure(open(blob, KEY, { ...CONTEXT, tenantId: "ten_other" }));
    expectDecryptionFailure(open(blob, KEY, { ...CONTEXT, objectId: "tok_other" }));
    expectDecryptionFailure(
      open(blob, KEY, { ...CONTEXT, tenantId: CONTEXT.objectId, objectId: CONTEXT.tenantId }),
    );
    for (const purpose of PURPOSES.filter((p) => p !== CONTEXT.purpose)) {
      expectDecryptionFailure(open(blob, KEY, { ...CONTEXT, purpose }));
    }
  });

  it("rejects an edited dekId header, same or different length", () => {
    expectDecryptionFailure(open(withDekId("key_pan_2025q2")));
    expectDecryptionFailure(open(withDekId("key_pan_2025q1x")));
    expectDecryptionFailure(open(withDekId("k")));
  });

  it("rejects the wrong key and keys of the wrong length", () => {
    expectDecryptionFailure(open(blob, OTHER_KEY));
    expectDecryptionFailure(open(blob, KEY.subarray(0, 16)));
    expectDecryptionFailure(open(blob, KEY.subarray(0, 31)));
    expectDecryptionFailure(open(blob, Buffer.concat([KEY, Buffer.of(0)])));
  });

  it("rejects an unknown purpose or malformed context instead of throwing something else", () => {
    const purpose = "card" as EnvelopeContext["purpose"];
    expectDecryptionFailure(open(blob, KEY, { ...CONTEXT, purpose }));
    expectDecryptionFailure(open(blob, KEY, { ...CONTEXT, tenantId: "" }));
    expectDecryptionFailure(open(blob, KEY, { ...CONTEXT, tenantId: "\uDC00" }));
  });

  it("makes every failure indistinguishable", () => {
    const failures: DecryptionError[] = [
      expectDecryptionFailure(open(withByte(tagStart, 1))),
      expectDecryptionFailure(open(withByte(0, 0x03))),
      expectDecryptionFailure(open(blob.subarray(0, 10))),
      expectDecryptionFailure(open(Buffer.alloc(0))),
      expectDecryptionFailure(open(withDekId("key_pan_2025q2"))),
      expectDecryptionFailure(open(blob, OTHER_KEY)),
      expectDecryptionFailure(open(blob, KEY.subarray(0, 16))),
      expectDecryptionFailure(open(blob, KEY, { ...CONTEXT, tenantId: "ten_other" })),
      expectDecryptionFailure(open(blob, KEY, { ...CONTEXT, purpose: "sad" })),
    ];
    const shape = (err: DecryptionError) => ({
      constructor: err.constructor,
      name: err.name,
      message: err.message,
      code: err.code,
      ownKeys: Object.getOwnPropertyNames(err).sort(),
      json: JSON.stringify(err),
    });
    const first = shape(failures[0]!);
    for (const err of failures) {
      expect(shape(err)).toEqual(first);
    }
  });
});
