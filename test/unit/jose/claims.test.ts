import { describe, expect, it } from "vitest";
import { type ClaimsPolicy, checkClaims, parseClaims } from "../../../src/jose/claims.js";
import { JwtClaimsInvalid } from "../../../src/jose/claims-error.js";
import { normalizeHtu } from "../../../src/jose/htu.js";

const NOW = new Date("2030-01-01T00:00:00Z");
const T = NOW.getTime() / 1000;
const POLICY: ClaimsPolicy = {
  issuer: "client_42",
  audience: "https://vault.example",
  maxLifetimeSec: 300,
  now: NOW,
  htm: "POST",
  htu: "https://vault.example/v1/tokens",
};
const GOOD = {
  iss: "client_42",
  aud: "https://vault.example",
  iat: T - 10,
  exp: T + 200,
  jti: "jti-1",
  htm: "POST",
  htu: "https://vault.example/v1/tokens",
};

function codeOf(payload: unknown, policy: ClaimsPolicy = POLICY): string {
  try {
    checkClaims(payload, policy);
    return "ok";
  } catch (err) {
    if (err instanceof JwtClaimsInvalid) return err.code;
    throw err;
  }
}

describe("checkClaims", () => {
  it("returns typed claims and the replay window", () => {
    const out = checkClaims({ ...GOOD, sub: "ten_1", aud: ["x", "https://vault.example"] }, POLICY);
    expect(out).toMatchObject({
      iss: "client_42",
      sub: "ten_1",
      jti: "jti-1",
      exp: GOOD.exp,
      iat: GOOD.iat,
    });
    expect(out.aud).toEqual(["x", "https://vault.example"]);
    expect(out.replayUntil).toBe(GOOD.exp + 30);
    expect(Object.isFrozen(out.claims)).toBe(true);
  });

  it.each([
    ["expired", { ...GOOD, iat: T - 100, exp: T - 31 }, "JWT_EXPIRED"],
    ["expired exactly at exp + skew", { ...GOOD, iat: T - 100, exp: T - 30 }, "JWT_EXPIRED"],
    ["within the skew after exp", { ...GOOD, iat: T - 100, exp: T - 29 }, "ok"],
    ["iat in the future beyond skew", { ...GOOD, iat: T + 31, exp: T + 100 }, "JWT_NOT_YET_VALID"],
    ["iat in the future within skew", { ...GOOD, iat: T + 29, exp: T + 100 }, "ok"],
    ["nbf in the future", { ...GOOD, nbf: T + 60 }, "JWT_NOT_YET_VALID"],
    ["lifetime too long", { ...GOOD, iat: T - 10, exp: T + 291 }, "JWT_LIFETIME"],
    ["exp before iat", { ...GOOD, iat: T, exp: T - 1 }, "JWT_CLAIMS"],
    ["wrong audience", { ...GOOD, aud: "https://other.example" }, "JWT_AUDIENCE"],
    ["empty audience list", { ...GOOD, aud: [] }, "JWT_CLAIMS"],
    ["wrong issuer", { ...GOOD, iss: "client_43" }, "JWT_ISSUER"],
    ["missing issuer", { ...GOOD, iss: undefined }, "JWT_CLAIMS"],
    ["missing jti", { ...GOOD, jti: undefined }, "JWT_CLAIMS"],
    ["empty jti", { ...GOOD, jti: "" }, "JWT_CLAIMS"],
    ["overlong jti", { ...GOOD, jti: "j".repeat(257) }, "JWT_CLAIMS"],
    ["string exp", { ...GOOD, exp: String(T + 10) }, "JWT_CLAIMS"],
    ["missing iat", { ...GOOD, iat: undefined }, "JWT_CLAIMS"],
    ["NaN-ish exp", { ...GOOD, exp: null }, "JWT_CLAIMS"],
    ["sub not a string", { ...GOOD, sub: 7 }, "JWT_CLAIMS"],
    ["wrong method", { ...GOOD, htm: "GET" }, "JWT_HTM"],
    ["lower-case method", { ...GOOD, htm: "post" }, "JWT_HTM"],
    ["missing htm", { ...GOOD, htm: undefined }, "JWT_CLAIMS"],
    ["another route", { ...GOOD, htu: "https://vault.example/v1/tokens/batch" }, "JWT_HTU"],
    ["another host", { ...GOOD, htu: "https://evil.example/v1/tokens" }, "JWT_HTU"],
    ["http instead of https", { ...GOOD, htu: "http://vault.example/v1/tokens" }, "JWT_HTU"],
    ["not a URL", { ...GOOD, htu: "/v1/tokens" }, "JWT_HTU"],
    [
      "query and fragment are ignored",
      { ...GOOD, htu: "https://vault.example/v1/tokens?x=1#y" },
      "ok",
    ],
    [
      "case of scheme and host, default port",
      { ...GOOD, htu: "HTTPS://Vault.Example:443/v1/tokens" },
      "ok",
    ],
    [
      "percent-encoded unreserved characters",
      { ...GOOD, htu: "https://vault.example/v1/%74okens" },
      "ok",
    ],
    ["not an object", ["x"], "JWT_CLAIMS"],
  ])("%s", (_name, payload, code) => {
    expect(codeOf(payload)).toBe(code);
  });

  it("makes iss optional only when no issuer is required, and still types it", () => {
    const { issuer: _issuer, ...noIssuer } = POLICY;
    expect(codeOf({ ...GOOD, iss: undefined }, noIssuer)).toBe("ok");
    expect(codeOf({ ...GOOD, iss: 1 }, noIssuer)).toBe("JWT_CLAIMS");
  });

  it("names the claim at fault, never its value", () => {
    try {
      checkClaims({ ...GOOD, aud: "https://other.example" }, POLICY);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(JwtClaimsInvalid);
      expect((err as JwtClaimsInvalid).claim).toBe("aud");
      expect(String(err)).not.toContain("other.example");
    }
  });

  it("rejects a policy that could never be safe", () => {
    expect(() => checkClaims(GOOD, { ...POLICY, clockSkewSec: 3600 })).toThrow(TypeError);
    expect(() => checkClaims(GOOD, { ...POLICY, maxLifetimeSec: 0 })).toThrow(TypeError);
    expect(() => checkClaims(GOOD, { ...POLICY, audience: [] })).toThrow(TypeError);
    expect(() => checkClaims(GOOD, { ...POLICY, htu: "vault" })).toThrow(TypeError);
  });
});

describe("parseClaims", () => {
  it("accepts a JSON object and refuses anything else", () => {
    expect(parseClaims(new TextEncoder().encode('{"a":1}'))).toEqual({ a: 1 });
    for (const text of ["[1]", "1", "null", '"x"', "{", ""]) {
      expect(() => parseClaims(new TextEncoder().encode(text))).toThrow(JwtClaimsInvalid);
    }
    expect(() => parseClaims(Uint8Array.of(0x7b, 0xff, 0x7d))).toThrow(JwtClaimsInvalid);
  });
});

describe("normalizeHtu (RFC 9449 §4.3)", () => {
  it.each([
    ["https://A.example/p?q#f", "https://a.example/p"],
    ["https://a.example:443/./x/../p", "https://a.example/p"],
    ["https://a.example/%7e%2f", "https://a.example/~%2F"],
    ["http://a.example:8080/p", "http://a.example:8080/p"],
  ])("%s → %s", (input, expected) => {
    expect(normalizeHtu(input)).toBe(expected);
  });

  it.each(["ftp://a.example/p", "https://user:pw@a.example/p", "a.example/p", ""])(
    "refuses %s",
    (input) => {
      expect(normalizeHtu(input)).toBeUndefined();
    },
  );
});
