import { compactDecrypt, exportJWK, generateKeyPair, type JWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { JwtClaimsInvalid } from "../../../src/jose/claims-error.js";
import { encryptResponse } from "../../../src/jose/encrypt-response.js";
import { type NestedClaimsPolicy, openNestedJwt } from "../../../src/jose/nested-jwt.js";
import { JoseRejected } from "../../../src/jose/rejected.js";
import { validateTenantJwk } from "../../../src/jose/tenant-jwk.js";
import type { VerificationKeys } from "../../../src/jose/verify-jws.js";
import { flipSegment } from "../../support/tamper.js";
import { testCard } from "../domain/test-cards.js";
import { expectRejected } from "./expect-rejected.js";
import { b64u, captureKeys, encryptTo, type SignerKey, sign, signerKey } from "./fixtures.js";
import { verificationKeyLookup } from "./key-lookup.js";

const NOW = new Date("2030-06-01T12:00:00Z");
const T = Math.floor(NOW.getTime() / 1000);
const VAULT = "https://vault.example";
const POLICY: NestedClaimsPolicy = {
  issuer: "client_a",
  audience: VAULT,
  maxLifetimeSec: 300,
  now: NOW,
  htm: "POST",
  htu: `${VAULT}/v1/tokens`,
};

let tenantA: SignerKey;
let tenantB: SignerKey;
let signersA: VerificationKeys;

function claims(overrides: Record<string, unknown> = {}) {
  return {
    iss: "client_a",
    aud: VAULT,
    iat: T - 5,
    exp: T + 120,
    jti: "req-1",
    htm: "POST",
    htu: `${VAULT}/v1/tokens`,
    request: { pan: testCard("visa"), expiry: "12/34" },
    ...overrides,
  };
}

async function nested(
  signer: SignerKey,
  payload: object,
  header: Record<string, unknown> = { cty: "JWT" },
) {
  const { ec } = await captureKeys();
  return encryptTo(ec, await sign(signer, payload), header);
}

async function open(compact: string, signerKeys = signersA, policy = POLICY) {
  const { keys } = await captureKeys();
  return openNestedJwt(compact, { decryptionKeys: keys, signerKeys, claims: policy });
}

beforeAll(async () => {
  [tenantA, tenantB] = await Promise.all([signerKey("ES256", "a-1"), signerKey("EdDSA", "b-1")]);
  signersA = verificationKeyLookup([await validateTenantJwk(tenantA.publicJwk, "sig")]);
});

describe("openNestedJwt", () => {
  it("opens a JWS signed by the tenant and encrypted to the vault, and checks its claims", async () => {
    const out = await open(await nested(tenantA, claims()));
    expect(out.signerKid).toBe("a-1");
    expect(out.claims).toMatchObject({ iss: "client_a", jti: "req-1", htm: "POST" });
    expect(out.claims.claims.request).toEqual({ pan: testCard("visa"), expiry: "12/34" });
    expect(out.claims.replayUntil).toBe(T + 120 + 30);
  });

  it("requires cty JWT on the outer JWE (RFC 7519 §5.2), case-insensitively", async () => {
    await expectRejected(open(await nested(tenantA, claims(), {})), "JWE_INVALID", "cty");
    await expect(open(await nested(tenantA, claims(), { cty: "jwt" }))).resolves.toBeDefined();
  });

  it("refuses a JWS signed by another tenant's key: kids are looked up in this tenant's registry", async () => {
    await expectRejected(open(await nested(tenantB, claims())), "JWE_INVALID", "kid_unknown");
    const impostor = await signerKey("ES256", "a-1");
    await expectRejected(
      open(await nested(impostor, claims())),
      "JWE_INVALID",
      "signature_invalid",
    );
  });

  it("refuses an unsigned inner JWT (alg none) and an inner JWE instead of a JWS", async () => {
    const { ec } = await captureKeys();
    const unsigned = `${b64u({ alg: "none", kid: "a-1" })}.${b64u(claims())}.`;
    await expectRejected(
      open(await encryptTo(ec, unsigned, { cty: "JWT" })),
      "JWE_INVALID",
      "alg_not_allowed",
    );
    const innerJwe = await encryptTo(ec, "x");
    await expectRejected(
      open(await encryptTo(ec, innerJwe, { cty: "JWT" })),
      "JWE_INVALID",
      "not_compact",
    );
  });

  it("makes inner and outer failures indistinguishable (same class, message and code)", async () => {
    const outer = await nested(tenantA, claims());
    const badOuter = await expectRejected(open(flipSegment(outer, 4, -1)), "JWE_INVALID");
    const badInner = await expectRejected(open(await nested(tenantB, claims())), "JWE_INVALID");
    expect([badOuter.name, badOuter.message, badOuter.code]).toEqual([
      badInner.name,
      badInner.message,
      badInner.code,
    ]);
  });

  const claimCases: { name: string; overrides: Record<string, unknown>; code: string }[] = [
    { name: "wrong issuer", overrides: { iss: "client_b" }, code: "JWT_ISSUER" },
    { name: "wrong audience", overrides: { aud: "https://other.example" }, code: "JWT_AUDIENCE" },
    { name: "expired", overrides: { iat: T - 400, exp: T - 200 }, code: "JWT_EXPIRED" },
    {
      name: "issued in the future",
      overrides: { iat: T + 120, exp: T + 200 },
      code: "JWT_NOT_YET_VALID",
    },
    { name: "lifetime too long", overrides: { exp: T + 3600 }, code: "JWT_LIFETIME" },
    { name: "bound to another method", overrides: { htm: "PUT" }, code: "JWT_HTM" },
    {
      name: "bound to another route",
      overrides: { htu: `${VAULT}/v1/tokens/tok_1/reveal` },
      code: "JWT_HTU",
    },
    { name: "no jti", overrides: { jti: undefined }, code: "JWT_CLAIMS" },
  ];

  it.each(claimCases)("claims: $name → $code", async ({ overrides, code }) => {
    await expect(open(await nested(tenantA, claims(overrides)))).rejects.toMatchObject({ code });
    await expect(open(await nested(tenantA, claims(overrides)))).rejects.toBeInstanceOf(
      JwtClaimsInvalid,
    );
  });

  it("exposes jti and exp so the caller can refuse a replay", async () => {
    const token = await nested(tenantA, claims({ jti: "once" }));
    const seen = new Map<string, number>();
    const first = await open(token);
    seen.set(first.claims.jti, first.claims.replayUntil);
    const second = await open(token);
    expect(seen.has(second.claims.jti)).toBe(true);
  });

  it("never puts the card number in an error", async () => {
    const token = await nested(tenantA, claims({ aud: "https://other.example" }));
    const err = await open(token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JwtClaimsInvalid);
    expect(JSON.stringify({ ...(err as object), message: String(err) })).not.toContain(
      testCard("visa"),
    );
    expect(err).not.toBeInstanceOf(JoseRejected);
  });
});

describe("encryptResponse", () => {
  it.each(["ECDH-ES+A256KW", "RSA-OAEP-256"] as const)(
    "encrypts to a tenant's registered %s key",
    async (alg) => {
      const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
      const jwk = { ...(await exportJWK(publicKey)), use: "enc", kid: "tenant-enc-1" };
      const jwe = await encryptResponse('{"token":"tok_1"}', jwk, { cty: "json" });
      const { plaintext, protectedHeader } = await compactDecrypt(jwe, privateKey);
      expect(new TextDecoder().decode(plaintext)).toBe('{"token":"tok_1"}');
      expect(protectedHeader).toMatchObject({
        alg,
        enc: "A256GCM",
        kid: "tenant-enc-1",
        cty: "json",
      });
    },
  );

  it("refuses a private, symmetric or signing-only recipient key", async () => {
    const { privateKey } = await generateKeyPair("ECDH-ES+A256KW", { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    await expect(encryptResponse("x", privateJwk)).rejects.toMatchObject({
      reason: "private_material",
    });
    await expect(encryptResponse("x", { kty: "oct", k: "AAAA" })).rejects.toMatchObject({
      reason: "symmetric",
    });
    await expect(encryptResponse("x", { ...tenantB.publicJwk })).rejects.toMatchObject({
      reason: "use",
    });
    const encWithSigAlg: JWK = {
      ...(await exportJWK((await generateKeyPair("ECDH-ES+A256KW")).publicKey)),
      alg: "ES256",
    };
    await expect(encryptResponse("x", encWithSigAlg)).rejects.toMatchObject({ reason: "alg" });
  });

  it("produces what decryptCaptureJwe would accept, with the roles swapped", async () => {
    const { ec } = await captureKeys();
    const jwe = await encryptResponse("ok", ec.publicJwk);
    const { plaintext } = await compactDecrypt(jwe, ec.privateKey);
    expect(new TextDecoder().decode(plaintext)).toBe("ok");
  });
});
