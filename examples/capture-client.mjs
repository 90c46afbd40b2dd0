// What the capture frame does in the browser (docs/capture.md), from Node: for demos, scripts and
// people without a browser at hand. It encrypts one card to the vault's published capture key and
// posts it with a capture session; the vault answers with a token.
//
//   PAYVAULT_URL=https://localhost:8443 PAYVAULT_CA=.payvault/tls/localhost.crt \
//   CAPTURE_SESSION=eyJhbGciOiJFUzI1NiIs… node examples/capture-client.mjs
//
// The session (the "session" of POST /v1/capture/sessions, or the first argument) is the only
// credential: no API key. The card defaults to a public test card (Visa 4242…, CVC 123); set
// CARD_NUMBER, CARD_EXP_MONTH, CARD_EXP_YEAR, CARD_CVC or CARD_NAME for another public test card,
// never a real one. Only the token id is printed on stdout, so a shell can keep it:
// TOKEN=$(node examples/capture-client.mjs). The card number is never printed.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import { CompactEncrypt, decodeJwt, importJWK } from "jose";

const vault = new URL(process.env.PAYVAULT_URL ?? "https://localhost:8443");
const ca = process.env.PAYVAULT_CA ? readFileSync(process.env.PAYVAULT_CA) : undefined;
const session = process.argv[2] ?? process.env.CAPTURE_SESSION;
if (!session) throw new Error("give the capture session as CAPTURE_SESSION or the first argument");

function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const request = https.request(
      new URL(path, vault),
      {
        method,
        ca,
        headers: body === undefined ? {} : { "content-type": "application/json" },
      },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => {
          text += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode, text }));
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

// 1. The session names what the payload's claims must say: the session's id (its jti) is the
//    payload's issuer, and the vault's origin (its iss) the payload's audience. Decoding is
//    enough here; the vault verifies the session's signature.
const { jti: sessionId, iss: vaultOrigin } = decodeJwt(session);

// 2. The vault's capture key: the first ECDH-ES+A256KW (P-256) key of the JWKS, as the frame
//    takes it. The RSA key there is for signed server-to-server requests only.
const jwks = await call("GET", "/v1/capture/jwks");
if (jwks.status !== 200) throw new Error(`GET /v1/capture/jwks: ${jwks.status}`);
const vaultKey = JSON.parse(jwks.text).keys.find((key) => key.alg === "ECDH-ES+A256KW");
if (vaultKey === undefined) throw new Error("the vault publishes no ECDH-ES+A256KW key");

// 3. The claims the frame encrypts: at most 5 minutes of life, a jti used once, the card.
const year = new Date().getUTCFullYear();
const card = {
  number: process.env.CARD_NUMBER ?? "4242424242424242",
  exp_month: Number(process.env.CARD_EXP_MONTH ?? 12),
  exp_year: Number(process.env.CARD_EXP_YEAR ?? year + 3),
  cvc: process.env.CARD_CVC ?? "123",
  ...(process.env.CARD_NAME ? { name: process.env.CARD_NAME } : {}),
};
const iat = Math.floor(Date.now() / 1000);
const claims = { iss: sessionId, aud: vaultOrigin, iat, exp: iat + 300, jti: randomUUID(), card };

// 4. A compact JWE (RFC 7516) to that key: a fresh ephemeral P-256 key per payload, A256GCM.
const payload = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(claims)))
  .setProtectedHeader({ alg: vaultKey.alg, enc: "A256GCM", kid: vaultKey.kid, cty: "JWT" })
  .encrypt(await importJWK(vaultKey, vaultKey.alg));

// 5. Post it with the session. The answer holds the token and the masked card only.
const res = await call("POST", "/v1/capture/tokenize", JSON.stringify({ session, payload }));
if (res.status !== 201) {
  // A problem document (RFC 9457) names fields and codes, never what was sent.
  let problem = {};
  try {
    problem = JSON.parse(res.text);
  } catch {}
  const fields = (problem.errors ?? []).map((e) => `${e.field}:${e.code}`).join(" ");
  process.stderr.write(`tokenize: ${res.status} ${problem.code ?? ""} ${fields}\n`);
  process.exit(1);
}
const token = JSON.parse(res.text);
process.stderr.write(`captured ${token.card.brand} ending in ${token.card.last4}\n`);
process.stdout.write(`${token.id}\n`);
