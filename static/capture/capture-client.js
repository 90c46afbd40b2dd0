/**
 * The frame's side of the capture contract: fetch the vault's capture key once, encrypt the
 * card claims into a compact JWE (RFC 7516) with jose on WebCrypto, and post it with the
 * session to POST /v1/capture/tokenize. The card leaves the browser only inside the JWE.
 *
 * `jose` is jose's browser build (CompactEncrypt, importJWK, decodeJwt) served by the vault;
 * `fetch`, `now` (ms) and `randomUUID` are injected so this module runs under test in Node.
 */

/** The capture key algorithm the vault publishes first (P-256 ECDH-ES with AES key wrap). */
export const KEY_ALG = "ECDH-ES+A256KW";
export const CONTENT_ENC = "A256GCM";
/** The vault refuses capture claims that live longer than five minutes. */
export const CLAIMS_LIFETIME_SECONDS = 300;
/** A browser clock further off than this is corrected with the vault's Date header. */
const CLOCK_TRUST_MS = 30_000;

/** The session token's `jti`: the session id the vault expects as the JWE claims' `iss`. */
export function sessionIdOf(session, decodeJwt) {
  const jti = decodeJwt(session).jti;
  if (typeof jti !== "string" || jti === "") throw new TypeError("the session has no jti");
  return jti;
}

/** The first published key for ECDH-ES+A256KW (RFC 7518 §4.6), as a JWK. */
export function captureKeyOf(jwks) {
  const keys = jwks !== null && typeof jwks === "object" ? jwks.keys : undefined;
  const jwk = Array.isArray(keys) ? keys.find((key) => key?.alg === KEY_ALG) : undefined;
  if (jwk === undefined || typeof jwk.kid !== "string") {
    throw new TypeError("the vault publishes no ECDH-ES+A256KW capture key");
  }
  return jwk;
}

/** The claims the vault checks (iss, aud, iat, exp ≤ 5 min, jti) around the card. */
export function captureClaims({ sessionId, audience, nowSeconds, jti, card }) {
  return {
    iss: sessionId,
    aud: audience,
    iat: nowSeconds,
    exp: nowSeconds + CLAIMS_LIFETIME_SECONDS,
    jti,
    card,
  };
}

/**
 * Only the fields the parent page may see: the token and the masked card. The vault answers
 * with its token view, whose `id` is the token.
 */
function tokenizedFrom(body) {
  const card = body.card ?? {};
  return {
    token: body.id ?? body.token,
    card: {
      brand: card.brand,
      last4: card.last4,
      exp_month: card.exp_month,
      exp_year: card.exp_year,
    },
  };
}

async function problemFrom(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's error page): the status alone decides the message.
  }
  const errors = Array.isArray(body?.errors) ? body.errors : [];
  const code = typeof body?.code === "string" ? body.code : undefined;
  return { ok: false, status: response.status, code, errors };
}

export function createCaptureClient({ session, audience, baseUrl, jose, fetch, now, randomUUID }) {
  const sessionId = sessionIdOf(session, jose.decodeJwt);
  let keyPromise;
  let clockOffsetMs = 0;

  async function loadKey() {
    const response = await fetch(new URL("/v1/capture/jwks", baseUrl), {
      credentials: "omit",
      // Fresh, not from the HTTP cache: its Date header also tells a wrong browser clock.
      cache: "no-store",
    });
    if (!response.ok) throw new Error("the capture keys could not be fetched");
    const served = Date.parse(response.headers.get("date") ?? "");
    if (Number.isFinite(served) && Math.abs(served - now()) > CLOCK_TRUST_MS) {
      clockOffsetMs = served - now();
    }
    const jwk = captureKeyOf(await response.json());
    return { kid: jwk.kid, key: await jose.importJWK(jwk, KEY_ALG) };
  }

  /** The key is fetched once; a failed fetch is forgotten so the next submit tries again. */
  function captureKey() {
    if (keyPromise === undefined) {
      keyPromise = loadKey().catch((err) => {
        keyPromise = undefined;
        throw err;
      });
    }
    return keyPromise;
  }

  async function encryptCard(card) {
    const { kid, key } = await captureKey();
    const claims = captureClaims({
      sessionId,
      audience,
      nowSeconds: Math.floor((now() + clockOffsetMs) / 1000),
      jti: randomUUID(),
      card,
    });
    const plaintext = new TextEncoder().encode(JSON.stringify(claims));
    try {
      return await new jose.CompactEncrypt(plaintext)
        .setProtectedHeader({ alg: KEY_ALG, enc: CONTENT_ENC, kid, cty: "JWT" })
        .encrypt(key);
    } finally {
      // The clear card is not kept in memory longer than the encryption needs it.
      plaintext.fill(0);
    }
  }

  /**
   * Encrypts and posts `card`. Resolves `{ ok: true, token, card }` or `{ ok: false, status,
   * code, errors }` (errors are the vault's field errors); a network failure is code NETWORK.
   */
  async function tokenize(card) {
    const payload = await encryptCard(card);
    let response;
    try {
      response = await fetch(new URL("/v1/capture/tokenize", baseUrl), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ session, payload }),
        credentials: "omit",
        cache: "no-store",
      });
    } catch {
      return { ok: false, status: 0, code: "NETWORK", errors: [] };
    }
    // 201 for a new token, 200 when the tenant already holds this card (deduplicated).
    if (response.status !== 201 && response.status !== 200) return problemFrom(response);
    const tokenized = tokenizedFrom(await response.json());
    if (typeof tokenized.token !== "string")
      return { ok: false, status: 0, code: undefined, errors: [] };
    return { ok: true, ...tokenized };
  }

  return { sessionId, captureKey, encryptCard, tokenize };
}
