import { describe, expect, it } from "vitest";
import { MIN_ID_BYTES, newId, randomBytes } from "../../../src/crypto/random.js";
import { encodeBase62 } from "../../../src/domain/base62.js";

describe("randomBytes", () => {
  it("returns the requested number of bytes, different every call", () => {
    expect(randomBytes(0)).toHaveLength(0);
    const a = randomBytes(32);
    const b = randomBytes(32);
    expect(a).toHaveLength(32);
    expect(a.equals(b)).toBe(false);
  });

  it.each([-1, 1.5, Number.NaN])("rejects %s", (n) => {
    expect(() => randomBytes(n)).toThrow(RangeError);
  });
});

describe("newId", () => {
  const base62Length = encodeBase62(new Uint8Array(MIN_ID_BYTES)).length;

  it("is the prefix, an underscore and fixed-length base62", () => {
    const id = newId("tok");
    expect(id).toMatch(new RegExp(`^tok_[0-9A-Za-z]{${base62Length}}$`));
    expect(newId("ten")).toHaveLength(id.length);
  });

  it("uses more bytes when asked", () => {
    const longer = encodeBase62(new Uint8Array(32)).length;
    expect(newId("key", 32)).toHaveLength(4 + longer);
  });

  it("does not repeat", () => {
    const ids = new Set(Array.from({ length: 2000 }, () => newId("evt")));
    expect(ids.size).toBe(2000);
  });

  it.each(["", "Tok", "tok_", "1tok", "to-k", "t".repeat(17)])("rejects prefix %j", (prefix) => {
    expect(() => newId(prefix)).toThrow(RangeError);
  });

  it("refuses fewer than 128 random bits", () => {
    expect(() => newId("tok", 15)).toThrow(RangeError);
    expect(() => newId("tok", 8)).toThrow(RangeError);
  });
});
