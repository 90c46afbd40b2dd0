import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  canonicalRecoveryCode,
  generateRecoveryCodes,
  RECOVERY_CODE_COUNT,
  type StoredRecoveryCode,
  verifyRecoveryCode,
} from "../../../src/auth/recovery-codes.js";

const KEY = Buffer.alloc(32, 0x42);
const USER = "adm_7f3k2";
const FORMAT = /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/;

function stored(hashes: string[]): StoredRecoveryCode[] {
  return hashes.map((hash) => ({ hash, usedAt: null }));
}

describe("recovery codes", () => {
  it("generates ten readable 60-bit codes, all different, and only their hashes to store", () => {
    const { codes, hashes } = generateRecoveryCodes(KEY, USER);
    expect(codes).toHaveLength(RECOVERY_CODE_COUNT);
    expect(hashes).toHaveLength(RECOVERY_CODE_COUNT);
    for (const code of codes) expect(code).toMatch(FORMAT);
    expect(new Set(codes).size).toBe(codes.length);
    expect(new Set(hashes).size).toBe(hashes.length);
    for (const hash of hashes) {
      expect(hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
      for (const code of codes) expect(hash).not.toContain(code.replaceAll("-", ""));
    }
  });

  it("uses every symbol of the alphabet (no symbol is unreachable)", () => {
    const symbols = new Set(
      generateRecoveryCodes(KEY, USER, 100).codes.join("").replaceAll("-", ""),
    );
    expect(symbols.size).toBe(32);
  });

  it("verifies each code once: consumed by the caller, it is refused as USED", () => {
    const { codes, hashes } = generateRecoveryCodes(KEY, USER);
    const rows = stored(hashes);
    codes.forEach((code, i) => {
      const result = verifyRecoveryCode(KEY, USER, code, rows);
      expect(result).toEqual({ ok: true, hash: hashes[i] });
      rows[i]!.usedAt = new Date();
      expect(verifyRecoveryCode(KEY, USER, code, rows)).toEqual({ ok: false, reason: "USED" });
    });
  });

  it("accepts the code as people type it: lower case, spaces, no hyphens, O for 0, I or L for 1", () => {
    const { codes, hashes } = generateRecoveryCodes(KEY, USER, 30);
    const rows = stored(hashes);
    for (const code of codes) {
      const typed = ` ${code.toLowerCase().replaceAll("-", " ").replaceAll("0", "o").replaceAll("1", "l")} `;
      expect(verifyRecoveryCode(KEY, USER, typed, rows).ok).toBe(true);
    }
  });

  it("refuses a code of another user, under another key, or never issued", () => {
    const { codes, hashes } = generateRecoveryCodes(KEY, USER);
    const rows = stored(hashes);
    const code = codes[0]!;
    expect(verifyRecoveryCode(KEY, "adm_other", code, rows)).toEqual({
      ok: false,
      reason: "INVALID",
    });
    const otherKey = Buffer.alloc(32, 0x43);
    expect(verifyRecoveryCode(otherKey, USER, code, rows)).toEqual({
      ok: false,
      reason: "INVALID",
    });
    const fresh = generateRecoveryCodes(KEY, USER).codes[0]!;
    expect(verifyRecoveryCode(KEY, USER, fresh, rows)).toEqual({ ok: false, reason: "INVALID" });
    expect(verifyRecoveryCode(KEY, USER, code, [])).toEqual({ ok: false, reason: "INVALID" });
  });

  it.each([
    ["empty", ""],
    ["11 symbols", "ABCD-EFGH-JKM"],
    ["13 symbols", "ABCD-EFGH-JKMNP"],
    ["U (not in the alphabet)", "ABCD-EFGH-JKMU"],
    ["punctuation", "ABCD_EFGH_JKMN"],
    ["absurdly long", "A".repeat(10_000)],
  ])("refuses %s as MALFORMED", (_name, input) => {
    expect(verifyRecoveryCode(KEY, USER, input, [])).toEqual({ ok: false, reason: "MALFORMED" });
  });

  it("property: any spacing and case of a code canonicalizes to the code", () => {
    const { codes } = generateRecoveryCodes(KEY, USER, 20);
    fc.assert(
      fc.property(
        fc.constantFrom(...codes),
        fc.array(fc.constantFrom("", " ", "-", "  "), { minLength: 13, maxLength: 13 }),
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        (code, gaps, lower) => {
          const symbols = code.replaceAll("-", "").split("");
          const typed =
            gaps[0]! +
            symbols.map((s, i) => (lower[i] ? s.toLowerCase() : s) + gaps[i + 1]!).join("");
          expect(canonicalRecoveryCode(typed)).toBe(code.replaceAll("-", ""));
        },
      ),
    );
  });

  it("refuses keys shorter than 256 bits, empty user ids and silly counts", () => {
    expect(() => generateRecoveryCodes(Buffer.alloc(31), USER)).toThrow(RangeError);
    expect(() => verifyRecoveryCode(Buffer.alloc(31), USER, "x", [])).toThrow(RangeError);
    expect(() => generateRecoveryCodes(KEY, "")).toThrow(TypeError);
    expect(() => generateRecoveryCodes(KEY, USER, 0)).toThrow(RangeError);
    expect(() => generateRecoveryCodes(KEY, USER, 101)).toThrow(RangeError);
  });
});
