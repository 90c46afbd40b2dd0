import { scrypt } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import {
  checkPasswordPolicy,
  hashPassword,
  PASSWORD_MAX_CODE_POINTS,
  UnsupportedPasswordHashError,
  verifyPassword,
} from "../../../src/auth/passwords.js";

// Every scrypt here runs at the production cost (N=2^17, r=8, 128 MiB, ~0.3-0.6 s): there is no
// cheaper mode to reach, so the tests prove the real parameters. About 20 calls in all.

const PASSWORD = "correct horse battery 9 staple";

function scryptRaw(password: string, salt: Buffer, r: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, 64, { N: 2 ** 17, r, p: 1, maxmem: 2 ** 30 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

const b64 = (bytes: Buffer) => bytes.toString("base64").replace(/=+$/, "");

describe("hashPassword / verifyPassword", () => {
  let encoded: string;
  beforeAll(async () => {
    encoded = await hashPassword(PASSWORD);
  });

  it("writes a self-describing scrypt string at the OWASP minimum", () => {
    expect(encoded).toMatch(/^\$scrypt\$ln=17,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{86}$/);
  });

  it("verifies the password and refuses another", async () => {
    expect(await verifyPassword(PASSWORD, encoded)).toEqual({ ok: true, needsRehash: false });
    expect(await verifyPassword(`${PASSWORD}!`, encoded)).toEqual({
      ok: false,
      needsRehash: false,
    });
  });

  it("salts: the same password hashes differently each time", async () => {
    const again = await hashPassword(PASSWORD);
    expect(again).not.toBe(encoded);
    expect(again.split("$")[3]).not.toBe(encoded.split("$")[3]);
  });

  it("is exactly RFC 7914 scrypt of the UTF-8 password: a hash made elsewhere verifies", async () => {
    const [, , , saltText] = encoded.split("$");
    const salt = Buffer.from(saltText!, "base64");
    const key = await scryptRaw(PASSWORD, salt, 8);
    expect(encoded).toBe(`$scrypt$ln=17,r=8,p=1$${b64(salt)}$${b64(key)}`);
  });

  it("normalizes (NFKC): composed and decomposed é, full-width and ASCII digits are one password", async () => {
    const hash = await hashPassword("caf\u00e9 au lait 42");
    expect((await verifyPassword("cafe\u0301 au lait 42", hash)).ok).toBe(true);
    expect((await verifyPassword("caf\u00e9 au lait \uFF14\uFF12", hash)).ok).toBe(true);
  });

  it("spends the same scrypt work for a user that does not exist, and says no", async () => {
    expect(await verifyPassword(PASSWORD, undefined)).toEqual({ ok: false, needsRehash: false });
    expect(await verifyPassword("", undefined)).toEqual({ ok: false, needsRehash: false });
  });

  it("refuses to hash a lone surrogate, and never verifies one", async () => {
    await expect(hashPassword("abc\uD800defghijkl1")).rejects.toThrow(RangeError);
    expect((await verifyPassword("abc\uD800", encoded)).ok).toBe(false);
  });

  it("asks for a rehash when the stored params are not the current ones", async () => {
    const salt = Buffer.alloc(16, 3);
    const stronger = `$scrypt$ln=17,r=9,p=1$${b64(salt)}$${b64(await scryptRaw(PASSWORD, salt, 9))}`;
    expect(await verifyPassword(PASSWORD, stronger)).toEqual({ ok: true, needsRehash: true });
    // Only a successful login reveals (and so triggers) a rehash.
    expect(await verifyPassword("wrong", stronger)).toEqual({ ok: false, needsRehash: false });
  });

  describe("refuses stored hashes it cannot vouch for, before any work", () => {
    const salt = b64(Buffer.alloc(16, 1));
    const key = b64(Buffer.alloc(64, 2));
    it.each([
      ["N below 2^17", `$scrypt$ln=16,r=8,p=1$${salt}$${key}`],
      ["r below 8", `$scrypt$ln=17,r=7,p=1$${salt}$${key}`],
      ["p of 0", `$scrypt$ln=17,r=8,p=0$${salt}$${key}`],
      ["N above the ceiling", `$scrypt$ln=20,r=8,p=1$${salt}$${key}`],
      ["r above the ceiling", `$scrypt$ln=17,r=17,p=1$${salt}$${key}`],
      ["p above the ceiling", `$scrypt$ln=17,r=8,p=5$${salt}$${key}`],
      ["another scheme", `$argon2id$v=19$m=19456,t=2,p=1$${salt}$${key}`],
      ["params out of order", `$scrypt$r=8,ln=17,p=1$${salt}$${key}`],
      ["an extra param", `$scrypt$ln=17,r=8,p=1,x=1$${salt}$${key}`],
      ["a 15-byte salt", `$scrypt$ln=17,r=8,p=1$${b64(Buffer.alloc(15))}$${key}`],
      ["a 32-byte key", `$scrypt$ln=17,r=8,p=1$${salt}$${b64(Buffer.alloc(32))}`],
      ["padded base64", `$scrypt$ln=17,r=8,p=1$${salt}==$${key}`],
      ["non-canonical base64", `$scrypt$ln=17,r=8,p=1$${salt.slice(0, -1)}B$${key}`],
      ["base64url", `$scrypt$ln=17,r=8,p=1$${salt}$${key.replace(/.$/, "_")}`],
      ["empty", ""],
    ])("%s", async (_name, stored) => {
      await expect(verifyPassword(PASSWORD, stored)).rejects.toThrow(UnsupportedPasswordHashError);
    });
  });
});

describe("checkPasswordPolicy (PCI DSS 8.3.6, 8.3.7)", () => {
  const codes = async (password: string, previousHashes: string[] = []) => {
    const result = await checkPasswordPolicy(password, { previousHashes });
    return result.ok ? [] : result.issues.map((i) => i.code);
  };

  it.each([
    ["12 characters with a letter and a digit", "abcdefghijk1"],
    ["a passphrase", "four words and 1 number"],
    ["non-Latin letters", "пароль-пароль-1"],
    ["12 code points written with 23 UTF-16 units", `${"e\u0301".repeat(11)}1`],
    ["full-width letters and digits", "ａｂｃｄｅｆｇｈｉｊ１２"],
  ])("accepts %s", async (_name, password) => {
    expect(await checkPasswordPolicy(password, { previousHashes: [] })).toEqual({ ok: true });
  });

  it.each([
    ["11 characters", "abcdefghij1", ["PASSWORD_TOO_SHORT"]],
    ["11 code points, 20 UTF-16 units", `a1${"😀".repeat(9)}`, ["PASSWORD_TOO_SHORT"]],
    ["letters only", "abcdefghijklmnop", ["PASSWORD_NEEDS_LETTERS_AND_DIGITS"]],
    ["digits only", "1234567890123", ["PASSWORD_NEEDS_LETTERS_AND_DIGITS"]],
    ["symbols and digits", "!!!!!!!!!!!!1", ["PASSWORD_NEEDS_LETTERS_AND_DIGITS"]],
    ["short and digits only", "12345", ["PASSWORD_TOO_SHORT", "PASSWORD_NEEDS_LETTERS_AND_DIGITS"]],
    ["empty", "", ["PASSWORD_TOO_SHORT", "PASSWORD_NEEDS_LETTERS_AND_DIGITS"]],
    ["over the maximum", `a1${"x".repeat(PASSWORD_MAX_CODE_POINTS - 1)}`, ["PASSWORD_TOO_LONG"]],
    ["far over the maximum", "a1".repeat(PASSWORD_MAX_CODE_POINTS * 3), ["PASSWORD_TOO_LONG"]],
    ["a lone surrogate", "abcdefghijk1\uDC00", ["PASSWORD_INVALID_UNICODE"]],
  ])("refuses %s", async (_name, password, expected) => {
    expect(await codes(password)).toEqual(expected);
  });

  it("accepts exactly the maximum", async () => {
    expect(await codes(`a1${"x".repeat(PASSWORD_MAX_CODE_POINTS - 2)}`)).toEqual([]);
  });

  it("gives field errors that never echo the password", async () => {
    const result = await checkPasswordPolicy("secret7", { previousHashes: [] });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    for (const issue of result.issues) {
      expect(issue.field).toBe("password");
      expect(issue.message).not.toContain("secret7");
    }
  });

  describe("history", () => {
    const previous = [
      "first password 1",
      "second password 2",
      "third password 3",
      "fourth password 4",
    ];
    let hashes: string[];
    beforeAll(async () => {
      hashes = await Promise.all(previous.map((p) => hashPassword(p)));
    });

    it("refuses any of the last four, checking each stored hash", async () => {
      expect(await codes(previous[3]!, hashes)).toEqual(["PASSWORD_REUSED"]);
      expect(await codes(previous[0]!, hashes.slice(0, 1))).toEqual(["PASSWORD_REUSED"]);
    });

    it("refuses a reuse typed in another Unicode form", async () => {
      expect(await codes("fourth password \uFF14", hashes.slice(3))).toEqual(["PASSWORD_REUSED"]);
    });

    it("accepts a new password", async () => {
      expect(await codes("fifth password 5", hashes.slice(0, 1))).toEqual([]);
    });
  });
});
