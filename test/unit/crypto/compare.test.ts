import { describe, expect, it } from "vitest";
import { constantTimeEqual } from "../../../src/crypto/compare.js";

describe("constantTimeEqual", () => {
  it.each([
    ["equal strings", "sk_live_abc", "sk_live_abc", true],
    ["different strings, same length", "sk_live_abc", "sk_live_abd", false],
    ["different lengths", "sk_live_abc", "sk_live_abcd", false],
    ["prefix", "abc", "ab", false],
    ["both empty", "", "", true],
    ["empty and non-empty", "", "a", false],
    ["non-ASCII, equal", "clé", "clé", true],
    ["same UTF-16 length, different UTF-8 length", "é", "e", false],
  ])("%s", (_name, a, b, expected) => {
    expect(constantTimeEqual(a, b)).toBe(expected);
    expect(constantTimeEqual(b, a)).toBe(expected);
  });

  it("compares bytes", () => {
    expect(constantTimeEqual(Buffer.of(1, 2, 3), new Uint8Array([1, 2, 3]))).toBe(true);
    expect(constantTimeEqual(Buffer.of(1, 2, 3), Buffer.of(1, 2, 4))).toBe(false);
    expect(constantTimeEqual(Buffer.of(1, 2, 3), Buffer.of(1, 2))).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
  });

  it("compares a string with its UTF-8 bytes", () => {
    expect(constantTimeEqual("clé", Buffer.from("clé", "utf8"))).toBe(true);
    expect(constantTimeEqual("clé", Buffer.from("clé", "latin1"))).toBe(false);
  });

  it("never lets a lone surrogate collide with U+FFFD", () => {
    expect(Buffer.from("\uD800", "utf8").equals(Buffer.from("\uFFFD", "utf8"))).toBe(true);
    expect(constantTimeEqual("\uD800", "\uFFFD")).toBe(false);
    expect(constantTimeEqual("\uD800", Buffer.from("\uFFFD", "utf8"))).toBe(false);
  });

  it("does not throw on length mismatch", () => {
    expect(() => constantTimeEqual(Buffer.alloc(32), Buffer.alloc(16))).not.toThrow();
  });
});
