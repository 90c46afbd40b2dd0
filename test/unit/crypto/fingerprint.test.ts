import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fingerprintOf } from "../../../src/crypto/hmac.js";
import { TEST_PANS } from "./test-data.js";

const tenantA = Buffer.alloc(32, 0x11);
const tenantB = Buffer.alloc(32, 0x22);
const pan = TEST_PANS[0];

describe("fingerprintOf", () => {
  it("is deterministic for the same key, label and value", () => {
    expect(fingerprintOf(tenantA, "pan", pan)).toBe(fingerprintOf(tenantA, "pan", pan));
  });

  it("is base64url of HMAC-SHA-256(key, u16be(len(label)) || label || value), unpadded", () => {
    const expected = createHmac("sha256", tenantA)
      .update(Buffer.of(0x00, 0x03))
      .update("pan")
      .update(pan)
      .digest("base64url");
    const fingerprint = fingerprintOf(tenantA, "pan", pan);
    expect(fingerprint).toBe(expected);
    expect(fingerprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("differs across tenants' keys, so the same card is unlinkable between tenants", () => {
    expect(fingerprintOf(tenantA, "pan", pan)).not.toBe(fingerprintOf(tenantB, "pan", pan));
  });

  it("differs across labels and values", () => {
    expect(fingerprintOf(tenantA, "pan", pan)).not.toBe(fingerprintOf(tenantA, "pan+exp", pan));
    expect(fingerprintOf(tenantA, "pan", pan)).not.toBe(
      fingerprintOf(tenantA, "pan", TEST_PANS[1]),
    );
  });

  it("keeps the label/value boundary unambiguous", () => {
    expect(fingerprintOf(tenantA, "pa", `n${pan}`)).not.toBe(fingerprintOf(tenantA, "pan", pan));
  });

  it("is never a plain hash of the value", () => {
    const plain = createHmac("sha256", Buffer.alloc(0)).update(pan).digest("base64url");
    expect(fingerprintOf(tenantA, "pan", pan)).not.toBe(plain);
  });

  it("refuses keys shorter than 256 bits, empty labels and malformed strings", () => {
    expect(() => fingerprintOf(Buffer.alloc(31), "pan", pan)).toThrow(RangeError);
    expect(() => fingerprintOf(tenantA, "", pan)).toThrow(TypeError);
    expect(() => fingerprintOf(tenantA, "pan", "\uD800")).toThrow(TypeError);
    expect(() => fingerprintOf(tenantA, "\uDFFF", pan)).toThrow(TypeError);
  });
});
