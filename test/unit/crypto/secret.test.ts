import { format, inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { SecretBytes, zeroize } from "../../../src/crypto/secret.js";

const MATERIAL = "dek-material-7f3a9c-0123456789ab";

function leaks(text: string): boolean {
  const bytes = Buffer.from(MATERIAL);
  const spacedHex = [...bytes.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
  return (
    text.includes(MATERIAL) ||
    text.includes(bytes.toString("hex").slice(0, 12)) ||
    text.includes(bytes.toString("base64").slice(0, 12)) ||
    text.includes(spacedHex) ||
    (text.includes(String(bytes[0])) && text.includes(String(bytes[1])) && text.includes(","))
  );
}

describe("SecretBytes", () => {
  it("detects a leak when the bytes are printed (control for the checks below)", () => {
    const raw = Buffer.from(MATERIAL);
    expect(leaks(inspect(raw))).toBe(true);
    expect(leaks(JSON.stringify(raw))).toBe(true);
    expect(leaks(raw.toString())).toBe(true);
  });

  it("never prints its bytes through String, templates, JSON or util.inspect", () => {
    const secret = SecretBytes.copyOf(Buffer.from(MATERIAL));
    const outputs = [
      String(secret),
      `${secret}`,
      `${secret as unknown as string}!`,
      JSON.stringify(secret),
      JSON.stringify({ key: secret, nested: [secret] }),
      inspect(secret),
      inspect({ key: secret }, { depth: 10, showHidden: true }),
      format("%s %o %O %j", secret, secret, secret, secret),
    ];
    for (const out of outputs) {
      expect(leaks(out)).toBe(false);
      expect(out).toContain("[secret]");
    }
  });

  it("lends its bytes through use()", () => {
    const secret = SecretBytes.copyOf(Buffer.from(MATERIAL));
    expect(secret.use((b) => b.toString())).toBe(MATERIAL);
    expect(secret.byteLength).toBe(MATERIAL.length);
  });

  it("zeroize() really zeroes the memory and later use throws", () => {
    const owned = Buffer.from(MATERIAL);
    const secret = SecretBytes.from(owned);
    let lent: Buffer | undefined;
    secret.use((b) => {
      lent = b;
    });
    secret.zeroize();
    expect(secret.isZeroized).toBe(true);
    expect(owned.every((b) => b === 0)).toBe(true);
    expect(lent?.every((b) => b === 0)).toBe(true);
    expect(() => secret.use((b) => b.length)).toThrow(/zeroized/);
    expect(() => secret.zeroize()).not.toThrow();
  });

  it("from() takes ownership without copying; copyOf() leaves the source intact", () => {
    const source = new Uint8Array(Buffer.from(`xx${MATERIAL}`)).subarray(2);
    SecretBytes.from(source).zeroize();
    expect(source.every((b) => b === 0)).toBe(true);

    const kept = Buffer.from(MATERIAL);
    SecretBytes.copyOf(kept).zeroize();
    expect(kept.toString()).toBe(MATERIAL);
  });
});

describe("zeroize", () => {
  it("fills the view with zeros and leaves bytes outside it alone", () => {
    const whole = Buffer.from("0123456789");
    zeroize(whole.subarray(2, 5));
    expect([...whole]).toEqual([0x30, 0x31, 0, 0, 0, 0x35, 0x36, 0x37, 0x38, 0x39]);
  });
});
