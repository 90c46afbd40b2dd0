import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeBase32,
  generateTotpSecret,
  hotp,
  TOTP_PERIOD_SECONDS,
  totpUri,
  verifyTotp,
} from "../../../src/auth/totp.js";
import { SecretBytes } from "../../../src/crypto/secret.js";

const KEY = Buffer.from("12345678901234567890", "ascii");
const secret = SecretBytes.copyOf(KEY);
const STEP = 50_000_000;
/** Milliseconds at `offset` ms into step `step`. */
const at = (step: number, offset = 0) => step * TOTP_PERIOD_SECONDS * 1000 + offset;
const codeFor = (step: number) => hotp(KEY, step);

describe("verifyTotp", () => {
  it("accepts the current code and returns its step", () => {
    expect(
      verifyTotp(secret, codeFor(STEP), { now: at(STEP, 12_345), lastUsedStep: null }),
    ).toEqual({
      ok: true,
      step: STEP,
    });
  });

  it("takes a Date as well as milliseconds", () => {
    const now = new Date(at(STEP, 1));
    expect(verifyTotp(secret, codeFor(STEP), { now, lastUsedStep: null })).toEqual({
      ok: true,
      step: STEP,
    });
  });

  it("accepts one step either side (RFC 6238 §5.2), and not two", () => {
    const opts = { now: at(STEP), lastUsedStep: null };
    expect(verifyTotp(secret, codeFor(STEP - 1), opts)).toEqual({ ok: true, step: STEP - 1 });
    expect(verifyTotp(secret, codeFor(STEP + 1), opts)).toEqual({ ok: true, step: STEP + 1 });
    expect(verifyTotp(secret, codeFor(STEP - 2), opts)).toEqual({ ok: false, reason: "INVALID" });
    expect(verifyTotp(secret, codeFor(STEP + 2), opts)).toEqual({ ok: false, reason: "INVALID" });
  });

  it("moves the window at the step boundary, to the millisecond", () => {
    const lastMs = at(STEP + 1) - 1;
    expect(verifyTotp(secret, codeFor(STEP - 1), { now: lastMs, lastUsedStep: null }).ok).toBe(
      true,
    );
    const nextMs = at(STEP + 1);
    expect(verifyTotp(secret, codeFor(STEP - 1), { now: nextMs, lastUsedStep: null })).toEqual({
      ok: false,
      reason: "INVALID",
    });
    expect(verifyTotp(secret, codeFor(STEP + 2), { now: nextMs, lastUsedStep: null }).ok).toBe(
      true,
    );
  });

  describe("never accepts a code twice (PCI DSS 8.5.1)", () => {
    it("refuses the same step once it was used", () => {
      const first = verifyTotp(secret, codeFor(STEP), { now: at(STEP), lastUsedStep: null });
      expect(first).toEqual({ ok: true, step: STEP });
      const again = verifyTotp(secret, codeFor(STEP), { now: at(STEP, 5_000), lastUsedStep: STEP });
      expect(again).toEqual({ ok: false, reason: "REPLAYED" });
    });

    it("refuses an earlier step still inside the window", () => {
      const opts = { now: at(STEP), lastUsedStep: STEP };
      expect(verifyTotp(secret, codeFor(STEP - 1), opts)).toEqual({
        ok: false,
        reason: "REPLAYED",
      });
    });

    it("refuses every step up to a future step already used, accepts the next", () => {
      const opts = { now: at(STEP), lastUsedStep: STEP + 1 };
      expect(verifyTotp(secret, codeFor(STEP), opts)).toEqual({ ok: false, reason: "REPLAYED" });
      expect(verifyTotp(secret, codeFor(STEP + 1), opts)).toEqual({
        ok: false,
        reason: "REPLAYED",
      });
      const later = { now: at(STEP + 1), lastUsedStep: STEP + 1 };
      expect(verifyTotp(secret, codeFor(STEP + 2), later)).toEqual({ ok: true, step: STEP + 2 });
    });

    it("property: the step it returns, stored, refuses the same code again", () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 2, max: 2 ** 36 }),
          fc.integer({ min: -1, max: 1 }),
          fc.integer({ min: 0, max: TOTP_PERIOD_SECONDS * 1000 - 1 }),
          (step, offset, ms) => {
            const code = codeFor(step + offset);
            const first = verifyTotp(secret, code, { now: at(step, ms), lastUsedStep: null });
            if (!first.ok) return false;
            expect(first.step).toBeGreaterThanOrEqual(step + offset);
            expect(codeFor(first.step)).toBe(code);
            const again = verifyTotp(secret, code, { now: at(step, ms), lastUsedStep: first.step });
            expect(again).toEqual({ ok: false, reason: "REPLAYED" });
            return true;
          },
        ),
      );
    });
  });

  it.each([
    ["empty", ""],
    ["five digits", "12345"],
    ["seven digits", "1234567"],
    ["eight digits (the RFC's length)", "12345678"],
    ["a letter", "12345a"],
    ["leading space", " 123456"],
    ["trailing newline", "123456\n"],
    ["full-width digits", "１２３４５６"],
    ["Arabic-Indic digits", "١٢٣٤٥٦"],
    ["sign", "+12345"],
  ])("refuses %s as MALFORMED", (_name, code) => {
    expect(verifyTotp(secret, code, { now: at(STEP), lastUsedStep: null })).toEqual({
      ok: false,
      reason: "MALFORMED",
    });
  });

  it("refuses the right 6 digits followed by more", () => {
    const code = `${codeFor(STEP)}0`;
    expect(verifyTotp(secret, code, { now: at(STEP), lastUsedStep: null }).ok).toBe(false);
  });

  it.each([-1, 1.5, Number.NaN])("throws on lastUsedStep %s (a caller bug)", (lastUsedStep) => {
    expect(() => verifyTotp(secret, "123456", { now: at(STEP), lastUsedStep })).toThrow(RangeError);
  });

  it("refuses a secret shorter than 128 bits (RFC 4226 §4 R6)", () => {
    const short = SecretBytes.copyOf(Buffer.alloc(15, 7));
    expect(() => verifyTotp(short, "123456", { now: at(STEP), lastUsedStep: null })).toThrow(
      RangeError,
    );
  });

  it("verifies SHA-256 and SHA-512 secrets with their own algorithm only", () => {
    for (const algorithm of ["SHA256", "SHA512"] as const) {
      const s = generateTotpSecret(algorithm);
      const code = s.use((k) => hotp(k, STEP, { algorithm }));
      const ok = verifyTotp(s, code, { now: at(STEP), lastUsedStep: null, algorithm });
      expect(ok).toEqual({ ok: true, step: STEP });
      const sha1 = verifyTotp(s, code, { now: at(STEP), lastUsedStep: null });
      // A SHA-1 code could collide by chance (10^-6 per step); the digest still differs.
      if (sha1.ok) expect(s.use((k) => hotp(k, sha1.step))).toBe(code);
    }
  });
});

describe("enrolment", () => {
  it("generates secrets of 160 bits and more from the CSPRNG, all different", () => {
    expect(generateTotpSecret().byteLength).toBe(20);
    expect(generateTotpSecret("SHA256").byteLength).toBe(32);
    expect(generateTotpSecret("SHA512").byteLength).toBe(64);
    const seen = new Set(
      Array.from({ length: 50 }, () => generateTotpSecret().use((b) => b.toString("hex"))),
    );
    expect(seen.size).toBe(50);
  });

  it("never prints the secret", () => {
    const s = generateTotpSecret();
    expect(String(s)).toBe("[secret]");
    expect(JSON.stringify({ s })).toBe('{"s":"[secret]"}');
  });

  it("builds an otpauth URI an authenticator reads back to the same secret", () => {
    const s = generateTotpSecret();
    const uri = totpUri({ secret: s, account: "alice@example.com" });
    const url = new URL(uri);
    expect(url.protocol).toBe("otpauth:");
    expect(url.host).toBe("totp");
    expect(decodeURIComponent(url.pathname)).toBe("/payvault:alice@example.com");
    expect(url.searchParams.get("issuer")).toBe("payvault");
    expect(url.searchParams.get("algorithm")).toBe("SHA1");
    expect(url.searchParams.get("digits")).toBe("6");
    expect(url.searchParams.get("period")).toBe("30");
    const base32 = url.searchParams.get("secret")!;
    expect(base32).toMatch(/^[A-Z2-7]{32}$/);
    expect(s.use((b) => decodeBase32(base32)!.equals(b))).toBe(true);
  });

  it("percent-encodes the label and issuer (spaces as %20, not +)", () => {
    const uri = totpUri({ secret, account: "Jo Bloggs", issuer: "Pay Vault" });
    expect(uri).toContain("otpauth://totp/Pay%20Vault:Jo%20Bloggs?");
    expect(uri).toContain("issuer=Pay%20Vault");
    expect(uri).toContain("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&");
  });

  it.each([
    ["a colon in the account", { account: "a:b" }],
    ["a colon in the issuer", { account: "a", issuer: "x:y" }],
    ["an empty account", { account: "" }],
    ["a lone surrogate", { account: "\uD800" }],
  ])("refuses %s", (_name, input) => {
    expect(() => totpUri({ secret, ...input })).toThrow(RangeError);
  });
});
