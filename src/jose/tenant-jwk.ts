/**
 * Validation of the public JWKs a tenant registers: signing keys for its signed and nested
 * requests, encryption keys for responses the vault encrypts to it (RFC 7517 §4, RFC 7518 §6,
 * RFC 8037 §2, RFC 8725 §3.1, §3.5).
 *
 * Accepted: EC P-256 (ES256 / ECDH-ES+A256KW), OKP Ed25519 (EdDSA, signing only) and RSA of
 * 2048 to 8192 bits with e = 65537 (PS256 / RSA-OAEP-256). Refused: private members, symmetric
 * "oct" keys (a secret handed to the vault is no signature), other curves and types, "alg",
 * "use" or "key_ops" that do not fit the requested use, and x5u/x5c (no PKI is evaluated here).
 * A missing kid is computed as the RFC 7638 thumbprint. Errors say what is wrong, since the
 * tenant registering the key is authenticated and the key is public.
 */
import { type CryptoKey, calculateJwkThumbprint, importJWK, type JWK } from "jose";
import type { CaptureJweAlg, JwsAlg } from "./algorithms.js";
import { isCanonicalBase64url } from "./compact.js";

export type KeyUse = "sig" | "enc";

export type JwkRejectReason =
  | "not_object"
  | "private_material"
  | "symmetric"
  | "kty"
  | "crv"
  | "alg"
  | "use"
  | "key_ops"
  | "x509"
  | "coordinates"
  | "size"
  | "exponent"
  | "kid"
  | "invalid_key";

export class JwkRejected extends Error {
  readonly code = "JWK_INVALID" as const;
  readonly reason: JwkRejectReason;

  constructor(reason: JwkRejectReason, message: string) {
    super(message);
    this.name = "JwkRejected";
    this.reason = reason;
  }
}

export interface RegisteredJwk {
  readonly kid: string;
  readonly use: KeyUse;
  readonly alg: JwsAlg | CaptureJweAlg;
  /** The normalized public JWK to store (only the members below). */
  readonly jwk: Readonly<JWK>;
  readonly key: CryptoKey;
}

const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
const ALLOWED_OPS: Record<KeyUse, readonly string[]> = {
  sig: ["verify"],
  enc: ["encrypt", "wrapKey"],
};

interface Shape {
  readonly alg: JwsAlg | CaptureJweAlg;
  readonly members: Record<string, string>;
}

function bytes(value: unknown, member: string): Buffer {
  if (typeof value !== "string" || value.length === 0 || !isCanonicalBase64url(value)) {
    throw new JwkRejected("coordinates", `"${member}" must be canonical base64url`);
  }
  return Buffer.from(value, "base64url");
}

function ecShape(jwk: Record<string, unknown>, use: KeyUse): Shape {
  if (jwk.crv !== "P-256")
    throw new JwkRejected("crv", "only the P-256 curve is accepted for EC keys");
  if (bytes(jwk.x, "x").length !== 32 || bytes(jwk.y, "y").length !== 32) {
    throw new JwkRejected("coordinates", "P-256 coordinates are 32 bytes");
  }
  const alg = use === "sig" ? "ES256" : "ECDH-ES+A256KW";
  return { alg, members: { crv: "P-256", x: jwk.x as string, y: jwk.y as string } };
}

function okpShape(jwk: Record<string, unknown>, use: KeyUse): Shape {
  if (jwk.crv !== "Ed25519") throw new JwkRejected("crv", "only Ed25519 is accepted for OKP keys");
  if (use !== "sig") throw new JwkRejected("use", "Ed25519 keys can only sign");
  if (bytes(jwk.x, "x").length !== 32)
    throw new JwkRejected("coordinates", "Ed25519 keys are 32 bytes");
  return { alg: "EdDSA", members: { crv: "Ed25519", x: jwk.x as string } };
}

function rsaShape(jwk: Record<string, unknown>, use: KeyUse): Shape {
  const n = bytes(jwk.n, "n");
  if (n[0] === 0) throw new JwkRejected("coordinates", `"n" must not have leading zero octets`);
  const bits = n.length * 8 - Math.clz32(n[0] ?? 0) + 24;
  if (bits < 2048 || bits > 8192)
    throw new JwkRejected("size", "RSA keys must be 2048 to 8192 bits");
  if (jwk.e !== "AQAB") throw new JwkRejected("exponent", "the RSA public exponent must be 65537");
  const alg = use === "sig" ? "PS256" : "RSA-OAEP-256";
  return { alg, members: { n: jwk.n as string, e: "AQAB" } };
}

function shapeOf(jwk: Record<string, unknown>, use: KeyUse): Shape {
  switch (jwk.kty) {
    case "EC":
      return ecShape(jwk, use);
    case "OKP":
      return okpShape(jwk, use);
    case "RSA":
      return rsaShape(jwk, use);
    case "oct":
      throw new JwkRejected("symmetric", "symmetric (oct) keys are not accepted");
    default:
      throw new JwkRejected("kty", "kty must be EC, OKP or RSA");
  }
}

function checkUsage(jwk: Record<string, unknown>, use: KeyUse, alg: Shape["alg"]): void {
  if (jwk.alg !== undefined && jwk.alg !== alg) {
    throw new JwkRejected("alg", `a ${use} key of this type must have alg ${alg}`);
  }
  if (jwk.use !== undefined && jwk.use !== use)
    throw new JwkRejected("use", `"use" must be "${use}"`);
  const ops = jwk.key_ops;
  if (ops === undefined) return;
  if (
    !Array.isArray(ops) ||
    ops.length === 0 ||
    !ops.every((op) => ALLOWED_OPS[use].includes(op))
  ) {
    throw new JwkRejected("key_ops", `"key_ops" may only list ${ALLOWED_OPS[use].join(", ")}`);
  }
}

async function kidOf(jwk: Record<string, unknown>, normalized: JWK): Promise<string> {
  const kid = jwk.kid;
  if (kid === undefined) return calculateJwkThumbprint(normalized, "sha256");
  if (
    typeof kid !== "string" ||
    kid.length === 0 ||
    kid.length > 128 ||
    !/^[\x21-\x7e]+$/.test(kid)
  ) {
    throw new JwkRejected("kid", "kid must be 1-128 printable ASCII characters");
  }
  return kid;
}

function precheck(input: unknown): Record<string, unknown> {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new JwkRejected("not_object", "a JWK is a JSON object");
  }
  const jwk = input as Record<string, unknown>;
  if (jwk.kty === "oct")
    throw new JwkRejected("symmetric", "symmetric (oct) keys are not accepted");
  if (PRIVATE_MEMBERS.some((member) => Object.hasOwn(jwk, member))) {
    throw new JwkRejected(
      "private_material",
      "register the public key only: private members found",
    );
  }
  if (["x5u", "x5c", "x5t", "x5t#S256"].some((member) => Object.hasOwn(jwk, member))) {
    throw new JwkRejected("x509", "certificate members (x5u, x5c, x5t) are not accepted");
  }
  return jwk;
}

/** Validates and normalizes a tenant's public JWK for one use. */
export async function validateTenantJwk(input: unknown, use: KeyUse): Promise<RegisteredJwk> {
  const jwk = precheck(input);
  const shape = shapeOf(jwk, use);
  checkUsage(jwk, use, shape.alg);
  const base = { kty: jwk.kty as string, ...shape.members } as JWK;
  const kid = await kidOf(jwk, base);
  const normalized: JWK = { ...base, kid, use, alg: shape.alg };
  let key: CryptoKey;
  try {
    key = (await importJWK(normalized, shape.alg, { extractable: false })) as CryptoKey;
  } catch {
    throw new JwkRejected("invalid_key", "the key is not a valid public key of its type");
  }
  return { kid, use, alg: shape.alg, jwk: Object.freeze(normalized), key };
}
