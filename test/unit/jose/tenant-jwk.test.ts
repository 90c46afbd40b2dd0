import { generateKeyPairSync } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { type JwkRejected, validateTenantJwk } from "../../../src/jose/tenant-jwk.js";

async function publicJwk(alg: string, options: Record<string, unknown> = {}): Promise<JWK> {
  const { publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  return exportJWK(publicKey);
}

async function reasonOf(input: unknown, use: "sig" | "enc"): Promise<string> {
  try {
    await validateTenantJwk(input, use);
    return "accepted";
  } catch (err) {
    return (err as JwkRejected).reason;
  }
}

describe("validateTenantJwk: accepted", () => {
  it.each([
    ["ES256", "sig", {}],
    ["EdDSA", "sig", { crv: "Ed25519" }],
    ["PS256", "sig", {}],
    ["ECDH-ES+A256KW", "enc", {}],
    ["RSA-OAEP-256", "enc", {}],
  ] as const)(
    "%s for %s, normalized, kid computed as the RFC 7638 thumbprint",
    async (alg, use, options) => {
      const jwk = await publicJwk(alg, options);
      const out = await validateTenantJwk({ ...jwk, ext: true }, use);
      expect(out.alg).toBe(alg);
      expect(out.kid).toBe(await calculateJwkThumbprint(jwk, "sha256"));
      expect(out.jwk).toMatchObject({ kid: out.kid, use, alg });
      expect(out.jwk).not.toHaveProperty("ext");
      expect(out.key.type).toBe("public");
    },
  );

  it("keeps a registered kid and accepts matching use, alg and key_ops", async () => {
    const jwk = await publicJwk("ES256");
    const out = await validateTenantJwk(
      { ...jwk, kid: "tenant-key-7", use: "sig", alg: "ES256", key_ops: ["verify"] },
      "sig",
    );
    expect(out.kid).toBe("tenant-key-7");
  });
});

describe("validateTenantJwk: refused", () => {
  it("refuses private keys and symmetric keys", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    expect(await reasonOf(await exportJWK(privateKey), "sig")).toBe("private_material");
    expect(await reasonOf({ ...(await publicJwk("PS256")), p: "AQAB" }, "sig")).toBe(
      "private_material",
    );
    expect(await reasonOf({ kty: "oct", k: "c2VjcmV0" }, "sig")).toBe("symmetric");
    expect(await reasonOf({ kty: "oct" }, "enc")).toBe("symmetric");
  });

  it("refuses RSA under 2048 bits, an exponent other than 65537, other curves and key types", async () => {
    const small = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({
      format: "jwk",
    });
    expect(await reasonOf(small, "sig")).toBe("size");
    expect(await reasonOf({ ...(await publicJwk("PS256")), e: "Aw" }, "sig")).toBe("exponent");
    expect(await reasonOf(await publicJwk("ES384"), "sig")).toBe("crv");
    expect(await reasonOf(await publicJwk("ECDH-ES", { crv: "X25519" }), "enc")).toBe("crv");
    expect(await reasonOf(await publicJwk("EdDSA", { crv: "Ed25519" }), "enc")).toBe("use");
    expect(await reasonOf({ kty: "AKP", pub: "x" }, "sig")).toBe("kty");
    expect(await reasonOf("not a jwk", "sig")).toBe("not_object");
  });

  it("refuses alg, use and key_ops that do not fit the use", async () => {
    const jwk = await publicJwk("ES256");
    expect(await reasonOf({ ...jwk, alg: "ES512" }, "sig")).toBe("alg");
    expect(await reasonOf({ ...jwk, alg: "HS256" }, "sig")).toBe("alg");
    expect(await reasonOf({ ...jwk, alg: "ES256" }, "enc")).toBe("alg");
    expect(await reasonOf({ ...jwk, use: "enc" }, "sig")).toBe("use");
    expect(await reasonOf({ ...jwk, key_ops: ["sign", "verify"] }, "sig")).toBe("key_ops");
    expect(await reasonOf({ ...jwk, key_ops: ["encrypt"] }, "sig")).toBe("key_ops");
    expect(await reasonOf({ ...(await publicJwk("PS256")), alg: "RS256" }, "sig")).toBe("alg");
  });

  it("refuses certificate members, bad kids, bad coordinates and points off the curve", async () => {
    const jwk = await publicJwk("ES256");
    expect(await reasonOf({ ...jwk, x5c: ["MIIB"] }, "sig")).toBe("x509");
    expect(await reasonOf({ ...jwk, x5u: "https://attacker.example/c" }, "sig")).toBe("x509");
    expect(await reasonOf({ ...jwk, kid: "" }, "sig")).toBe("kid");
    expect(await reasonOf({ ...jwk, kid: "with space" }, "sig")).toBe("kid");
    expect(await reasonOf({ ...jwk, x: `${jwk.x}AA` }, "sig")).toBe("coordinates");
    expect(await reasonOf({ ...jwk, x: jwk.y, y: jwk.x }, "sig")).toBe("invalid_key");
  });
});
