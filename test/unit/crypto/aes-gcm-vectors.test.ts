import { describe, expect, it } from "vitest";
import { aesGcmDecrypt, aesGcmEncrypt } from "../../../src/crypto/aes-gcm.js";
import { DecryptionError } from "../../../src/crypto/decryption-error.js";
import { hex, loadVectors } from "./load-vectors.js";

interface McGrewViegaFile {
  source: string;
  tests: {
    name: string;
    key: string;
    iv: string;
    aad: string;
    plaintext: string;
    ciphertext: string;
    tag: string;
  }[];
}

interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  result: "valid" | "invalid" | "acceptable";
}

interface WycheproofFile {
  source: string;
  numberOfTests: number;
  testGroups: { keySize: number; ivSize: number; tagSize: number; tests: WycheproofTest[] }[];
}

const mcgrew = loadVectors<McGrewViegaFile>("aes-gcm-mcgrew-viega.json");
const wycheproof = loadVectors<WycheproofFile>("aes-gcm-wycheproof.json");
const wycheproofTests = wycheproof.testGroups.flatMap((group) => group.tests);

describe("AES-GCM: McGrew & Viega GCM spec, test cases 13-16", () => {
  it("carries a source and all four cases", () => {
    expect(mcgrew.source).toMatch(/McGrew/);
    expect(mcgrew.tests.map((t) => t.name)).toEqual([
      "Test Case 13",
      "Test Case 14",
      "Test Case 15",
      "Test Case 16",
    ]);
  });

  it.each(mcgrew.tests)("$name encrypts and decrypts", (t) => {
    const sealed = aesGcmEncrypt(hex(t.key), hex(t.iv), hex(t.plaintext), hex(t.aad));
    expect(sealed.ciphertext.toString("hex")).toBe(t.ciphertext);
    expect(sealed.tag.toString("hex")).toBe(t.tag);
    const opened = aesGcmDecrypt(hex(t.key), hex(t.iv), hex(t.ciphertext), hex(t.tag), hex(t.aad));
    expect(opened.toString("hex")).toBe(t.plaintext);
  });

  it.each(mcgrew.tests)("$name rejects a tag with its last bit flipped", (t) => {
    const tag = hex(t.tag);
    tag[15] = (tag[15] ?? 0) ^ 0x01;
    expect(() => aesGcmDecrypt(hex(t.key), hex(t.iv), hex(t.ciphertext), tag, hex(t.aad))).toThrow(
      DecryptionError,
    );
  });
});

describe("AES-GCM: Project Wycheproof aes_gcm_test.json (256-bit key, 96-bit IV, 128-bit tag)", () => {
  it("keeps only the 256/96/128 groups and every test in them", () => {
    expect(wycheproof.source).toMatch(/wycheproof/i);
    for (const group of wycheproof.testGroups) {
      expect([group.keySize, group.ivSize, group.tagSize]).toEqual([256, 96, 128]);
    }
    expect(wycheproofTests).toHaveLength(wycheproof.numberOfTests);
    expect(wycheproofTests.some((t) => t.result === "valid")).toBe(true);
    expect(wycheproofTests.some((t) => t.result === "invalid")).toBe(true);
  });

  const valid = wycheproofTests.filter((t) => t.result === "valid");
  const invalid = wycheproofTests.filter((t) => t.result !== "valid");

  it.each(valid)("tcId $tcId ($flags) is valid: decrypts to msg, encrypts to ct+tag", (t) => {
    const opened = aesGcmDecrypt(hex(t.key), hex(t.iv), hex(t.ct), hex(t.tag), hex(t.aad));
    expect(opened.toString("hex")).toBe(t.msg);
    const sealed = aesGcmEncrypt(hex(t.key), hex(t.iv), hex(t.msg), hex(t.aad));
    expect(sealed.ciphertext.toString("hex")).toBe(t.ct);
    expect(sealed.tag.toString("hex")).toBe(t.tag);
  });

  it.each(invalid)("tcId $tcId ($comment) is rejected with DecryptionError", (t) => {
    expect(() => aesGcmDecrypt(hex(t.key), hex(t.iv), hex(t.ct), hex(t.tag), hex(t.aad))).toThrow(
      DecryptionError,
    );
  });
});
