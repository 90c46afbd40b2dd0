import type { CryptoKey, JWK } from "jose";
import * as jose from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import type { JoseForCapture } from "../../../static/capture/capture-client.js";
import {
  CLAIMS_LIFETIME_SECONDS,
  captureKeyOf,
  createCaptureClient,
  sessionIdOf,
} from "../../../static/capture/capture-client.js";
import { testCards } from "./brand-table.js";

const VAULT = "https://vault.test";
const NOW_MS = Date.parse("2026-06-15T12:00:00Z");
const card = {
  number: testCards.valid[0]?.number ?? "",
  exp_month: 12,
  exp_year: 2030,
  cvc: "123",
  name: "Ada Lovelace",
};

let session: string;
let ecPrivate: CryptoKey;
let jwks: { keys: JWK[] };

beforeAll(async () => {
  const signing = await jose.generateKeyPair("ES256");
  session = await new jose.SignJWT({ origins: ["https://shop.test"] })
    .setProtectedHeader({ alg: "ES256" })
    .setJti("cs_test_session")
    .setIssuedAt()
    .sign(signing.privateKey);
  const ec = await jose.generateKeyPair("ECDH-ES+A256KW", { crv: "P-256" });
  const rsa = await jose.generateKeyPair("RSA-OAEP-256", { modulusLength: 2048 });
  ecPrivate = ec.privateKey;
  jwks = {
    keys: [
      { ...(await jose.exportJWK(rsa.publicKey)), kid: "rsa-1", use: "enc", alg: "RSA-OAEP-256" },
      { ...(await jose.exportJWK(ec.publicKey)), kid: "ec-1", use: "enc", alg: "ECDH-ES+A256KW" },
    ],
  };
});

interface Call {
  url: string;
  init: RequestInit | undefined;
}

/** A fetch that answers the JWKS and tokenize URLs and records every call. */
function fakeVault(
  tokenize: (body: { session: string; payload: string }) => Response | Promise<Response>,
  options: { jwksFailures?: number; date?: string } = {},
) {
  const calls: Call[] = [];
  let failures = options.jwksFailures ?? 0;
  const fetch = async (input: URL, init?: RequestInit): Promise<Response> => {
    calls.push({ url: input.toString(), init });
    if (input.pathname === "/v1/capture/jwks") {
      if (failures-- > 0) return new Response("down", { status: 503 });
      const headers = { "content-type": "application/json", date: options.date ?? "" };
      return new Response(JSON.stringify(jwks), { status: 200, headers });
    }
    return tokenize(JSON.parse(String(init?.body)));
  };
  return { fetch, calls };
}

function client(fetch: ReturnType<typeof fakeVault>["fetch"], now = () => NOW_MS) {
  return createCaptureClient({
    session,
    audience: VAULT,
    baseUrl: VAULT,
    jose: jose as unknown as JoseForCapture,
    fetch,
    now,
    randomUUID: () => crypto.randomUUID(),
  });
}

const created = (body: unknown) =>
  new Response(JSON.stringify(body), {
    status: 201,
    headers: { "content-type": "application/json" },
  });

describe("capture client", () => {
  it("reads the session id from the session's jti, without verifying it", () => {
    expect(sessionIdOf(session, jose.decodeJwt)).toBe("cs_test_session");
    const noJti = `${session.split(".")[0]}.${Buffer.from("{}").toString("base64url")}.x`;
    expect(() => sessionIdOf(noJti, jose.decodeJwt)).toThrow(TypeError);
  });

  it("uses the first ECDH-ES+A256KW key of the JWKS, wherever it is listed", () => {
    expect(captureKeyOf(jwks).kid).toBe("ec-1");
    expect(() => captureKeyOf({ keys: jwks.keys.slice(0, 1) })).toThrow(TypeError);
    expect(() => captureKeyOf({})).toThrow(TypeError);
  });

  it("encrypts the contract's claims into a compact JWE the vault's private key opens", async () => {
    const { fetch } = fakeVault(() => created({}));
    const jwe = await client(fetch).encryptCard(card);
    expect(jwe.split(".")).toHaveLength(5);
    expect(jwe).not.toContain(card.number);
    const { plaintext, protectedHeader } = await jose.compactDecrypt(jwe, ecPrivate);
    expect(protectedHeader).toMatchObject({
      alg: "ECDH-ES+A256KW",
      enc: "A256GCM",
      kid: "ec-1",
      cty: "JWT",
    });
    expect(protectedHeader.epk).toMatchObject({ kty: "EC", crv: "P-256" });
    const claims = JSON.parse(new TextDecoder().decode(plaintext));
    expect(claims).toEqual({
      iss: "cs_test_session",
      aud: VAULT,
      iat: NOW_MS / 1000,
      exp: NOW_MS / 1000 + CLAIMS_LIFETIME_SECONDS,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      card,
    });
  });

  it("gives every payload its own jti", async () => {
    const { fetch } = fakeVault(() => created({}));
    const c = client(fetch);
    const jtiOf = async () =>
      JSON.parse(
        new TextDecoder().decode(
          (await jose.compactDecrypt(await c.encryptCard(card), ecPrivate)).plaintext,
        ),
      ).jti;
    expect(await jtiOf()).not.toBe(await jtiOf());
  });

  it("fetches the JWKS once, and again only after a failed fetch", async () => {
    const { fetch, calls } = fakeVault(() => created({ id: "tok_1", card: {} }), {
      jwksFailures: 1,
    });
    const c = client(fetch);
    await expect(c.tokenize(card)).rejects.toThrow();
    await c.tokenize(card);
    await c.tokenize(card);
    const jwksCalls = calls.filter((call) => call.url.endsWith("/v1/capture/jwks"));
    expect(jwksCalls).toHaveLength(2);
    expect(jwksCalls[0]?.init).toMatchObject({ credentials: "omit", cache: "no-store" });
  });

  it("posts only the session and the JWE, and hands on only the token and masked card", async () => {
    let sent: Record<string, unknown> = {};
    const { fetch, calls } = fakeVault((body) => {
      sent = body;
      return created({
        id: "tok_abc",
        format: "random",
        fingerprint: "fp_1",
        duplicate: false,
        card: { brand: "visa", last4: "4242", exp_month: 12, exp_year: 2030, bin: "42424242" },
      });
    });
    const result = await client(fetch).tokenize(card);
    expect(Object.keys(sent).sort()).toEqual(["payload", "session"]);
    expect(sent.session).toBe(session);
    const post = calls.find((call) => call.url === `${VAULT}/v1/capture/tokenize`);
    expect(post?.init).toMatchObject({ method: "POST", credentials: "omit" });
    expect(JSON.stringify(post?.init?.body)).not.toContain(card.number);
    expect(result).toEqual({
      ok: true,
      token: "tok_abc",
      card: { brand: "visa", last4: "4242", exp_month: 12, exp_year: 2030 },
    });
  });

  it("takes a deduplicated card (200) as success too, and a body without a token as failure", async () => {
    const duplicate = fakeVault(
      () =>
        new Response(JSON.stringify({ id: "tok_old", duplicate: true, card: { last4: "4242" } }), {
          status: 200,
        }),
    );
    expect(await client(duplicate.fetch).tokenize(card)).toMatchObject({
      ok: true,
      token: "tok_old",
    });
    const empty = fakeVault(() => created({}));
    expect(await client(empty.fetch).tokenize(card)).toMatchObject({ ok: false });
  });

  it("returns the vault's problem code and field errors", async () => {
    const problem = {
      code: "VALIDATION_FAILED",
      errors: [{ field: "card.number", code: "PAN_LUHN", message: "…" }],
    };
    const { fetch } = fakeVault(
      () =>
        new Response(JSON.stringify(problem), {
          status: 400,
          headers: { "content-type": "application/problem+json" },
        }),
    );
    expect(await client(fetch).tokenize(card)).toEqual({
      ok: false,
      status: 400,
      code: "VALIDATION_FAILED",
      errors: problem.errors,
    });
  });

  it("reports a failed POST as NETWORK, and a non-JSON error by its status", async () => {
    const down = fakeVault(() => Promise.reject(new TypeError("Failed to fetch")));
    expect(await client(down.fetch).tokenize(card)).toMatchObject({ ok: false, code: "NETWORK" });
    const proxy = fakeVault(() => new Response("<html>bad gateway</html>", { status: 502 }));
    expect(await client(proxy.fetch).tokenize(card)).toEqual({
      ok: false,
      status: 502,
      code: undefined,
      errors: [],
    });
  });

  it("corrects a browser clock that is minutes off with the vault's Date header", async () => {
    const vaultNow = NOW_MS + 10 * 60_000;
    const { fetch } = fakeVault(() => created({}), { date: new Date(vaultNow).toUTCString() });
    const jwe = await client(fetch).encryptCard(card);
    const claims = JSON.parse(
      new TextDecoder().decode((await jose.compactDecrypt(jwe, ecPrivate)).plaintext),
    );
    expect(claims.iat).toBe(vaultNow / 1000);
    // Within half a minute the browser's own clock is trusted.
    const near = fakeVault(() => created({}), { date: new Date(NOW_MS + 5_000).toUTCString() });
    const nearClaims = JSON.parse(
      new TextDecoder().decode(
        (await jose.compactDecrypt(await client(near.fetch).encryptCard(card), ecPrivate))
          .plaintext,
      ),
    );
    expect(nearClaims.iat).toBe(NOW_MS / 1000);
  });
});
