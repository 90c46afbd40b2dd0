import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hmacSha256 } from "../../../src/crypto/hmac.js";
import { hex, loadVectors } from "./load-vectors.js";

interface Rfc4231File {
  source: string;
  tests: { name: string; key: string; data: string; mac: string; truncatedBits?: number }[];
}

const rfc4231 = loadVectors<Rfc4231File>("hmac-sha256-rfc4231.json");

describe("HMAC-SHA-256: RFC 4231 test cases 1-7", () => {
  it("carries a source and all seven cases", () => {
    expect(rfc4231.source).toMatch(/RFC 4231/);
    expect(rfc4231.tests).toHaveLength(7);
  });

  it.each(rfc4231.tests)("$name", (t) => {
    const mac = hmacSha256(hex(t.key), hex(t.data)).toString("hex");
    if (t.truncatedBits === undefined) {
      expect(mac).toBe(t.mac);
    } else {
      // RFC 4231 §4.6 publishes only the leading 128 bits for this case.
      expect(t.mac).toHaveLength(t.truncatedBits / 4);
      expect(mac.slice(0, t.mac.length)).toBe(t.mac);
    }
  });

  it("hashes the concatenation of its parts", () => {
    const key = Buffer.from("0b".repeat(20), "hex");
    const whole = hmacSha256(key, Buffer.from("Hi There"));
    expect(hmacSha256(key, Buffer.from("Hi "), Buffer.from(""), Buffer.from("There"))).toEqual(
      whole,
    );
    expect(whole).toEqual(createHmac("sha256", key).update("Hi There").digest());
  });
});
