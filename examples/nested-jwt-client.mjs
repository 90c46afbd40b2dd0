// A PCI-scoped merchant backend tokenizing a card server to server (docs/capture.md):
// sign the request with your own key, encrypt it to the vault's key, read the encrypted reply.
//
//   PAYVAULT_URL=https://localhost:8443 PAYVAULT_CA=.payvault/tls/localhost.crt \
//   PAYVAULT_API_KEY=pv_live_… PAYVAULT_TENANT_ID=ten_… node examples/nested-jwt-client.mjs
//
// The API key needs `keys:manage` to register the keys (once) and `tokens:write` to tokenize. The
// card is a public test card. Your private keys would normally live in your own KMS or HSM:
// only their public halves are ever sent to the vault.
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import { CompactEncrypt, CompactSign, compactDecrypt, importJWK } from "jose";

const vault = new URL(process.env.PAYVAULT_URL ?? "https://localhost:8443");
const ca = process.env.PAYVAULT_CA ? readFileSync(process.env.PAYVAULT_CA) : undefined;
const apiKey = process.env.PAYVAULT_API_KEY;
if (!apiKey) throw new Error("set PAYVAULT_API_KEY");

function call(method, path, { body, type = "application/json", accept } = {}) {
  return new Promise((resolve, reject) => {
    const request = https.request(
      new URL(path, vault),
      {
        method,
        ca,
        headers: {
          authorization: `Bearer ${apiKey}`,
          ...(body === undefined ? {} : { "content-type": type }),
          ...(accept === undefined ? {} : { accept }),
        },
      },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => {
          text += chunk;
        });
        response.on("end", () =>
          resolve({ status: response.statusCode, type: response.headers["content-type"], text }),
        );
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

// 1. Once: register the public halves of a signing key and a response-encryption key.
const signing = generateKeyPairSync("ec", { namedCurve: "P-256" });
const receiving = generateKeyPairSync("ec", { namedCurve: "P-256" });
const suffix = randomUUID().slice(0, 8);
for (const [pair, use, alg] of [
  [signing, "sig", "ES256"],
  [receiving, "enc", "ECDH-ES+A256KW"],
]) {
  const jwk = { ...pair.publicKey.export({ format: "jwk" }), kid: `example-${use}-${suffix}` };
  const res = await call("POST", "/v1/tenant/jose-keys", {
    body: JSON.stringify({ jwk, use, alg }),
  });
  if (res.status !== 201) throw new Error(`registering the ${use} key: ${res.status} ${res.text}`);
}

// 2. Sign the tokenize request, bound to this vault, method and URL, for 2 minutes, once.
const now = Math.floor(Date.now() / 1000);
const tenantId = process.env.PAYVAULT_TENANT_ID;
if (!tenantId) throw new Error("set PAYVAULT_TENANT_ID (printed at the vault's first start)");
const claims = {
  iss: tenantId,
  aud: vault.origin,
  iat: now,
  exp: now + 120,
  jti: randomUUID(),
  htm: "POST",
  htu: new URL("/v1/tokens", vault).href,
  request: { card: { number: "4242424242424242", exp_month: 12, exp_year: 2034, cvc: "123" } },
};
const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
  .setProtectedHeader({ alg: "ES256", kid: `example-sig-${suffix}` })
  .sign(signing.privateKey);

// 3. Encrypt it to the vault's published capture key.
const { keys } = JSON.parse((await call("GET", "/v1/capture/jwks")).text);
const vaultKey = keys.find((key) => key.alg === "ECDH-ES+A256KW");
const jwe = await new CompactEncrypt(new TextEncoder().encode(jws))
  .setProtectedHeader({ alg: vaultKey.alg, enc: "A256GCM", kid: vaultKey.kid, cty: "JWT" })
  .encrypt(await importJWK(vaultKey, vaultKey.alg));

// 4. Send it; ask for the reply encrypted to our key.
const res = await call("POST", "/v1/tokens", {
  body: jwe,
  type: "application/jose",
  accept: "application/jose",
});
if (res.status !== 201 && res.status !== 200)
  throw new Error(`tokenize: ${res.status} ${res.text}`);
const { plaintext } = await compactDecrypt(res.text, receiving.privateKey);
const token = JSON.parse(new TextDecoder().decode(plaintext));
console.log(
  JSON.stringify({ status: res.status, content_type: res.type, token: token.id, card: token.card }),
);
