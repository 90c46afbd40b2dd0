import { CompactEncrypt, CompactSign, type CryptoKey, generateKeyPair, type JWK } from "jose";
import type { DecryptionKeys } from "../../../src/jose/capture-jwe.js";
import { type CaptureKeyPair, generateCaptureKeyPair } from "../../../src/jose/capture-keys.js";
import { decryptionKeyLookup } from "./key-lookup.js";

export const b64u = (value: string | Uint8Array | object): string =>
  Buffer.from(
    typeof value === "string" || value instanceof Uint8Array ? value : JSON.stringify(value),
  ).toString("base64url");

let capture: Promise<{ ec: CaptureKeyPair; rsa: CaptureKeyPair; keys: DecryptionKeys }> | undefined;

/** One P-256 and one RSA 3072 capture key pair for the whole test file (RSA generation is slow). */
export function captureKeys() {
  capture ??= (async () => {
    const ec = await generateCaptureKeyPair("ECDH-ES+A256KW");
    const rsa = await generateCaptureKeyPair("RSA-OAEP-256");
    const keys = decryptionKeyLookup([ec, rsa]);
    return { ec, rsa, keys };
  })();
  return capture;
}

/** A JWE as a well-behaved client builds it: to the published public JWK, kid in the header. */
export async function encryptTo(
  pair: CaptureKeyPair,
  plaintext: string | Uint8Array,
  header: Record<string, unknown> = {},
): Promise<string> {
  const bytes = typeof plaintext === "string" ? new TextEncoder().encode(plaintext) : plaintext;
  const { importJWK } = await import("jose");
  const publicKey = await importJWK(pair.publicJwk as JWK, pair.alg);
  return new CompactEncrypt(bytes)
    .setProtectedHeader({ alg: pair.alg, enc: "A256GCM", kid: pair.kid, ...header })
    .encrypt(publicKey);
}

export interface SignerKey {
  readonly alg: "ES256" | "EdDSA" | "PS256";
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function signerKey(alg: SignerKey["alg"], kid: string): Promise<SignerKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === "EdDSA" && { crv: "Ed25519" }),
  });
  const { exportJWK } = await import("jose");
  return { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid } };
}

export async function sign(
  key: SignerKey,
  payload: string | object,
  header: Record<string, unknown> = {},
): Promise<string> {
  const bytes = new TextEncoder().encode(
    typeof payload === "string" ? payload : JSON.stringify(payload),
  );
  return new CompactSign(bytes)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
}

/** Replaces the protected header of a compact JWE (the rest stays as it was). */
export function withHeader(jwe: string, header: object): string {
  return [b64u(header), ...jwe.split(".").slice(1)].join(".");
}

export function jweHeaderOf(jwe: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwe.split(".")[0] ?? "", "base64url").toString("utf8"));
}
