import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { SecretBytes } from "../../../src/crypto/secret.js";
import {
  assertHmacScheme,
  assertHmacSecrets,
  type HmacScheme,
  signHmacWebhook,
  verifyHmacWebhook,
} from "../../../src/webhooks/signatures/hmac.js";
import {
  clockAt,
  loadWebhookVectors,
  NOW,
  PROCESSOR_BODY,
  reserialized,
  withOneByteChanged,
} from "./fixtures.js";

interface GithubVector {
  source: string;
  header: string;
  secret: string;
  payload: string;
  signature: string;
}

const github = loadWebhookVectors<GithubVector>("github-hmac.json");

const GITHUB: HmacScheme = {
  signatureHeader: "x-hub-signature-256",
  algorithm: "sha256",
  encoding: "hex",
  prefix: "sha256=",
};

const TIMED: HmacScheme = {
  signatureHeader: "x-acme-signature",
  algorithm: "sha512",
  encoding: "base64",
  timestamp: { header: "x-acme-timestamp", separator: ":" },
};

const secret = (text: string) => SecretBytes.from(Buffer.from(text, "utf8"));
const CURRENT = "hmac-current-secret-4b1e9c";
const PREVIOUS = "hmac-previous-secret-7d2a0f";

function sign(scheme: HmacScheme, body: Buffer, at = NOW, key = CURRENT) {
  return signHmacWebhook(body, { scheme, secret: secret(key), clock: clockAt(at) });
}

function verify(
  scheme: HmacScheme,
  body: Buffer,
  headers: Record<string, string | string[]>,
  at = NOW,
  keys = [CURRENT],
) {
  return verifyHmacWebhook(body, headers, {
    scheme,
    secrets: keys.map(secret),
    clock: clockAt(at),
  });
}

describe("generic HMAC: GitHub's published example", () => {
  it("carries its source", () => {
    expect(github.source).toMatch(/GitHub/);
  });

  it("verifies and reproduces X-Hub-Signature-256 for the documented secret and payload", () => {
    const body = Buffer.from(github.payload, "utf8");
    const headers = { [github.header]: github.signature };
    expect(verify(GITHUB, body, headers, NOW, [github.secret])).toEqual({
      ok: true,
      value: { secretIndex: 0 },
    });
    expect(sign(GITHUB, body, NOW, github.secret)).toEqual(headers);
  });
});

describe.each([
  ["sha256/hex/prefix, no timestamp", GITHUB],
  ["sha512/base64 with timestamp header", TIMED],
])("generic HMAC (%s)", (_label, scheme) => {
  it("accepts a signed body", () => {
    expect(verify(scheme, PROCESSOR_BODY, sign(scheme, PROCESSOR_BODY))).toMatchObject({
      ok: true,
      value: { secretIndex: 0 },
    });
  });

  it("refuses a wrong secret, a changed byte, a re-serialized body and a non-Buffer body", () => {
    const headers = sign(scheme, PROCESSOR_BODY);
    expect(verify(scheme, PROCESSOR_BODY, headers, NOW, [PREVIOUS])).toMatchObject({
      reason: "signature_mismatch",
      header: scheme.signatureHeader,
    });
    expect(verify(scheme, withOneByteChanged(PROCESSOR_BODY), headers)).toMatchObject({
      reason: "signature_mismatch",
    });
    expect(verify(scheme, reserialized(PROCESSOR_BODY), headers)).toMatchObject({
      reason: "signature_mismatch",
    });
    const text = PROCESSOR_BODY.toString() as unknown as Buffer;
    expect(verify(scheme, text, headers)).toEqual({ ok: false, reason: "body_not_raw" });
  });

  it("accepts any configured secret during rotation and reports which", () => {
    const headers = sign(scheme, PROCESSOR_BODY, NOW, PREVIOUS);
    expect(verify(scheme, PROCESSOR_BODY, headers, NOW, [CURRENT, PREVIOUS])).toMatchObject({
      value: { secretIndex: 1 },
    });
  });

  it("refuses a missing, repeated, unprefixed, mis-sized or oversized signature", () => {
    const name = scheme.signatureHeader;
    const headers = sign(scheme, PROCESSOR_BODY);
    const value = headers[name]!;
    const prefix = scheme.prefix ?? "";
    const cases: [string | string[] | undefined, string][] = [
      [undefined, "missing_header"],
      [[value, value], "duplicate_header"],
      [value.slice(prefix.length, -2), "malformed_header"],
      [`${prefix}!!${value.slice(prefix.length + 2)}`, "malformed_header"],
      [value.slice(0, -4), "malformed_header"],
      [`${value}A`, "header_too_large"],
    ];
    for (const [bad, reason] of cases) {
      const patched: Record<string, string | string[]> = { ...headers };
      if (bad === undefined) {
        delete patched[name];
      } else {
        patched[name] = bad;
      }
      expect(verify(scheme, PROCESSOR_BODY, patched), String(bad)).toMatchObject({ reason });
    }
  });
});

describe("generic HMAC with a timestamp header", () => {
  const headers = sign(TIMED, PROCESSOR_BODY);

  it("signs timestamp + separator + body (computed independently)", () => {
    const mac = createHmac("sha512", CURRENT)
      .update(`${NOW}:`)
      .update(PROCESSOR_BODY)
      .digest("base64");
    expect(headers).toEqual({ "x-acme-signature": mac, "x-acme-timestamp": String(NOW) });
  });

  it("accepts ±300 s and refuses ±301 s", () => {
    expect(verify(TIMED, PROCESSOR_BODY, headers, NOW + 300)).toMatchObject({
      ok: true,
      value: { timestamp: NOW },
    });
    expect(verify(TIMED, PROCESSOR_BODY, headers, NOW - 300).ok).toBe(true);
    expect(verify(TIMED, PROCESSOR_BODY, headers, NOW + 301)).toMatchObject({
      reason: "timestamp_too_old",
      header: "x-acme-timestamp",
    });
    expect(verify(TIMED, PROCESSOR_BODY, headers, NOW - 301)).toMatchObject({
      reason: "timestamp_in_future",
    });
  });

  it("binds the timestamp, and refuses a missing or malformed one", () => {
    const moved = { ...headers, "x-acme-timestamp": String(NOW + 1) };
    expect(verify(TIMED, PROCESSOR_BODY, moved)).toMatchObject({ reason: "signature_mismatch" });
    const { "x-acme-timestamp": _dropped, ...without } = headers;
    expect(verify(TIMED, PROCESSOR_BODY, without)).toMatchObject({ reason: "missing_header" });
    for (const bad of ["12a", "-1", "1.5", `${NOW}000`]) {
      expect(verify(TIMED, PROCESSOR_BODY, { ...headers, "x-acme-timestamp": bad })).toMatchObject({
        reason: "malformed_timestamp",
      });
    }
    expect(
      verify(TIMED, PROCESSOR_BODY, { ...headers, "x-acme-timestamp": "1".repeat(33) }),
    ).toMatchObject({ reason: "header_too_large" });
  });
});

describe("generic HMAC configuration", () => {
  it("accepts the two example schemes", () => {
    expect(() => assertHmacScheme(GITHUB)).not.toThrow();
    expect(() => assertHmacScheme(TIMED)).not.toThrow();
  });

  it.each([
    ["an upper-case header", { ...GITHUB, signatureHeader: "X-Hub-Signature" }],
    ["an unknown algorithm", { ...GITHUB, algorithm: "md5" as "sha256" }],
    ["an unknown encoding", { ...GITHUB, encoding: "base32" as "hex" }],
    ["a prefix with spaces", { ...GITHUB, prefix: "sha 256=" }],
    ["the same header twice", { ...TIMED, timestamp: { header: "x-acme-signature" } }],
    ["a zero tolerance", { ...TIMED, timestamp: { header: "x-ts", toleranceSeconds: 0 } }],
    ["an empty separator", { ...TIMED, timestamp: { header: "x-ts", separator: "" } }],
  ])("refuses %s", (_label, scheme) => {
    expect(() => assertHmacScheme(scheme)).toThrow();
  });

  it("refuses no secrets and secrets shorter than 16 bytes", () => {
    expect(() => assertHmacSecrets([])).toThrow(RangeError);
    expect(() => assertHmacSecrets([secret("fifteen-bytes!!")])).toThrow(RangeError);
    expect(() => assertHmacSecrets([secret("sixteen-bytes!!!")])).not.toThrow();
  });
});
