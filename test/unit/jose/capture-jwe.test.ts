import { CompactEncrypt, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { decryptCaptureJwe } from "../../../src/jose/capture-jwe.js";
import { generateCaptureKeyPair } from "../../../src/jose/capture-keys.js";
import { expectRejected } from "./expect-rejected.js";
import { captureKeys, encryptTo, jweHeaderOf, withHeader } from "./fixtures.js";
import { decryptionKeyLookup } from "./key-lookup.js";

const CLAIMS = JSON.stringify({ iss: "cs_1", card: { expiry: "12/34" } });
const enc = new TextEncoder();

describe("decryptCaptureJwe: accepted", () => {
  it("opens ECDH-ES+A256KW and RSA-OAEP-256 JWEs to the published keys", async () => {
    const { ec, rsa, keys } = await captureKeys();
    for (const pair of [ec, rsa]) {
      const out = await decryptCaptureJwe(await encryptTo(pair, CLAIMS), keys);
      expect(new TextDecoder().decode(out.plaintext)).toBe(CLAIMS);
      expect(out.kid).toBe(pair.kid);
      expect(out.protectedHeader).toMatchObject({ alg: pair.alg, enc: "A256GCM", kid: pair.kid });
    }
  });

  it("keeps accepting the previous key during a rotation overlap, by its kid", async () => {
    const { ec } = await captureKeys();
    const next = await generateCaptureKeyPair();
    const keys = decryptionKeyLookup([ec, next]);
    expect(await decryptCaptureJwe(await encryptTo(ec, "old"), keys)).toMatchObject({
      kid: ec.kid,
    });
    expect(await decryptCaptureJwe(await encryptTo(next, "new"), keys)).toMatchObject({
      kid: next.kid,
    });
  });

  it("checks the content type when asked to", async () => {
    const { ec, keys } = await captureKeys();
    const jwe = await encryptTo(ec, CLAIMS, { cty: "jwt" });
    await expect(decryptCaptureJwe(jwe, keys, { requiredCty: "JWT" })).resolves.toBeDefined();
    await expectRejected(
      decryptCaptureJwe(await encryptTo(ec, CLAIMS), keys, { requiredCty: "JWT" }),
      "JWE_INVALID",
      "cty",
    );
  });
});

describe("decryptCaptureJwe: refused algorithms (RFC 8725 §3.1)", () => {
  it("refuses alg none and unknown algorithms", async () => {
    const { ec, keys } = await captureKeys();
    const jwe = await encryptTo(ec, CLAIMS);
    for (const alg of ["none", "None", "", "ECDH-ES+A256KW ", 1]) {
      await expectRejected(
        decryptCaptureJwe(withHeader(jwe, { ...jweHeaderOf(jwe), alg }), keys),
        "JWE_INVALID",
        "alg_not_allowed",
      );
    }
  });

  it("refuses real JWEs made with RSA-OAEP (SHA-1), ECDH-ES, ECDH-ES+A128KW, dir, AES-KW and PBES2", async () => {
    const { ec, rsa, keys } = await captureKeys();
    const rsaPublic = await importJWK(rsa.publicJwk as JWK, "RSA-OAEP");
    const ecPublic = await importJWK(ec.publicJwk as JWK, "ECDH-ES");
    const secret = new Uint8Array(32).fill(7);
    const made: [string, string | object, Parameters<CompactEncrypt["encrypt"]>[0]][] = [
      ["RSA-OAEP", rsa.kid, rsaPublic],
      ["ECDH-ES", ec.kid, ecPublic],
      ["ECDH-ES+A128KW", ec.kid, ecPublic],
      ["A256KW", ec.kid, secret],
      ["dir", ec.kid, secret],
      ["PBES2-HS256+A128KW", ec.kid, enc.encode("a password")],
    ];
    for (const [alg, kid, key] of made) {
      const jwe = await new CompactEncrypt(enc.encode(CLAIMS))
        .setProtectedHeader({ alg, enc: "A256GCM", kid: kid as string })
        .encrypt(key);
      await expectRejected(decryptCaptureJwe(jwe, keys), "JWE_INVALID", "alg_not_allowed");
    }
  });

  it("refuses RSA1_5 (Bleichenbacher) by its header alone", async () => {
    const { rsa, keys } = await captureKeys();
    const jwe = await encryptTo(rsa, CLAIMS);
    await expectRejected(
      decryptCaptureJwe(withHeader(jwe, { ...jweHeaderOf(jwe), alg: "RSA1_5" }), keys),
      "JWE_INVALID",
      "alg_not_allowed",
    );
  });

  it("refuses content encryption other than A256GCM", async () => {
    const { ec, keys } = await captureKeys();
    const publicKey = await importJWK(ec.publicJwk as JWK, ec.alg);
    for (const contentEnc of ["A128GCM", "A192GCM", "A256CBC-HS512", "A128CBC-HS256"]) {
      const jwe = await new CompactEncrypt(enc.encode(CLAIMS))
        .setProtectedHeader({ alg: ec.alg, enc: contentEnc, kid: ec.kid })
        .encrypt(publicKey);
      await expectRejected(decryptCaptureJwe(jwe, keys), "JWE_INVALID", "enc_not_allowed");
    }
  });
});

describe("decryptCaptureJwe: hostile headers", () => {
  it("refuses a zip (DEFLATE) bomb before decrypting it", async () => {
    const { ec, keys } = await captureKeys();
    const bomb = await encryptTo(ec, new Uint8Array(1 << 20), { zip: "DEF" });
    expect(bomb.length).toBeLessThan(16 * 1024);
    await expectRejected(decryptCaptureJwe(bomb, keys), "JWE_INVALID", "zip");
  });

  it.each(["jwk", "jku", "x5u", "x5c"])(
    "refuses a %s header even when it carries the attacker's own key",
    async (name) => {
      const { ec, keys } = await captureKeys();
      const attacker = await generateKeyPair("ECDH-ES+A256KW", { extractable: true });
      const attackerJwk = await exportJWK(attacker.publicKey);
      const value = {
        jwk: attackerJwk,
        jku: "https://attacker.example/jwks",
        x5u: "https://attacker.example/c.pem",
        x5c: ["MIIB"],
      }[name];
      const jwe = await new CompactEncrypt(enc.encode(CLAIMS))
        .setProtectedHeader({ alg: ec.alg, enc: "A256GCM", kid: ec.kid, [name]: value })
        .encrypt(attacker.publicKey);
      await expectRejected(decryptCaptureJwe(jwe, keys), "JWE_INVALID", "header_forbidden");
    },
  );

  it("refuses crit, whatever it lists", async () => {
    const { ec, keys } = await captureKeys();
    const jwe = await encryptTo(ec, CLAIMS);
    for (const crit of [["exp"], [], ["b64"], "x"]) {
      await expectRejected(
        decryptCaptureJwe(withHeader(jwe, { ...jweHeaderOf(jwe), crit, exp: 1 }), keys),
        "JWE_INVALID",
        "crit",
      );
    }
  });

  it("refuses an ephemeral key that is not a bare P-256 public key", async () => {
    const { ec, keys } = await captureKeys();
    const jwe = await encryptTo(ec, CLAIMS);
    const epk = jweHeaderOf(jwe).epk as Record<string, string>;
    const p384 = await exportJWK(
      (await generateKeyPair("ECDH-ES", { crv: "P-384", extractable: true })).publicKey,
    );
    for (const bad of [
      { ...epk, d: epk.x },
      { ...epk, crv: "P-384" },
      p384,
      { ...epk, kty: "OKP" },
      "x",
      undefined,
      { ...epk, x: `${epk.x}AA` },
    ]) {
      await expectRejected(
        decryptCaptureJwe(withHeader(jwe, { ...jweHeaderOf(jwe), epk: bad }), keys),
        "JWE_INVALID",
        "epk",
      );
    }
  });

  it("refuses a missing or unknown kid: keys are found by kid only", async () => {
    const { ec, keys } = await captureKeys();
    const jwe = await encryptTo(ec, CLAIMS);
    const { kid: _kid, ...noKid } = jweHeaderOf(jwe);
    await expectRejected(
      decryptCaptureJwe(withHeader(jwe, noKid), keys),
      "JWE_INVALID",
      "kid_missing",
    );
    await expectRejected(
      decryptCaptureJwe(withHeader(jwe, { ...noKid, kid: "no-such-kid" }), keys),
      "JWE_INVALID",
      "kid_unknown",
    );
    await expectRejected(
      decryptCaptureJwe(withHeader(jwe, { ...noKid, kid: 7 }), keys),
      "JWE_INVALID",
      "malformed",
    );
  });

  it("refuses a kid that points to a key of another algorithm (algorithm confusion)", async () => {
    const { ec, rsa, keys } = await captureKeys();
    const jwe = await encryptTo(ec, CLAIMS);
    await expectRejected(
      decryptCaptureJwe(withHeader(jwe, { ...jweHeaderOf(jwe), kid: rsa.kid }), keys),
      "JWE_INVALID",
      "key_mismatch",
    );
    // a lookup that mislabels an RSA key as an ECDH key is caught by the key's own type
    const mislabelled = () => ({ alg: "ECDH-ES+A256KW" as const, privateKey: rsa.privateKey });
    await expectRejected(decryptCaptureJwe(jwe, mislabelled), "JWE_INVALID", "key_mismatch");
  });
});
