import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeBase32, encodeBase32 } from "../../../src/auth/totp.js";

/** RFC 4648 §10 test vectors (padded form as published). */
const RFC4648 = [
  ["", ""],
  ["f", "MY======"],
  ["fo", "MZXQ===="],
  ["foo", "MZXW6==="],
  ["foob", "MZXW6YQ="],
  ["fooba", "MZXW6YTB"],
  ["foobar", "MZXW6YTBOI======"],
] as const;

describe("base32 (RFC 4648 §6)", () => {
  it.each(RFC4648)("%j encodes to %s (unpadded)", (text, padded) => {
    expect(encodeBase32(Buffer.from(text, "ascii"))).toBe(padded.replace(/=+$/, ""));
    expect(decodeBase32(padded)?.toString("ascii")).toBe(text);
    expect(decodeBase32(padded.replace(/=+$/, ""))?.toString("ascii")).toBe(text);
    expect(decodeBase32(padded.toLowerCase())?.toString("ascii")).toBe(text);
  });

  it("round-trips any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const text = encodeBase32(bytes);
        expect(text).toMatch(/^[A-Z2-7]*$/);
        expect(text).toHaveLength(Math.ceil((bytes.length * 8) / 5));
        expect(decodeBase32(text)).toEqual(Buffer.from(bytes));
      }),
    );
  });

  it("decodes only canonical strings: whatever it accepts re-encodes to itself", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Z2-7]{0,20}$/), (text) => {
        const bytes = decodeBase32(text);
        if (bytes !== undefined) expect(encodeBase32(bytes)).toBe(text);
      }),
    );
  });

  it.each([
    ["impossible length", "A"],
    ["impossible length 3", "MZX"],
    ["impossible length 6", "MZXW6Y"],
    ["non-zero leftover bits", "MZ"],
    ["outside the alphabet", "MZXW0==="],
    ["digit 1", "MZXW1==="],
    ["padding in the middle", "MY==MY=="],
    ["wrong amount of padding", "MY=="],
    ["padding only", "========"],
    ["whitespace", "MZXW 6==="],
  ])("refuses %s", (_name, text) => {
    expect(decodeBase32(text)).toBeUndefined();
  });
});
