import type { KeyObject } from "node:crypto";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { CompactEncrypt, CompactSign, compactDecrypt, importJWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  auth,
  CARDS,
  EXP_MONTH,
  EXP_YEAR,
  expectFieldError,
  expectProblem,
  tokenRowCount,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

const VAULT = "https://vault.test";

function ecPair(): { publicJwk: Record<string, unknown>; privateKey: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { publicJwk: publicKey.export({ format: "jwk" }) as Record<string, unknown>, privateKey };
}

for (const driver of DRIVERS) {
  describe(`nested JWT (sign, then encrypt to the vault) on ${driver.name}`, () => {
    let vault: TestVault;
    let admin: string;
    let writer: string;
    let other: { tenantId: string; key: string };
    const signer = ecPair();
    const responseKey = ecPair();
    const rogue = ecPair();

    beforeAll(async () => {
      vault = await startTestVault(driver);
      admin = await vault.newKey(vault.tenantId, ["keys:manage"]);
      writer = await vault.newKey(vault.tenantId, ["tokens:write"]);
      other = await vault.newTenant(["keys:manage", "tokens:write"]);
      const reg = async (key: string, jwk: Record<string, unknown>, use: string, alg: string) =>
        vault.app.inject({
          method: "POST",
          url: "/v1/tenant/jose-keys",
          headers: auth(key),
          payload: { jwk, use, alg },
        });
      expect(
        (await reg(admin, { ...signer.publicJwk, kid: "merchant-sig-1" }, "sig", "ES256"))
          .statusCode,
      ).toBe(201);
      expect(
        (
          await reg(
            admin,
            { ...responseKey.publicJwk, kid: "merchant-enc-1" },
            "enc",
            "ECDH-ES+A256KW",
          )
        ).statusCode,
      ).toBe(201);
      // Another tenant registers its own key under the same kid as ours.
      expect(
        (await reg(other.key, { ...rogue.publicJwk, kid: "merchant-sig-2" }, "sig", "ES256"))
          .statusCode,
      ).toBe(201);
    });
    afterAll(async () => vault?.close());

    const tokenizeRequest = (number: string = CARDS.visa) => ({
      card: { number, exp_month: EXP_MONTH, exp_year: EXP_YEAR },
    });

    async function vaultKey(): Promise<{ kid: string; key: unknown }> {
      const { keys } = (
        await vault.app.inject({ method: "GET", url: "/v1/capture/jwks" })
      ).json() as {
        keys: { kid: string; alg: string }[];
      };
      const jwk = keys.find((k) => k.alg === "ECDH-ES+A256KW") as { kid: string; alg: string };
      return { kid: jwk.kid, key: await importJWK(jwk, jwk.alg) };
    }

    async function nested(
      opts: {
        claims?: Record<string, unknown>;
        signWith?: KeyObject;
        kid?: string;
        jwsHeader?: Record<string, unknown>;
        jweHeader?: Record<string, unknown>;
        request?: unknown;
        /** The JWS payload as written, for keys JavaScript objects cannot carry (`__proto__`). */
        rawClaims?: (claims: string) => string;
      } = {},
    ): Promise<string> {
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        iss: vault.tenantId,
        aud: VAULT,
        iat: now,
        exp: now + 120,
        jti: randomUUID(),
        htm: "POST",
        htu: `${VAULT}/v1/tokens`,
        request: opts.request ?? tokenizeRequest(),
        ...opts.claims,
      };
      const text = JSON.stringify(claims);
      const jws = await new CompactSign(new TextEncoder().encode(opts.rawClaims?.(text) ?? text))
        .setProtectedHeader({ alg: "ES256", kid: opts.kid ?? "merchant-sig-1", ...opts.jwsHeader })
        .sign(opts.signWith ?? signer.privateKey);
      const { kid, key } = await vaultKey();
      return new CompactEncrypt(new TextEncoder().encode(jws))
        .setProtectedHeader({
          alg: "ECDH-ES+A256KW",
          enc: "A256GCM",
          kid,
          cty: "JWT",
          ...opts.jweHeader,
        })
        .encrypt(key as never);
    }

    async function post(body: string, headers: Record<string, string> = {}, key = writer) {
      return vault.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: { ...auth(key), "content-type": "application/jose", ...headers },
        payload: body,
      });
    }

    it("tokenizes from a signed and encrypted request, and encrypts the response to the tenant's key", async () => {
      const plain = await post(await nested());
      expect(plain.statusCode, plain.body).toBe(201);
      expect(plain.json()).toMatchObject({ card: { last4: "4242" } });

      const res = await post(await nested({ request: tokenizeRequest(CARDS.mastercard) }), {
        accept: "application/jose",
      });
      expect(res.statusCode).toBe(201);
      expect(res.headers["content-type"]).toMatch(/^application\/jose/);
      expect(res.body).not.toContain("5555");
      const opened = await compactDecrypt(res.body, responseKey.privateKey);
      expect(opened.protectedHeader).toMatchObject({
        alg: "ECDH-ES+A256KW",
        enc: "A256GCM",
        kid: "merchant-enc-1",
      });
      const token = JSON.parse(new TextDecoder().decode(opened.plaintext)) as {
        card: { last4: string };
      };
      expect(token.card.last4).toBe("4444");
    });

    it("refuses replays, other routes and methods, other audiences, stale requests, and wrong issuers", async () => {
      const once = await nested({ request: tokenizeRequest(CARDS.visa4) });
      expect((await post(once)).statusCode).toBe(201);
      expectProblem(await post(once), "JWT_REPLAYED");
      const before = await tokenRowCount(vault);
      const now = Math.floor(Date.now() / 1000);
      const cases: [string, Record<string, unknown>][] = [
        ["JWT_CLAIMS_INVALID", { htu: `${VAULT}/v1/tokens/batch` }],
        ["JWT_CLAIMS_INVALID", { htm: "PUT" }],
        ["JWT_CLAIMS_INVALID", { aud: "https://other.vault" }],
        ["JWT_CLAIMS_INVALID", { iss: other.tenantId }],
        ["JWT_CLAIMS_INVALID", { exp: now + 3600 }],
        ["JWT_EXPIRED", { iat: now - 600, exp: now - 400 }],
        ["JWT_NOT_YET_VALID", { iat: now + 200, exp: now + 400 }],
      ];
      for (const [code, claims] of cases) {
        expectProblem(
          await post(
            await nested({ claims: { ...claims, request: tokenizeRequest(CARDS.visa2) } }),
          ),
          code as never,
        );
      }
      expect(await tokenRowCount(vault)).toBe(before);
    });

    it("a signature by an unregistered, another tenant's or a revoked key is refused like any bad payload (JWE_INVALID)", async () => {
      const before = await tokenRowCount(vault);
      expectProblem(await post(await nested({ signWith: rogue.privateKey })), "JWE_INVALID");
      // Tenant B's registered key, used with tenant A's API key.
      expectProblem(
        await post(await nested({ signWith: rogue.privateKey, kid: "merchant-sig-2" })),
        "JWE_INVALID",
      );
      // Embedded keys and key URLs are never used to find the key.
      expectProblem(
        await post(
          await nested({ signWith: rogue.privateKey, jwsHeader: { jwk: rogue.publicJwk } }),
        ),
        "JWE_INVALID",
      );
      expectProblem(
        await post(await nested({ jwsHeader: { jku: "https://attacker.example/jwks" } })),
        "JWE_INVALID",
      );
      // alg none: an unsigned inner token.
      const now = Math.floor(Date.now() / 1000);
      const unsigned = [
        Buffer.from(JSON.stringify({ alg: "none", kid: "merchant-sig-1" })).toString("base64url"),
        Buffer.from(
          JSON.stringify({
            iss: vault.tenantId,
            aud: VAULT,
            iat: now,
            exp: now + 60,
            jti: randomUUID(),
            htm: "POST",
            htu: `${VAULT}/v1/tokens`,
            request: tokenizeRequest(),
          }),
        ).toString("base64url"),
        "",
      ].join(".");
      const { kid, key } = await vaultKey();
      const wrapped = await new CompactEncrypt(new TextEncoder().encode(unsigned))
        .setProtectedHeader({ alg: "ECDH-ES+A256KW", enc: "A256GCM", kid, cty: "JWT" })
        .encrypt(key as never);
      expectProblem(await post(wrapped), "JWE_INVALID");
      expect(await tokenRowCount(vault)).toBe(before);

      // Revoked at once.
      const del = await vault.app.inject({
        method: "DELETE",
        url: "/v1/tenant/jose-keys/merchant-sig-1",
        headers: auth(admin),
      });
      expect(del.statusCode).toBe(204);
      expectProblem(await post(await nested()), "JWE_INVALID");
      // A kid in any form registration takes (here a KMS key ARN) can be revoked.
      const arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
      const arnKey = await vault.app.inject({
        method: "POST",
        url: "/v1/tenant/jose-keys",
        headers: auth(admin),
        payload: { jwk: { ...rogue.publicJwk, kid: arn }, use: "sig" },
      });
      expect(arnKey.statusCode, arnKey.body).toBe(201);
      const revokeArn = await vault.app.inject({
        method: "DELETE",
        url: `/v1/tenant/jose-keys/${encodeURIComponent(arn)}`,
        headers: auth(admin),
      });
      expect(revokeArn.statusCode, revokeArn.body).toBe(204);
      // Another tenant's key is a 404, like a missing one.
      expectProblem(
        await vault.app.inject({
          method: "DELETE",
          url: "/v1/tenant/jose-keys/merchant-sig-2",
          headers: auth(admin),
        }),
        "JOSE_KEY_NOT_FOUND",
      );
      // Re-register under a new kid for the tests that follow.
      const again = await vault.app.inject({
        method: "POST",
        url: "/v1/tenant/jose-keys",
        headers: auth(admin),
        payload: { jwk: { ...signer.publicJwk, kid: "merchant-sig-3" }, use: "sig", alg: "ES256" },
      });
      expect(again.statusCode).toBe(201);
    });

    it("the outer JWE must be cty JWT, with no zip, and an encrypted response needs a registered key", async () => {
      expectProblem(
        await post(await nested({ kid: "merchant-sig-3", jweHeader: { cty: undefined } })),
        "JWE_INVALID",
      );
      expectProblem(
        await post(await nested({ kid: "merchant-sig-3", jweHeader: { zip: "DEF" } })),
        "JWE_INVALID",
      );
      expectProblem(await post("not.a.jwe"), "JWE_INVALID");
      // Asking for an encrypted response with a JSON body is refused: the reply would be plain.
      expectProblem(
        await vault.app.inject({
          method: "POST",
          url: "/v1/tokens",
          headers: { ...auth(writer), accept: "application/jose" },
          payload: tokenizeRequest(),
        }),
        "UNSUPPORTED_MEDIA_TYPE",
      );
      // Tenant B has no encryption key: refused before anything is written.
      const before = await tokenRowCount(vault, other.tenantId);
      const fromB = await nested({
        signWith: rogue.privateKey,
        kid: "merchant-sig-2",
        claims: { iss: other.tenantId },
      });
      expectProblem(
        await post(fromB, { accept: "application/jose" }, other.key),
        "JOSE_KEY_NOT_FOUND",
      );
      expect(await tokenRowCount(vault, other.tenantId)).toBe(before);
      // Its plain-response twin goes through (a different request: the jti was not spent).
      const plainFromB = await nested({
        signWith: rogue.privateKey,
        kid: "merchant-sig-2",
        claims: { iss: other.tenantId },
      });
      expect((await post(plainFromB, {}, other.key)).statusCode).toBe(201);
      // The inner request is validated like a JSON one.
      expectFieldError(
        await post(
          await nested({ kid: "merchant-sig-3", request: tokenizeRequest("4242424242424241") }),
        ),
        "card.number",
        "PAN_LUHN",
      );
    });

    it("keys are per environment: one registered with a pv_test_ key does not sign live requests", async () => {
      const testAdmin = await vault.newKey(vault.tenantId, ["keys:manage"], "test");
      const testOnly = ecPair();
      const reg = await vault.app.inject({
        method: "POST",
        url: "/v1/tenant/jose-keys",
        headers: auth(testAdmin),
        payload: { jwk: { ...testOnly.publicJwk, kid: "test-sig-1" }, use: "sig" },
      });
      expect(reg.statusCode).toBe(201);
      const live = await nested({ signWith: testOnly.privateKey, kid: "test-sig-1" });
      expectProblem(await post(live), "JWE_INVALID");
      const listed = await vault.app.inject({
        method: "GET",
        url: "/v1/tenant/jose-keys",
        headers: auth(admin),
      });
      expect((listed.json() as { keys: { kid: string }[] }).keys.map((k) => k.kid)).not.toContain(
        "test-sig-1",
      );
    });

    it("the signed request gets the JSON body's checks: no __proto__ key, no NUL", async () => {
      const before = await tokenRowCount(vault);
      const proto = await nested({
        kid: "merchant-sig-3",
        request: { ...tokenizeRequest(CARDS.visa3), metadata: { order: "1" } },
        rawClaims: (text) => text.replace('"order":"1"', '"__proto__":{"isAdmin":"1"}'),
      });
      expectProblem(await post(proto), "FORBIDDEN_JSON_KEY");
      const nul = await nested({
        kid: "merchant-sig-3",
        request: { ...tokenizeRequest(CARDS.visa3), metadata: { order: "a\u0000b" } },
      });
      expectProblem(await post(nul), "INVALID_UNICODE");
      expect(await tokenRowCount(vault)).toBe(before);
    });

    it("registration takes public keys of allowed types and sizes only", async () => {
      const reg = (jwk: Record<string, unknown>, use: string, alg: string) =>
        vault.app.inject({
          method: "POST",
          url: "/v1/tenant/jose-keys",
          headers: auth(admin),
          payload: { jwk, use, alg },
        });
      const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
      const rsa1024 = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({
        format: "jwk",
      });
      const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey.export({
        format: "jwk",
      });
      for (const [jwk, use, alg, field] of [
        [privateKey.export({ format: "jwk" }), "sig", "ES256", "jwk"],
        [{ kty: "oct", k: "c2VjcmV0" }, "sig", "HS256", "jwk"],
        [rsa1024, "sig", "PS256", "jwk"],
        [p384, "sig", "ES256", "jwk"],
        [{ ...signer.publicJwk, alg: "RS256" }, "sig", "ES256", "jwk"],
        [signer.publicJwk, "sig", "RS256", "alg"],
        [signer.publicJwk, "enc", "ES256", "alg"],
        [signer.publicJwk, "sig", "none", "alg"],
      ] as const) {
        expectFieldError(await reg(jwk as Record<string, unknown>, use, alg), field, "JWK_INVALID");
      }
      expectProblem(
        await reg({ ...signer.publicJwk, kid: "merchant-enc-1" }, "enc", "ECDH-ES+A256KW"),
        "JOSE_KEY_EXISTS",
      );
      const writerOnly = await vault.app.inject({
        method: "POST",
        url: "/v1/tenant/jose-keys",
        headers: auth(writer),
        payload: { jwk: signer.publicJwk, use: "sig", alg: "ES256" },
      });
      expectProblem(writerOnly, "INSUFFICIENT_SCOPE");
    });
  });
}
