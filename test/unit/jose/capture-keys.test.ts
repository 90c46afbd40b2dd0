import { createPrivateKey } from "node:crypto";
import { calculateJwkThumbprint, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { decryptCaptureJwe } from "../../../src/jose/capture-jwe.js";
import {
  CAPTURE_RSA_BITS,
  exportCapturePublicJwk,
  exportPrivateKeyPkcs8,
  generateCaptureKeyPair,
  importCapturePrivateKey,
} from "../../../src/jose/capture-keys.js";
import { captureKeys, encryptTo } from "./fixtures.js";
import { decryptionKeyLookup } from "./key-lookup.js";

const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "k"];

describe("capture key pairs", () => {
  it("publishes P-256 and RSA 3072 public JWKs with use, alg and the RFC 7638 thumbprint as kid", async () => {
    const { ec, rsa } = await captureKeys();
    expect(ec.publicJwk).toMatchObject({
      kty: "EC",
      crv: "P-256",
      use: "enc",
      alg: "ECDH-ES+A256KW",
    });
    expect(rsa.publicJwk).toMatchObject({ kty: "RSA", e: "AQAB", use: "enc", alg: "RSA-OAEP-256" });
    expect(Buffer.from(rsa.publicJwk.n ?? "", "base64url").length * 8).toBe(CAPTURE_RSA_BITS);
    for (const pair of [ec, rsa]) {
      expect(pair.kid).toBe(await calculateJwkThumbprint(pair.publicJwk as JWK, "sha256"));
      expect(pair.publicJwk.kid).toBe(pair.kid);
      for (const member of PRIVATE_MEMBERS) expect(pair.publicJwk).not.toHaveProperty(member);
      expect(Object.keys(pair.publicJwk).sort()).toEqual(
        pair.alg === "RSA-OAEP-256"
          ? ["alg", "e", "kid", "kty", "n", "use"]
          : ["alg", "crv", "kid", "kty", "use", "x", "y"],
      );
    }
  });

  it("gives fresh keys fresh kids", async () => {
    const a = await generateCaptureKeyPair();
    const b = await generateCaptureKeyPair();
    expect(a.kid).not.toBe(b.kid);
  });

  it("round-trips private keys through PKCS #8 DER into non-extractable keys that still decrypt", async () => {
    const { ec, rsa } = await captureKeys();
    for (const pair of [ec, rsa]) {
      const der = await exportPrivateKeyPkcs8(pair.privateKey);
      expect(der[0]).toBe(0x30);
      const imported = await importCapturePrivateKey(der, pair.alg);
      expect(imported.extractable).toBe(false);
      const keys = decryptionKeyLookup([{ kid: pair.kid, alg: pair.alg, privateKey: imported }]);
      const out = await decryptCaptureJwe(await encryptTo(pair, "pkcs8"), keys);
      expect(new TextDecoder().decode(out.plaintext)).toBe("pkcs8");
    }
  });

  it("accepts Node KeyObjects as well as CryptoKeys (keys held outside WebCrypto)", async () => {
    const { ec, rsa } = await captureKeys();
    for (const pair of [ec, rsa]) {
      const der = Buffer.from(await exportPrivateKeyPkcs8(pair.privateKey));
      const privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
      const keys = decryptionKeyLookup([{ kid: pair.kid, alg: pair.alg, privateKey }]);
      const out = await decryptCaptureJwe(await encryptTo(pair, "key object"), keys);
      expect(new TextDecoder().decode(out.plaintext)).toBe("key object");
      expect(await exportPrivateKeyPkcs8(privateKey)).toEqual(new Uint8Array(der));
    }
  });

  it("refuses PKCS #8 bytes of the wrong kind of key, and garbage", async () => {
    const { ec, rsa } = await captureKeys();
    await expect(
      importCapturePrivateKey(await exportPrivateKeyPkcs8(ec.privateKey), "RSA-OAEP-256"),
    ).rejects.toThrow(TypeError);
    await expect(
      importCapturePrivateKey(await exportPrivateKeyPkcs8(rsa.privateKey), "ECDH-ES+A256KW"),
    ).rejects.toThrow(TypeError);
    await expect(
      importCapturePrivateKey(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00), "ECDH-ES+A256KW"),
    ).rejects.toThrow(TypeError);
  });

  it("exports public JWKs only from public keys of the named algorithm", async () => {
    const { ec } = await captureKeys();
    await expect(exportCapturePublicJwk(ec.privateKey, ec.alg)).rejects.toThrow(TypeError);
  });
});
