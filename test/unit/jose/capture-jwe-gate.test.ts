import { createHmac } from "node:crypto";
import { FlattenedEncrypt, importJWK, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { decryptCaptureJwe } from "../../../src/jose/capture-jwe.js";
import type { JoseRejected } from "../../../src/jose/rejected.js";
import { flipSegment } from "../../support/tamper.js";
import { expectRejected } from "./expect-rejected.js";
import { captureKeys, encryptTo, jweHeaderOf, withHeader } from "./fixtures.js";

const CLAIMS = JSON.stringify({ iss: "cs_1", card: { expiry: "12/34" } });
const enc = new TextEncoder();

describe("decryptCaptureJwe: size and format gate", () => {
  it("refuses input over the bound before parsing anything", async () => {
    const { ec, keys } = await captureKeys();
    await expectRejected(
      decryptCaptureJwe("{".repeat(16 * 1024 + 1), keys),
      "JWE_INVALID",
      "oversize",
    );
    const jwe = await encryptTo(ec, "x".repeat(2000));
    await expectRejected(
      decryptCaptureJwe(jwe, keys, { maxLength: jwe.length - 1 }),
      "JWE_INVALID",
      "oversize",
    );
    await expect(decryptCaptureJwe(jwe, keys, { maxLength: jwe.length })).resolves.toBeDefined();
  });

  it("refuses the JSON serializations: compact only", async () => {
    const { ec, keys } = await captureKeys();
    const publicKey = await importJWK(ec.publicJwk as JWK, ec.alg);
    const flattened = await new FlattenedEncrypt(enc.encode(CLAIMS))
      .setProtectedHeader({ alg: ec.alg, enc: "A256GCM", kid: ec.kid })
      .encrypt(publicKey);
    await expectRejected(
      decryptCaptureJwe(JSON.stringify(flattened), keys),
      "JWE_INVALID",
      "not_compact",
    );
    await expectRejected(
      decryptCaptureJwe(JSON.stringify({ ...flattened, recipients: [{}] }), keys),
      "JWE_INVALID",
      "not_compact",
    );
  });

  it("refuses wrong segment counts, padding, spaces and non-canonical base64url", async () => {
    const { ec, keys } = await captureKeys();
    const jwe = await encryptTo(ec, CLAIMS);
    const parts = jwe.split(".");
    for (const bad of [
      parts.slice(0, 4).join("."),
      `${jwe}.`,
      "",
      "....",
      `${jwe.slice(0, -1)}=`,
      ` ${jwe}`,
      jwe.replace(".", ". "),
    ]) {
      await expectRejected(decryptCaptureJwe(bad, keys), "JWE_INVALID");
    }
    const iv = parts[2] ?? "";
    const nonCanonical = `${iv.slice(0, -1)}${iv.endsWith("A") ? "B" : "A"}`;
    await expectRejected(
      decryptCaptureJwe([parts[0], parts[1], nonCanonical, parts[3], parts[4]].join("."), keys),
      "JWE_INVALID",
    );
  });
});

describe("decryptCaptureJwe: tampering gives one indistinguishable error", () => {
  const flip = (segment: string) =>
    `${segment.slice(0, 4)}${segment[4] === "A" ? "B" : "A"}${segment.slice(5)}`;

  it.each(["ECDH-ES+A256KW", "RSA-OAEP-256"])(
    "%s: header, encrypted key, IV, ciphertext, tag",
    async (alg) => {
      const { ec, rsa, keys } = await captureKeys();
      const pair = alg === ec.alg ? ec : rsa;
      const jwe = await encryptTo(pair, CLAIMS);
      const parts = jwe.split(".");
      const tampered = [
        withHeader(jwe, { ...jweHeaderOf(jwe), extra: "a protected header edit" }),
        ...[1, 2, 3, 4].map((i) => parts.map((p, j) => (j === i ? flip(p) : p)).join(".")),
      ];
      const errors: JoseRejected[] = [];
      for (const bad of tampered)
        errors.push(
          await expectRejected(decryptCaptureJwe(bad, keys), "JWE_INVALID", "decrypt_failed"),
        );
      for (const err of errors) {
        expect(err.constructor).toBe(errors[0]?.constructor);
        expect(err.message).toBe(errors[0]?.message);
        expect(String(err)).not.toContain("card");
      }
    },
  );

  it("gives an unknown kid and a bad tag the same class, message and code", async () => {
    const { ec, keys } = await captureKeys();
    const jwe = await encryptTo(ec, CLAIMS);
    const unknown = await expectRejected(
      decryptCaptureJwe(withHeader(jwe, { ...jweHeaderOf(jwe), kid: "gone" }), keys),
      "JWE_INVALID",
    );
    const badTag = await expectRejected(
      decryptCaptureJwe(flipSegment(jwe, 4, -1), keys),
      "JWE_INVALID",
    );
    expect([unknown.message, unknown.code, unknown.name]).toEqual([
      badTag.message,
      badTag.code,
      badTag.name,
    ]);
  });

  it("does not accept a MAC computed by the sender with a key it chose (no symmetric path)", async () => {
    const { ec, keys } = await captureKeys();
    const jwe = await encryptTo(ec, CLAIMS);
    const forgedTag = createHmac("sha256", "attacker")
      .update(jwe)
      .digest()
      .subarray(0, 16)
      .toString("base64url");
    await expectRejected(
      decryptCaptureJwe([...jwe.split(".").slice(0, 4), forgedTag].join("."), keys),
      "JWE_INVALID",
      "decrypt_failed",
    );
  });
});
