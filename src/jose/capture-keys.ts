/**
 * The vault's capture encryption keys (RFC 7518 §4.3 RSA-OAEP-256 with 3072-bit keys, §4.6
 * ECDH-ES+A256KW on P-256; RFC 7517 §4 public JWKs; RFC 7638 thumbprints as kid).
 *
 * Private keys leave this module only as PKCS #8 DER bytes, for the caller to wrap under the
 * key hierarchy (the same bytes come back through `importCapturePrivateKey`, which yields a
 * non-extractable CryptoKey). Public keys are published as JWKs with kid, use "enc" and alg,
 * so a client never has to guess the algorithm (RFC 8725 §3.1).
 */
import { KeyObject } from "node:crypto";
import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importPKCS8,
  type JWK,
} from "jose";
import type { CaptureJweAlg } from "./algorithms.js";
import { type AsymmetricKey, keyFits } from "./key-fit.js";

/** NIST SP 800-57 Part 1: 3072-bit RSA for security beyond 2030. */
export const CAPTURE_RSA_BITS = 3072;

export interface CapturePublicJwk {
  readonly kty: "EC" | "RSA";
  readonly kid: string;
  readonly use: "enc";
  readonly alg: CaptureJweAlg;
  readonly crv?: "P-256";
  readonly x?: string;
  readonly y?: string;
  readonly n?: string;
  readonly e?: string;
}

export interface CaptureKeyPair {
  readonly kid: string;
  readonly alg: CaptureJweAlg;
  /** Extractable, so it can be exported once as PKCS #8 for wrapping; drop it afterwards. */
  readonly privateKey: CryptoKey;
  readonly publicJwk: CapturePublicJwk;
}

export async function generateCaptureKeyPair(
  alg: CaptureJweAlg = "ECDH-ES+A256KW",
): Promise<CaptureKeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === "RSA-OAEP-256" ? { modulusLength: CAPTURE_RSA_BITS } : { crv: "P-256" }),
  });
  const publicJwk = await exportCapturePublicJwk(publicKey, alg);
  return { kid: publicJwk.kid, alg, privateKey, publicJwk };
}

/** The public JWK to publish, with the RFC 7638 thumbprint as kid. */
export async function exportCapturePublicJwk(
  publicKey: AsymmetricKey,
  alg: CaptureJweAlg,
): Promise<CapturePublicJwk> {
  if (!keyFits(publicKey, alg, "public")) throw new TypeError(`not a public key for ${alg}`);
  const full = await exportJWK(publicKey);
  const members: JWK =
    alg === "RSA-OAEP-256"
      ? { kty: "RSA", n: full.n as string, e: full.e as string }
      : { kty: "EC", crv: "P-256", x: full.x as string, y: full.y as string };
  const kid = await calculateJwkThumbprint(members, "sha256");
  return { ...members, kid, use: "enc", alg } as CapturePublicJwk;
}

/** PKCS #8 DER of a private key (RFC 5208), for wrapping under the key hierarchy. */
export async function exportPrivateKeyPkcs8(privateKey: AsymmetricKey): Promise<Uint8Array> {
  if (privateKey instanceof KeyObject) {
    if (privateKey.type !== "private") throw new TypeError("not a private key");
    return new Uint8Array(privateKey.export({ format: "der", type: "pkcs8" }));
  }
  if (privateKey.type !== "private") throw new TypeError("not a private key");
  return new Uint8Array(await crypto.subtle.exportKey("pkcs8", privateKey));
}

function pem(der: Uint8Array): string {
  const body = Buffer.from(der)
    .toString("base64")
    .replace(/(.{64})/g, "$1\n");
  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----`;
}

/** A non-extractable private CryptoKey for `alg` from PKCS #8 DER; refuses keys of another kind. */
export async function importCapturePrivateKey(
  pkcs8: Uint8Array,
  alg: CaptureJweAlg,
): Promise<CryptoKey> {
  let key: CryptoKey;
  try {
    key = await importPKCS8(pem(pkcs8), alg, { extractable: false });
  } catch {
    throw new TypeError(`not a PKCS #8 private key for ${alg}`);
  }
  if (!keyFits(key, alg, "private")) throw new TypeError(`not a PKCS #8 private key for ${alg}`);
  return key;
}
