import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  assertStandardWebhookVerifierOptions,
  signStandardWebhook,
  standardWebhookSecret,
  standardWebhookSignature,
  verifyStandardWebhook,
} from "../../../src/webhooks/signatures/standard-webhooks.js";
import {
  clockAt,
  loadWebhookVectors,
  NOW,
  PROCESSOR_BODY,
  reserialized,
  withOneByteChanged,
} from "./fixtures.js";

interface StandardWebhooksVector {
  source: string;
  secret: string;
  id: string;
  timestamp: number;
  payload: string;
  signature: string;
}

const vector = loadWebhookVectors<StandardWebhooksVector>("standard-webhooks.json");

const CURRENT = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
const PREVIOUS = `whsec_${Buffer.alloc(24, 9).toString("base64")}`;
const ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";

function signed(body: Buffer, at = NOW, secrets = [CURRENT]) {
  return signStandardWebhook(body, {
    id: ID,
    secrets: secrets.map(standardWebhookSecret),
    clock: clockAt(at),
  });
}

function verify(
  body: Buffer,
  headers: Record<string, string | string[]>,
  at = NOW,
  secrets = [CURRENT],
) {
  return verifyStandardWebhook(body, headers, {
    secrets: secrets.map(standardWebhookSecret),
    clock: clockAt(at),
  });
}

describe("Standard Webhooks published example", () => {
  it("carries its source", () => {
    expect(vector.source).toMatch(/standard-webhooks/);
  });

  it("signs the example exactly", () => {
    const secret = standardWebhookSecret(vector.secret);
    const body = Buffer.from(vector.payload, "utf8");
    expect(standardWebhookSignature(secret, vector.id, vector.timestamp, body)).toBe(
      vector.signature,
    );
    const headers = signStandardWebhook(body, {
      id: vector.id,
      secrets: [standardWebhookSecret(vector.secret)],
      clock: clockAt(vector.timestamp),
    });
    expect(headers).toEqual({
      "webhook-id": vector.id,
      "webhook-timestamp": String(vector.timestamp),
      "webhook-signature": vector.signature,
    });
  });

  it("verifies the example's headers at its own time, and refuses them 301 s later", () => {
    const headers = {
      "webhook-id": vector.id,
      "webhook-timestamp": String(vector.timestamp),
      "webhook-signature": vector.signature,
    };
    const body = Buffer.from(vector.payload, "utf8");
    expect(verify(body, headers, vector.timestamp, [vector.secret])).toEqual({
      ok: true,
      value: { id: vector.id, timestamp: vector.timestamp, secretIndex: 0 },
    });
    expect(verify(body, headers, vector.timestamp + 301, [vector.secret])).toMatchObject({
      reason: "timestamp_too_old",
    });
  });

  it("refuses the example's body re-serialized by JSON.stringify (the space goes)", () => {
    const headers = {
      "webhook-id": vector.id,
      "webhook-timestamp": String(vector.timestamp),
      "webhook-signature": vector.signature,
    };
    const again = reserialized(Buffer.from(vector.payload, "utf8"));
    expect(again.toString()).toBe('{"test":2432232314}');
    expect(verify(again, headers, vector.timestamp, [vector.secret])).toMatchObject({
      reason: "signature_mismatch",
    });
  });
});

describe("Standard Webhooks verification", () => {
  it("accepts a signed body and returns the id for deduplication", () => {
    expect(verify(PROCESSOR_BODY, { ...signed(PROCESSOR_BODY) })).toEqual({
      ok: true,
      value: { id: ID, timestamp: NOW, secretIndex: 0 },
    });
  });

  it("signs HMAC-SHA256(base64-decoded secret, id.timestamp.body) (computed independently)", () => {
    const key = Buffer.alloc(32, 7);
    const mac = createHmac("sha256", key).update(`${ID}.${NOW}.`).update(PROCESSOR_BODY).digest();
    expect(signed(PROCESSOR_BODY)["webhook-signature"]).toBe(`v1,${mac.toString("base64")}`);
  });

  it("refuses a wrong secret, a changed byte, a re-serialized body and a non-Buffer body", () => {
    const headers = { ...signed(PROCESSOR_BODY) };
    const other = `whsec_${Buffer.alloc(32, 8).toString("base64")}`;
    expect(verify(PROCESSOR_BODY, headers, NOW, [other])).toMatchObject({
      reason: "signature_mismatch",
      header: "webhook-signature",
    });
    expect(verify(withOneByteChanged(PROCESSOR_BODY), headers)).toMatchObject({
      reason: "signature_mismatch",
    });
    expect(verify(reserialized(PROCESSOR_BODY), headers)).toMatchObject({
      reason: "signature_mismatch",
    });
    const parsed = JSON.parse(PROCESSOR_BODY.toString()) as unknown as Buffer;
    expect(verify(parsed, headers)).toEqual({ ok: false, reason: "body_not_raw" });
  });

  it("binds the id and the timestamp: changing either breaks the signature", () => {
    const headers = signed(PROCESSOR_BODY);
    expect(verify(PROCESSOR_BODY, { ...headers, "webhook-id": "msg_other" })).toMatchObject({
      reason: "signature_mismatch",
    });
    expect(
      verify(PROCESSOR_BODY, { ...headers, "webhook-timestamp": String(NOW + 1) }),
    ).toMatchObject({
      reason: "signature_mismatch",
    });
  });

  it("accepts ±300 s and refuses ±301 s", () => {
    const headers = { ...signed(PROCESSOR_BODY) };
    expect(verify(PROCESSOR_BODY, headers, NOW + 300).ok).toBe(true);
    expect(verify(PROCESSOR_BODY, headers, NOW - 300).ok).toBe(true);
    expect(verify(PROCESSOR_BODY, headers, NOW + 301)).toMatchObject({
      reason: "timestamp_too_old",
    });
    expect(verify(PROCESSOR_BODY, headers, NOW - 301)).toMatchObject({
      reason: "timestamp_in_future",
    });
  });
});

describe("Standard Webhooks rotation and other versions", () => {
  it("signs with old and new secret; a receiver with either accepts", () => {
    const headers = { ...signed(PROCESSOR_BODY, NOW, [PREVIOUS, CURRENT]) };
    expect(headers["webhook-signature"].split(" ")).toHaveLength(2);
    expect(verify(PROCESSOR_BODY, headers, NOW, [CURRENT])).toMatchObject({ ok: true });
    expect(verify(PROCESSOR_BODY, headers, NOW, [PREVIOUS])).toMatchObject({ ok: true });
  });

  it("accepts either configured secret and reports which", () => {
    const byOld = { ...signed(PROCESSOR_BODY, NOW, [PREVIOUS]) };
    expect(verify(PROCESSOR_BODY, byOld, NOW, [CURRENT, PREVIOUS])).toMatchObject({
      value: { secretIndex: 1 },
    });
  });

  it("ignores v1a and unknown versions, and finds the valid v1 among wrong ones", () => {
    const headers = signed(PROCESSOR_BODY);
    const wrong = `v1,${Buffer.alloc(32, 1).toString("base64")}`;
    const value = `v1a,${Buffer.alloc(64, 2).toString("base64")} v2,abc ${wrong} ${headers["webhook-signature"]}`;
    expect(verify(PROCESSOR_BODY, { ...headers, "webhook-signature": value })).toMatchObject({
      ok: true,
    });
  });

  it("refuses a header with no v1 entry", () => {
    const headers = signed(PROCESSOR_BODY);
    const value = headers["webhook-signature"].replace("v1,", "v1a,");
    expect(verify(PROCESSOR_BODY, { ...headers, "webhook-signature": value })).toMatchObject({
      reason: "no_supported_signature",
    });
  });
});

describe("Standard Webhooks headers", () => {
  const good = signed(PROCESSOR_BODY);

  it.each(["webhook-id", "webhook-timestamp", "webhook-signature"] as const)(
    "refuses a missing %s",
    (name) => {
      const headers: Record<string, string> = { ...good };
      delete headers[name];
      expect(verify(PROCESSOR_BODY, headers)).toEqual({
        ok: false,
        reason: "missing_header",
        header: name,
      });
    },
  );

  it("refuses a repeated header", () => {
    expect(verify(PROCESSOR_BODY, { ...good, "webhook-id": [ID, ID] })).toMatchObject({
      reason: "duplicate_header",
    });
    const joined = `${good["webhook-signature"]}, ${good["webhook-signature"]}`;
    expect(verify(PROCESSOR_BODY, { ...good, "webhook-signature": joined })).toMatchObject({
      reason: "malformed_header",
    });
  });

  it.each([
    ["an id with a dot", { "webhook-id": "msg.1" }, "malformed_header"],
    ["an id with a space", { "webhook-id": "msg 1" }, "malformed_header"],
    ["a timestamp that is text", { "webhook-timestamp": "hello" }, "malformed_timestamp"],
    ["a timestamp in milliseconds", { "webhook-timestamp": `${NOW}000` }, "malformed_timestamp"],
    ["a negative timestamp", { "webhook-timestamp": "-1" }, "malformed_timestamp"],
    ["a signature entry without version", { "webhook-signature": "abc" }, "malformed_header"],
    [
      "a v1 entry that is not base64",
      { "webhook-signature": "v1,dawfeoifkpqwoekfpqoekf" },
      "malformed_header",
    ],
    [
      "a truncated v1 entry",
      { "webhook-signature": good["webhook-signature"].slice(0, 8) },
      "malformed_header",
    ],
    ["an empty v1 entry", { "webhook-signature": "v1," }, "malformed_header"],
  ])("refuses %s", (_label, patch, reason) => {
    expect(verify(PROCESSOR_BODY, { ...good, ...patch })).toMatchObject({ ok: false, reason });
  });

  it("refuses oversized headers before parsing them", () => {
    expect(
      verify(PROCESSOR_BODY, { ...good, "webhook-id": `msg_${"a".repeat(253)}` }),
    ).toMatchObject({
      reason: "header_too_large",
    });
    expect(verify(PROCESSOR_BODY, { ...good, "webhook-timestamp": "1".repeat(33) })).toMatchObject({
      reason: "header_too_large",
    });
    const huge = `${good["webhook-signature"]} v9,${"x".repeat(2048)}`;
    expect(verify(PROCESSOR_BODY, { ...good, "webhook-signature": huge })).toMatchObject({
      reason: "header_too_large",
    });
    const many = Array.from({ length: 17 }, () => good["webhook-signature"]).join(" ");
    expect(verify(PROCESSOR_BODY, { ...good, "webhook-signature": many })).toMatchObject({
      reason: "header_too_large",
    });
  });
});

describe("Standard Webhooks secrets and signer", () => {
  it.each([
    ["no prefix", Buffer.alloc(32, 1).toString("base64")],
    ["23 bytes", `whsec_${Buffer.alloc(23, 1).toString("base64")}`],
    ["65 bytes", `whsec_${Buffer.alloc(65, 1).toString("base64")}`],
    ["not base64", "whsec_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"],
    ["unpadded base64", `whsec_${Buffer.alloc(32, 1).toString("base64").replace("=", "")}`],
  ])("refuses a secret with %s, without repeating it", (_label, secret) => {
    expect(() => standardWebhookSecret(secret)).toThrow(TypeError);
    try {
      standardWebhookSecret(secret);
    } catch (error) {
      expect(String(error)).not.toContain(secret);
    }
  });

  it("refuses to sign an id containing a dot, or with no secret", () => {
    const secrets = [standardWebhookSecret(CURRENT)];
    expect(() =>
      signStandardWebhook(PROCESSOR_BODY, { id: "a.b", secrets, clock: clockAt(NOW) }),
    ).toThrow(TypeError);
    expect(() =>
      signStandardWebhook(PROCESSOR_BODY, { id: ID, secrets: [], clock: clockAt(NOW) }),
    ).toThrow(RangeError);
  });

  it("validates verifier options", () => {
    expect(() =>
      assertStandardWebhookVerifierOptions({ secrets: [], clock: clockAt(NOW) }),
    ).toThrow();
    const secrets = [standardWebhookSecret(CURRENT)];
    expect(() =>
      assertStandardWebhookVerifierOptions({ secrets, clock: clockAt(NOW), toleranceSeconds: 1.5 }),
    ).toThrow(RangeError);
  });
});
