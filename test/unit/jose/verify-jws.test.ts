import { createHmac, createPublicKey } from "node:crypto";
import { CompactSign, exportJWK, FlattenedSign, generateKeyPair } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { JWS_ALGS, type JwsAlg } from "../../../src/jose/algorithms.js";
import { validateTenantJwk } from "../../../src/jose/tenant-jwk.js";
import { type VerificationKeys, verifyJws } from "../../../src/jose/verify-jws.js";
import { flipBit } from "../../support/tamper.js";
import { expectRejected } from "./expect-rejected.js";
import { b64u, type SignerKey, sign, signerKey } from "./fixtures.js";
import { verificationKeyLookup } from "./key-lookup.js";

let es: SignerKey;
let ed: SignerKey;
let ps: SignerKey;
let keys: VerificationKeys;
const ALL: JwsAlg[] = [...JWS_ALGS];
const PAYLOAD = { jti: "j1", purpose: "test" };

beforeAll(async () => {
  [es, ed, ps] = await Promise.all([
    signerKey("ES256", "es"),
    signerKey("EdDSA", "ed"),
    signerKey("PS256", "ps"),
  ]);
  const registered = await Promise.all(
    [es, ed, ps].map((k) => validateTenantJwk(k.publicJwk, "sig")),
  );
  keys = verificationKeyLookup(registered);
});

/** Rebuilds a compact JWS with another header, signed over the new header by `signer`. */
function hmacJws(header: object, payload: object, secret: Buffer | string): string {
  const input = `${b64u(header)}.${b64u(payload)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

describe("verifyJws: accepted", () => {
  it.each(["ES256", "EdDSA", "PS256"])(
    "verifies %s with the registered key found by kid",
    async (alg) => {
      const key = { ES256: es, EdDSA: ed, PS256: ps }[alg] as SignerKey;
      const out = await verifyJws(await sign(key, PAYLOAD), keys, { algorithms: ALL });
      expect(JSON.parse(new TextDecoder().decode(out.payload))).toEqual(PAYLOAD);
      expect(out.kid).toBe(key.kid);
    },
  );

  it("honours the caller's narrower list and an explicit typ", async () => {
    const token = await sign(es, PAYLOAD, { typ: "capture-session+jwt" });
    await expect(
      verifyJws(token, keys, { algorithms: ["ES256"], typ: "application/capture-session+jwt" }),
    ).resolves.toBeDefined();
    await expectRejected(
      verifyJws(token, keys, { algorithms: ["EdDSA"] }),
      "JWS_INVALID",
      "alg_not_allowed",
    );
    await expectRejected(
      verifyJws(token, keys, { algorithms: ALL, typ: "JWT" }),
      "JWS_INVALID",
      "typ",
    );
    await expectRejected(
      verifyJws(await sign(es, PAYLOAD), keys, { algorithms: ALL, typ: "JWT" }),
      "JWS_INVALID",
      "typ",
    );
  });

  it("refuses to be configured with an algorithm outside the allowlist", async () => {
    const token = await sign(es, PAYLOAD);
    for (const algorithms of [[], ["HS256"], ["none"], ["RS256"]]) {
      await expect(verifyJws(token, keys, { algorithms: algorithms as JwsAlg[] })).rejects.toThrow(
        TypeError,
      );
    }
  });
});

describe("verifyJws: attacks", () => {
  it("refuses alg none, with or without a signature", async () => {
    for (const alg of ["none", "None", "NONE"]) {
      const unsigned = `${b64u({ alg, kid: es.kid })}.${b64u(PAYLOAD)}.`;
      await expectRejected(
        verifyJws(unsigned, keys, { algorithms: ALL }),
        "JWS_INVALID",
        "alg_not_allowed",
      );
      await expectRejected(
        verifyJws(`${unsigned}AAAA`, keys, { algorithms: ALL }),
        "JWS_INVALID",
        "alg_not_allowed",
      );
    }
  });

  it("refuses HS256 MACed with the public key's own bytes (algorithm confusion)", async () => {
    const spki = createPublicKey({ key: es.publicJwk, format: "jwk" }).export({
      format: "pem",
      type: "spki",
    });
    for (const secret of [
      spki,
      JSON.stringify(es.publicJwk),
      Buffer.from(es.publicJwk.x ?? "", "base64url"),
    ]) {
      const forged = hmacJws({ alg: "HS256", kid: es.kid }, PAYLOAD, secret);
      await expectRejected(
        verifyJws(forged, keys, { algorithms: ALL }),
        "JWS_INVALID",
        "alg_not_allowed",
      );
    }
  });

  it("refuses RS256 and every other algorithm off the list", async () => {
    const rsa = await generateKeyPair("RS256", { extractable: true });
    const token = await new CompactSign(new TextEncoder().encode("{}"))
      .setProtectedHeader({ alg: "RS256", kid: ps.kid })
      .sign(rsa.privateKey);
    await expectRejected(
      verifyJws(token, keys, { algorithms: ALL }),
      "JWS_INVALID",
      "alg_not_allowed",
    );
  });

  it("refuses a kid that points to a key of another algorithm", async () => {
    const token = await sign(es, PAYLOAD, { kid: ps.kid });
    await expectRejected(
      verifyJws(token, keys, { algorithms: ALL }),
      "JWS_INVALID",
      "key_mismatch",
    );
    const mislabelled = () => ({ alg: "ES256" as const, publicKey: ed.privateKey });
    await expectRejected(
      verifyJws(await sign(es, PAYLOAD), mislabelled, { algorithms: ALL }),
      "JWS_INVALID",
      "key_mismatch",
    );
  });

  it.each(["jwk", "jku", "x5u", "x5c"])(
    "refuses a %s header naming the attacker's key",
    async (name) => {
      const attacker = await generateKeyPair("ES256", { extractable: true });
      const value = {
        jwk: await exportJWK(attacker.publicKey),
        jku: "https://attacker.example/jwks",
        x5u: "https://attacker.example/c.pem",
        x5c: ["MIIB"],
      }[name];
      const token = await new CompactSign(new TextEncoder().encode(JSON.stringify(PAYLOAD)))
        .setProtectedHeader({ alg: "ES256", kid: es.kid, [name]: value })
        .sign(attacker.privateKey);
      await expectRejected(
        verifyJws(token, keys, { algorithms: ALL }),
        "JWS_INVALID",
        "header_forbidden",
      );
    },
  );

  it("refuses b64:false (RFC 7797) and unknown crit", async () => {
    // RFC 7797 §5: a detached-style compact JWS whose payload is signed as raw bytes
    const flat = await new FlattenedSign(new TextEncoder().encode("unencoded"))
      .setProtectedHeader({ alg: "ES256", kid: es.kid, b64: false, crit: ["b64"] })
      .sign(es.privateKey);
    const unencoded = `${flat.protected}.unencoded.${flat.signature}`;
    await expectRejected(verifyJws(unencoded, keys, { algorithms: ALL }), "JWS_INVALID", "b64");
    const b64Only = await sign(es, PAYLOAD, { b64: true });
    await expectRejected(verifyJws(b64Only, keys, { algorithms: ALL }), "JWS_INVALID", "b64");
    const crit = await new CompactSign(new TextEncoder().encode("{}"))
      .setProtectedHeader({ alg: "ES256", kid: es.kid, crit: ["x-ext"], "x-ext": 1 })
      .sign(es.privateKey, { crit: { "x-ext": true } });
    await expectRejected(verifyJws(crit, keys, { algorithms: ALL }), "JWS_INVALID", "crit");
  });

  it("refuses a missing or unknown kid", async () => {
    const noKid = await new CompactSign(new TextEncoder().encode("{}"))
      .setProtectedHeader({ alg: "ES256" })
      .sign(es.privateKey);
    await expectRejected(verifyJws(noKid, keys, { algorithms: ALL }), "JWS_INVALID", "kid_missing");
    await expectRejected(
      verifyJws(await sign(es, PAYLOAD, { kid: "other" }), keys, { algorithms: ALL }),
      "JWS_INVALID",
      "kid_unknown",
    );
  });

  it("refuses tampered payloads and signatures, and a JWS signed by another tenant's key", async () => {
    const token = await sign(es, PAYLOAD);
    const [h, p, s] = token.split(".");
    await expectRejected(
      verifyJws(`${h}.${b64u({ ...PAYLOAD, purpose: "other" })}.${s}`, keys, { algorithms: ALL }),
      "JWS_INVALID",
      "signature_invalid",
    );
    await expectRejected(
      verifyJws(`${h}.${p}.${flipBit(s as string, -1)}`, keys, { algorithms: ALL }),
      "JWS_INVALID",
      "signature_invalid",
    );
    const otherTenant = await signerKey("ES256", es.kid);
    await expectRejected(
      verifyJws(await sign(otherTenant, PAYLOAD), keys, { algorithms: ALL }),
      "JWS_INVALID",
      "signature_invalid",
    );
  });

  it("refuses oversize input, the JSON serialization and non-canonical encodings", async () => {
    await expectRejected(
      verifyJws("a".repeat(16 * 1024 + 1), keys, { algorithms: ALL }),
      "JWS_INVALID",
      "oversize",
    );
    const flat = await new FlattenedSign(new TextEncoder().encode("{}"))
      .setProtectedHeader({ alg: "ES256", kid: es.kid })
      .sign(es.privateKey);
    await expectRejected(
      verifyJws(JSON.stringify(flat), keys, { algorithms: ALL }),
      "JWS_INVALID",
      "not_compact",
    );
    const token = await sign(es, PAYLOAD);
    const [h, p, s] = token.split(".");
    for (const bad of [
      `${h}.${p}.`,
      `${h}.${p}`,
      `${h}. ${p}.${s}`,
      `${h}.${p}.${s}=`,
      `${h}.${p}.${s}.`,
    ]) {
      await expectRejected(verifyJws(bad, keys, { algorithms: ALL }), "JWS_INVALID");
    }
  });
});
