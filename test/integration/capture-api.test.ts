import { compactVerify, decodeJwt, decodeProtectedHeader, importJWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auth, expectProblem } from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

const MERCHANT = "https://shop.example";

for (const driver of DRIVERS) {
  describe(`capture API on ${driver.name}`, () => {
    let vault: TestVault;
    let writer: string;
    let reader: string;

    beforeAll(async () => {
      vault = await startTestVault(driver);
      writer = await vault.newKey(vault.tenantId, ["tokens:write"]);
      reader = await vault.newKey(vault.tenantId, ["tokens:read"]);
    });
    afterAll(async () => vault?.close());

    async function newSession(body: unknown = { origins: [MERCHANT] }, key = writer) {
      return vault.app.inject({
        method: "POST",
        url: "/v1/capture/sessions",
        headers: auth(key),
        payload: body as Record<string, unknown>,
      });
    }

    it("publishes an ECDH-ES+A256KW P-256 key and an RSA-OAEP-256 key, public halves only", async () => {
      const res = await vault.app.inject({ method: "GET", url: "/v1/capture/jwks" });
      expect(res.statusCode).toBe(200);
      expect(res.headers["cache-control"]).toMatch(/^public, max-age=\d+$/);
      const { keys } = res.json() as { keys: Record<string, string>[] };
      const ec = keys.find((k) => k.alg === "ECDH-ES+A256KW");
      const rsa = keys.find((k) => k.alg === "RSA-OAEP-256");
      expect(ec).toMatchObject({ kty: "EC", crv: "P-256", use: "enc" });
      expect(rsa).toMatchObject({ kty: "RSA", use: "enc", e: "AQAB" });
      expect(Buffer.from(rsa?.n ?? "", "base64url").length * 8).toBe(3072);
      for (const key of keys) {
        expect(key.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
        for (const secret of ["d", "p", "q", "dp", "dq", "qi", "k"])
          expect(key).not.toHaveProperty(secret);
      }
      expect(keys.some((k) => k.use === "sig")).toBe(false);
    });

    it("signs a capture session (ES256, iss, aud, sub = tenant, jti, exp ≤ 15 min) for tokens:write", async () => {
      const res = await newSession();
      expect(res.statusCode).toBe(201);
      const body = res.json() as {
        id: string;
        session: string;
        expires_at: string;
        frame_url: string;
      };
      const header = decodeProtectedHeader(body.session);
      expect(header).toMatchObject({ alg: "ES256", typ: "payvault-capture-session+jwt" });
      const claims = decodeJwt(body.session);
      expect(claims).toMatchObject({
        iss: "https://vault.test",
        aud: "https://vault.test/capture",
        sub: vault.tenantId,
        jti: body.id,
        origins: [MERCHANT],
      });
      expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBeLessThanOrEqual(900);
      expect(new URL(body.frame_url).searchParams.get("session")).toBe(body.session);
      const session = await vault.core.captureSessions.verify(body.session);
      expect(session).toMatchObject({ id: body.id, tenantId: vault.tenantId, origins: [MERCHANT] });
      // The signature verifies with the vault's public key: it is a real ES256 JWS.
      const key = await vault.core.joseKeys.findKey(header.kid as string, "sig");
      const jwk = key?.publicKey.export({ format: "jwk" });
      await expect(
        compactVerify(body.session, await importJWK({ ...jwk, alg: "ES256" })),
      ).resolves.toBeDefined();
    });

    it("refuses sessions without tokens:write, with bad origins, or too long", async () => {
      expectProblem(await newSession({ origins: [MERCHANT] }, reader), "INSUFFICIENT_SCOPE");
      for (const origin of [
        "http://shop.example",
        "https://shop.example/path",
        "https://*.example",
        "javascript:alert(1)",
        "null",
      ]) {
        const res = await newSession({ origins: [origin] });
        expectProblem(res, "VALIDATION_FAILED");
        expect(res.json().errors[0]).toMatchObject({ field: "origins.0", code: "ORIGIN_INVALID" });
      }
      expectProblem(await newSession({ origins: [] }), "VALIDATION_FAILED");
      expectProblem(
        await newSession({ origins: [MERCHANT], ttl_seconds: 901 }),
        "VALIDATION_FAILED",
      );
      // Loopback http:// is allowed for local development.
      expect((await newSession({ origins: ["http://127.0.0.1:8080"] })).statusCode).toBe(201);
    });

    it("a tampered or re-signed session does not verify", async () => {
      const { session } = (await newSession()).json() as { session: string };
      const [h, p, s] = session.split(".") as [string, string, string];
      const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
      const forged = Buffer.from(JSON.stringify({ ...claims, sub: "ten_other" })).toString(
        "base64url",
      );
      await expect(vault.core.captureSessions.verify(`${h}.${forged}.${s}`)).rejects.toThrow(
        "the capture session is invalid or has expired",
      );
      const none = Buffer.from(
        JSON.stringify({ alg: "none", typ: "payvault-capture-session+jwt" }),
      ).toString("base64url");
      await expect(vault.core.captureSessions.verify(`${none}.${p}.`)).rejects.toThrow(
        "the capture session is invalid or has expired",
      );
    });
  });
}
