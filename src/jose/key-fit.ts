/**
 * Does a key suit the algorithm it is about to be used with? RFC 8725 §3.1: each key is used
 * with exactly one algorithm, and that algorithm is the key's, never the header's choice. A kid
 * that resolves to an RSA key must not serve an ECDH-ES header, and the other way round.
 */
import { KeyObject } from "node:crypto";
import type { CryptoKey } from "jose";
import type { CaptureJweAlg, JwsAlg } from "./algorithms.js";

export type AsymmetricKey = CryptoKey | KeyObject;

const MIN_RSA_BITS = 2048;

// Node 20 exposes the WebCrypto CryptoKey class on globalThis only.
const CryptoKeyClass = (globalThis as unknown as { CryptoKey: abstract new () => object })
  .CryptoKey;

interface KeyAlgorithmFields {
  readonly name?: string;
  readonly namedCurve?: string;
  readonly modulusLength?: number;
  readonly hash?: { readonly name?: string };
}

function cryptoKeyFits(key: CryptoKey, alg: CaptureJweAlg | JwsAlg): boolean {
  const algorithm = key.algorithm as KeyAlgorithmFields;
  const hash = algorithm.hash?.name;
  const rsaBits = algorithm.modulusLength ?? 0;
  switch (alg) {
    case "ECDH-ES+A256KW":
      return algorithm.name === "ECDH" && algorithm.namedCurve === "P-256";
    case "ES256":
      return algorithm.name === "ECDSA" && algorithm.namedCurve === "P-256";
    case "RSA-OAEP-256":
      return algorithm.name === "RSA-OAEP" && hash === "SHA-256" && rsaBits >= MIN_RSA_BITS;
    case "PS256":
      return algorithm.name === "RSA-PSS" && hash === "SHA-256" && rsaBits >= MIN_RSA_BITS;
    case "EdDSA":
      return algorithm.name === "Ed25519";
  }
}

function keyObjectFits(key: KeyObject, alg: CaptureJweAlg | JwsAlg): boolean {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  const rsaBits = details.modulusLength ?? 0;
  switch (alg) {
    case "ECDH-ES+A256KW":
    case "ES256":
      return type === "ec" && details.namedCurve === "prime256v1";
    case "RSA-OAEP-256":
      return type === "rsa" && rsaBits >= MIN_RSA_BITS;
    case "PS256":
      return (type === "rsa" || type === "rsa-pss") && rsaBits >= MIN_RSA_BITS;
    case "EdDSA":
      return type === "ed25519";
  }
}

export function keyFits(
  key: unknown,
  alg: CaptureJweAlg | JwsAlg,
  type: "private" | "public",
): key is AsymmetricKey {
  if (key instanceof KeyObject) return key.type === type && keyObjectFits(key, alg);
  if (key instanceof CryptoKeyClass) {
    const cryptoKey = key as CryptoKey;
    return cryptoKey.type === type && cryptoKeyFits(cryptoKey, alg);
  }
  return false;
}
