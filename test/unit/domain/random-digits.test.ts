import { describe, expect, it } from "vitest";
import type { RandomSource } from "../../../src/domain/random-digits.js";
import { randomBytesExactly, randomDigits } from "../../../src/domain/random-digits.js";

/** Returns every byte value 0..255 in turn. */
function everyByte(): RandomSource {
  let next = 0;
  return (n) => Uint8Array.from({ length: n }, () => next++ % 256);
}

describe("randomDigits", () => {
  it("maps the 250 accepted byte values onto each digit exactly 25 times (no modulo bias)", () => {
    const digits = randomDigits(everyByte(), 250);
    const counts = new Map<string, number>();
    for (const d of digits) counts.set(d, (counts.get(d) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual([..."0123456789"]);
    expect([...counts.values()]).toEqual(Array(10).fill(25));
  });

  it("gives up on a source that only returns rejected bytes", () => {
    expect(() => randomDigits(() => new Uint8Array(8).fill(252), 4)).toThrow();
  });

  it("returns exactly the requested count", () => {
    expect(randomDigits(everyByte(), 7)).toBe("0123456");
    expect(randomDigits(everyByte(), 0)).toBe("");
  });

  it("refuses a source that returns the wrong number of bytes", () => {
    expect(() => randomBytesExactly(() => new Uint8Array(3), 4)).toThrow(RangeError);
  });
});
