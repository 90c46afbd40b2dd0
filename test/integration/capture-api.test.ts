import { randomUUID } from "node:crypto";
import { CompactEncrypt, compactVerify, decodeJwt, decodeProtectedHeader, importJWK } from "jose";
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
import { flipSegment } from "../support/tamper.js";
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
      writer = await vault.newKey(vault.tenantId, ["capture"]);
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
      // The default, ECDH-ES on P-256, comes first.
      expect(keys[0]?.alg).toBe("ECDH-ES+A256KW");
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

    it("signs a capture session (ES256, iss, aud, sub = tenant, jti, exp ≤ 15 min) for the capture scope", async () => {
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
      const jwk = key?.publicKey?.export({ format: "jwk" });
      await expect(
        compactVerify(body.session, await importJWK({ ...jwk, alg: "ES256" })),
      ).resolves.toBeDefined();
    });

    it("refuses sessions without the capture scope, with bad origins, or too long", async () => {
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
      // Loopback http:// is for local development: with a test key only.
      expectProblem(await newSession({ origins: ["http://127.0.0.1:8080"] }), "VALIDATION_FAILED");
      const testKey = await vault.newKey(vault.tenantId, ["capture"], "test");
      const dev = await newSession({ origins: ["http://127.0.0.1:8080"] }, testKey);
      expect(dev.statusCode).toBe(201);
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

    interface Jwk extends Record<string, unknown> {
      kid: string;
      alg: string;
    }

    async function jwks(): Promise<Jwk[]> {
      return (
        (await vault.app.inject({ method: "GET", url: "/v1/capture/jwks" })).json() as {
          keys: Jwk[];
        }
      ).keys;
    }

    /** What the capture frame does: claims for this session and vault, encrypted to a published key. */
    async function encryptCard(
      sessionId: string,
      card: Record<string, unknown>,
      opts: {
        alg?: string;
        claims?: Record<string, unknown>;
        header?: Record<string, unknown>;
      } = {},
    ): Promise<string> {
      const alg = opts.alg ?? "ECDH-ES+A256KW";
      const jwk = (await jwks()).find((k) => k.alg === alg) as Jwk;
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        iss: sessionId,
        aud: "https://vault.test",
        iat: now,
        exp: now + 300,
        jti: randomUUID(),
        card,
        ...opts.claims,
      };
      return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(claims)))
        .setProtectedHeader({ alg, enc: "A256GCM", kid: jwk.kid, cty: "JWT", ...opts.header })
        .encrypt(await importJWK(jwk, alg));
    }

    async function captureTokenize(session: string, payload: string) {
      return vault.app.inject({
        method: "POST",
        url: "/v1/capture/tokenize",
        payload: { session, payload },
      });
    }

    const card = (number: string, extra: Record<string, unknown> = {}) => ({
      number,
      exp_month: EXP_MONTH,
      exp_year: EXP_YEAR,
      cvc: "123",
      name: "Ada Lovelace",
      ...extra,
    });

    it("tokenizes a card encrypted to the ECDH-ES key, holds its CVC, and answers only what a checkout may show", async () => {
      const { id, session } = (await newSession()).json() as { id: string; session: string };
      const res = await captureTokenize(session, await encryptCard(id, card(CARDS.visa)));
      expect(res.statusCode, res.body).toBe(201);
      const token = res.json() as { id: string; card: Record<string, unknown> };
      expect(Object.keys(token).sort()).toEqual(["card", "id"]);
      expect(token.card).toEqual({
        brand: "visa",
        last4: "4242",
        exp_month: EXP_MONTH,
        exp_year: EXP_YEAR,
      });
      const cvc = await vault.core.cvcs.take(
        { tenantId: vault.tenantId, environment: "live" },
        token.id,
      );
      expect(cvc?.revealDigits()).toBe("123");
      // Audited as the session's doing.
      const { rows } = await vault.core.db.query<{ actor: string }>(
        "SELECT actor FROM audit_events WHERE action = 'token.create' AND object_id = $1",
        [token.id],
      );
      expect(rows).toEqual([{ actor: `capture:${id}` }]);
      // The same card again: the same token, and nothing tells the caller it was already held.
      const again = await captureTokenize(session, await encryptCard(id, card(CARDS.visa)));
      expect(again.statusCode).toBe(201);
      expect(again.json()).toEqual(token);
      expect(vault.logs.text).not.toContain(CARDS.visa);
    });

    it("the public route takes no RSA-OAEP payload (its private-key cost is for authenticated callers)", async () => {
      const { id, session } = (await newSession()).json() as { id: string; session: string };
      const rsa = await encryptCard(id, card(CARDS.mastercard), { alg: "RSA-OAEP-256" });
      expectProblem(await captureTokenize(session, rsa), "JWE_INVALID");
    });

    it("a session takes 20 submissions, whatever they are, then 429 CAPTURE_ATTEMPTS_EXCEEDED", async () => {
      const { id, session } = (await newSession()).json() as { id: string; session: string };
      for (let i = 0; i < 20; i++) {
        expectProblem(await captureTokenize(session, "a.b.c.d.e"), "JWE_INVALID");
      }
      const good = await encryptCard(id, card(CARDS.visa4));
      expectProblem(await captureTokenize(session, good), "CAPTURE_ATTEMPTS_EXCEEDED");
      // Another session is counted apart.
      const other = (await newSession()).json() as { id: string; session: string };
      const res = await captureTokenize(
        other.session,
        await encryptCard(other.id, card(CARDS.visa4)),
      );
      expect(res.statusCode).toBe(201);
    });

    it("refuses a replayed payload, another session's payload, a stale or future one, and another vault's", async () => {
      const a = (await newSession()).json() as { id: string; session: string };
      const b = (await newSession()).json() as { id: string; session: string };
      const payload = await encryptCard(a.id, card(CARDS.visa2));
      expect((await captureTokenize(a.session, payload)).statusCode).toBe(201);
      expectProblem(await captureTokenize(a.session, payload), "JWT_REPLAYED");
      const before = await tokenRowCount(vault);
      const now = Math.floor(Date.now() / 1000);
      const cases: [string, Awaited<ReturnType<typeof encryptCard>>][] = [
        ["JWT_CLAIMS_INVALID", await encryptCard(a.id, card(CARDS.visa3))],
        [
          "JWT_EXPIRED",
          await encryptCard(b.id, card(CARDS.visa3), {
            claims: { iat: now - 400, exp: now - 100 },
          }),
        ],
        [
          "JWT_NOT_YET_VALID",
          await encryptCard(b.id, card(CARDS.visa3), {
            claims: { iat: now + 120, exp: now + 300 },
          }),
        ],
        [
          "JWT_CLAIMS_INVALID",
          await encryptCard(b.id, card(CARDS.visa3), { claims: { exp: now + 3600 } }),
        ],
        [
          "JWT_CLAIMS_INVALID",
          await encryptCard(b.id, card(CARDS.visa3), { claims: { aud: "https://other.vault" } }),
        ],
        [
          "JWT_CLAIMS_INVALID",
          await encryptCard(b.id, card(CARDS.visa3), { claims: { jti: undefined } }),
        ],
      ];
      for (const [code, jwe] of cases)
        expectProblem(await captureTokenize(b.session, jwe), code as never);
      expect(await tokenRowCount(vault)).toBe(before);
    });

    it("every decryption failure is the same JWE_INVALID, and a bad session is CAPTURE_SESSION_INVALID", async () => {
      const { id, session } = (await newSession()).json() as { id: string; session: string };
      const good = await encryptCard(id, card(CARDS.visa));
      const flip = (i: number) => flipSegment(good, i, -1);
      const bodies = new Set<string>();
      for (const bad of [
        flip(1),
        flip(2),
        flip(3),
        flip(4),
        "a.b.c.d.e",
        good.slice(0, -1),
        `${good}.x`,
      ]) {
        const res = await captureTokenize(session, bad);
        expectProblem(res, "JWE_INVALID");
        const { request_id: _ignored, ...rest } = res.json() as Record<string, unknown>;
        bodies.add(JSON.stringify(rest));
      }
      expect(bodies.size).toBe(1);
      expectProblem(await captureTokenize(`${session}x`, good), "CAPTURE_SESSION_INVALID");
    });

    it("a card the frame should have refused is a field error naming the field, without the number", async () => {
      const { id, session } = (await newSession()).json() as { id: string; session: string };
      const bad = "4242424242424241";
      const res = await captureTokenize(session, await encryptCard(id, card(bad)));
      expectFieldError(res, "card.number", "PAN_LUHN");
      expect(res.body).not.toContain(bad);
    });
  });
}
