import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { randomBytes } from "../../../src/crypto/random.js";
import { combineShares, splitSecret } from "../../../src/crypto/shamir.js";
import {
  decodeShare,
  encodeShare,
  MAX_SHARE_TEXT_LENGTH,
  MAX_SHARE_VALUE_BYTES,
  ShareFormatError,
  type ShareFormatReason,
  type UnsealShare,
} from "../../../src/keys/unseal-share.js";

const SET_ID = "kset_4V8kqo2GZ3S1mXbTn7yWcD";
const PATTERN_VALUE = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
/** Share 2 of a 3-of-n set whose value is the bytes 00..1f (the example in the file header). */
const GOLDEN =
  "pvs1.kset_4V8kqo2GZ3S1mXbTn7yWcD.3.2.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8.e3b96095";

/** Appends the checksum computed independently of the code under test. */
function withChecksum(body: string): string {
  return `${body}.${createHash("sha256").update(body).digest("hex").slice(0, 8)}`;
}

function valuePartOf(text: string): string {
  return text.split(".")[4] ?? "";
}

/** Decoding must fail with a ShareFormatError whose message holds no 8-character run of `secretText`. */
function expectRefused(
  text: string,
  secretText: string,
  reason?: ShareFormatReason,
): ShareFormatError {
  let caught: unknown;
  try {
    decodeShare(text);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ShareFormatError);
  const error = caught as ShareFormatError;
  if (reason !== undefined) expect(error.reason).toBe(reason);
  const runs = Array.from({ length: Math.max(0, secretText.length - 7) }, (_, i) =>
    secretText.slice(i, i + 8),
  );
  expect(runs.filter((run) => error.message.includes(run))).toEqual([]);
  expect(error.message.length).toBeLessThan(100);
  return error;
}

const setIdArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const shareArb: fc.Arbitrary<UnsealShare> = fc.record({
  kekSetId: setIdArb,
  index: fc.integer({ min: 1, max: 255 }),
  threshold: fc.integer({ min: 2, max: 255 }),
  value: fc
    .uint8Array({ minLength: 1, maxLength: MAX_SHARE_VALUE_BYTES })
    .map((bytes) => Buffer.from(bytes)),
});
/** Shares the size of a real one (32-byte unseal key, kset_ id). */
const realisticShareArb: fc.Arbitrary<UnsealShare> = fc.record({
  kekSetId: fc.stringMatching(/^[0-9A-Za-z]{22}$/).map((s) => `kset_${s}`),
  index: fc.integer({ min: 1, max: 10 }),
  threshold: fc.integer({ min: 2, max: 10 }),
  value: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes)),
});

describe("encodeShare / decodeShare", () => {
  it("pins the format: pvs1.<set>.<threshold>.<index>.<base64url>.<8 hex of SHA-256>", () => {
    const text = encodeShare({ kekSetId: SET_ID, index: 2, threshold: 3, value: PATTERN_VALUE });
    expect(text).toBe(GOLDEN);
    expect(text).toBe(withChecksum(`pvs1.${SET_ID}.3.2.${PATTERN_VALUE.toString("base64url")}`));
    expect(decodeShare(GOLDEN)).toEqual({
      kekSetId: SET_ID,
      index: 2,
      threshold: 3,
      value: PATTERN_VALUE,
    });
  });

  it("round-trips every valid share", () => {
    fc.assert(
      fc.property(shareArb, (share) => {
        const text = encodeShare(share);
        expect(text).toMatch(/^pvs1\.[A-Za-z0-9_-]+\.\d+\.\d+\.[A-Za-z0-9_-]+\.[0-9a-f]{8}$/);
        expect(decodeShare(text)).toEqual(share);
      }),
      { numRuns: 500 },
    );
  });

  it("returns the value in memory of its own, not in Node's shared buffer pool", () => {
    const { value } = decodeShare(GOLDEN);
    expect(value.byteOffset).toBe(0);
    expect(value.buffer.byteLength).toBe(value.length);
  });

  it("carries the shares of a real split through text and back to the secret", () => {
    const secret = randomBytes(32);
    const texts = splitSecret(secret, 5, 3).map((s) =>
      encodeShare({ kekSetId: SET_ID, index: s.index, threshold: 3, value: s.value }),
    );
    const decoded = [texts[4], texts[0], texts[2]].map((t) => decodeShare(t ?? ""));
    expect(decoded.every((s) => s.kekSetId === SET_ID && s.threshold === 3)).toBe(true);
    expect(combineShares(decoded)).toEqual(secret);
  });

  it.each<[string, Partial<UnsealShare>]>([
    ["an empty set id", { kekSetId: "" }],
    ["a set id with a dot", { kekSetId: "kset.1" }],
    ["a set id of 65 characters", { kekSetId: "k".repeat(65) }],
    ["threshold 1", { threshold: 1 }],
    ["threshold 256", { threshold: 256 }],
    ["index 0", { index: 0 }],
    ["index 256", { index: 256 }],
    ["a fractional index", { index: 1.5 }],
    ["an empty value", { value: Buffer.alloc(0) }],
    ["a value that is too long", { value: Buffer.alloc(MAX_SHARE_VALUE_BYTES + 1) }],
  ])("encodeShare refuses %s", (_, change) => {
    const share = { kekSetId: SET_ID, index: 1, threshold: 2, value: PATTERN_VALUE, ...change };
    expect(() => encodeShare(share)).toThrow(RangeError);
  });
});

describe("the checksum", () => {
  /** Positions whose case does not matter: the prefix and the checksum. */
  const caseInsensitiveAt = (text: string, i: number) => i < 4 || i >= text.length - 8;

  it("catches any single-character substitution", () => {
    fc.assert(
      fc.property(
        realisticShareArb,
        fc.nat(),
        fc.integer({ min: 0x21, max: 0x7e }),
        (share, at, code) => {
          const text = encodeShare(share);
          const i = at % text.length;
          const original = text.charAt(i);
          const replacement = String.fromCharCode(code);
          fc.pre(replacement !== original);
          fc.pre(
            !(caseInsensitiveAt(text, i) && replacement.toLowerCase() === original.toLowerCase()),
          );
          const mutated = text.slice(0, i) + replacement + text.slice(i + 1);
          expectRefused(mutated, valuePartOf(text));
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("catches a character left out, one added, and two neighbours swapped", () => {
    fc.assert(
      fc.property(
        realisticShareArb,
        fc.nat(),
        fc.integer({ min: 0x21, max: 0x7e }),
        (share, at, code) => {
          const text = encodeShare(share);
          const i = at % (text.length - 1);
          const secret = valuePartOf(text);
          expectRefused(text.slice(0, i) + text.slice(i + 1), secret);
          expectRefused(text.slice(0, i) + String.fromCharCode(code) + text.slice(i), secret);
          const a = text.charAt(i);
          const b = text.charAt(i + 1);
          if (a !== b) {
            expectRefused(text.slice(0, i) + b + a + text.slice(i + 2), secret);
          }
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it("reports a mistyped value as a checksum failure, not as malformed", () => {
    const value = valuePartOf(GOLDEN);
    const typo = GOLDEN.replace(value, `${value.slice(0, 10)}X${value.slice(11)}`);
    const error = expectRefused(typo, value, "checksum");
    expect(error.message).toMatch(/checksum does not match/);
  });
});

describe("whitespace and case", () => {
  it("ignores whitespace anywhere (pasted with line breaks, indents, NBSP)", () => {
    const whitespaceArb = fc.constantFrom(" ", "  ", "\n", "\r\n", "\t", "\u00a0", "\u2003");
    fc.assert(
      fc.property(
        realisticShareArb,
        fc.array(fc.tuple(fc.nat(), whitespaceArb), { maxLength: 12 }),
        (share, inserts) => {
          let text = encodeShare(share);
          for (const [at, ws] of inserts) {
            const i = at % (text.length + 1);
            text = text.slice(0, i) + ws + text.slice(i);
          }
          expect(decodeShare(text)).toEqual(share);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("accepts a share wrapped in lines of 20 with surrounding blank lines", () => {
    const wrapped = `\n\n  ${GOLDEN.match(/.{1,20}/g)?.join("\r\n  ")}  \n`;
    expect(wrapped.split("\n").length).toBeGreaterThan(5);
    expect(decodeShare(wrapped).value).toEqual(PATTERN_VALUE);
  });

  it("ignores case in the prefix and the checksum only", () => {
    const upper = `PVS1${GOLDEN.slice(4, -8)}${GOLDEN.slice(-8).toUpperCase()}`;
    expect(upper).not.toBe(GOLDEN);
    expect(decodeShare(upper).value).toEqual(PATTERN_VALUE);
    const value = valuePartOf(GOLDEN);
    expectRefused(GOLDEN.replace(value, value.toLowerCase()), value, "checksum");
    expectRefused(GOLDEN.replace(SET_ID, SET_ID.toLowerCase()), value, "checksum");
  });
});

describe("key set id", () => {
  it("is returned for the caller to compare, and checked when expected", () => {
    expect(decodeShare(GOLDEN, SET_ID).kekSetId).toBe(SET_ID);
    const foreign = encodeShare({
      kekSetId: "kset_someOtherVault0000000",
      index: 2,
      threshold: 3,
      value: PATTERN_VALUE,
    });
    expect(decodeShare(foreign).kekSetId).not.toBe(SET_ID);
    let caught: unknown;
    try {
      decodeShare(foreign, SET_ID);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ShareFormatError);
    expect((caught as ShareFormatError).reason).toBe("foreign");
    expect((caught as ShareFormatError).message).toBe("the share belongs to another key set");
  });

  it("cannot be edited into another set's id without breaking the checksum", () => {
    const edited = GOLDEN.replace(SET_ID, "kset_someOtherVault0000000");
    expectRefused(edited, valuePartOf(GOLDEN), "checksum");
  });
});

describe("malformed shares", () => {
  const value = PATTERN_VALUE.toString("base64url");
  const body = (parts: { set?: string; t?: string; i?: string; v?: string }) =>
    ["pvs1", parts.set ?? SET_ID, parts.t ?? "3", parts.i ?? "2", parts.v ?? value].join(".");

  it.each<[string, string, RegExp]>([
    ["empty text", "", /not a payvault unseal share/],
    ["only whitespace", " \n\t ", /not a payvault unseal share/],
    ["another product's text", value, /not a payvault unseal share/],
    ["a future version", withChecksum(body({}).replace("pvs1", "pvs2")), /version/],
    ["the prefix alone", "pvs1", /6 parts/],
    ["a missing part", withChecksum(body({}).replace(`.${SET_ID}`, "")), /6 parts/],
    ["an extra part", withChecksum(`${body({})}.x`), /6 parts/],
    ["no checksum", body({}), /6 parts/],
    ["a short checksum", `${body({})}.e3b9609`, /8 hexadecimal digits/],
    ["a non-hex checksum", `${body({})}.e3b9609g`, /8 hexadecimal digits/],
    ["a set id with a space-like char", withChecksum(body({ set: "kset_a\u200bb" })), /set id/],
    ["an empty set id", withChecksum(body({ set: "" })), /set id/],
    ["threshold 1", withChecksum(body({ t: "1" })), /threshold/],
    ["threshold 0", withChecksum(body({ t: "0" })), /threshold/],
    ["threshold 256", withChecksum(body({ t: "256" })), /threshold/],
    ["threshold with a leading zero", withChecksum(body({ t: "03" })), /threshold/],
    ["threshold with a sign", withChecksum(body({ t: "+3" })), /threshold/],
    ["index 0", withChecksum(body({ i: "0" })), /share number/],
    ["index 256", withChecksum(body({ i: "256" })), /share number/],
    ["index in hex", withChecksum(body({ i: "0x2" })), /share number/],
    ["an empty value", withChecksum(body({ v: "" })), /base64url|bytes/],
    ["a padded value", withChecksum(body({ v: `${value}=` })), /base64url/],
    ["a standard-base64 value", withChecksum(body({ v: `${value.slice(0, -1)}+` })), /base64url/],
    [
      "a value with stray trailing bits",
      withChecksum(body({ v: `${value.slice(0, -1)}9` })),
      /base64url/,
    ],
    ["a value of impossible length", withChecksum(body({ v: value.slice(0, -2) })), /base64url/],
    [
      "a value that is too long",
      withChecksum(body({ v: Buffer.alloc(MAX_SHARE_VALUE_BYTES + 1).toString("base64url") })),
      /bytes/,
    ],
    ["text that is too long", " ".repeat(MAX_SHARE_TEXT_LENGTH) + GOLDEN, /too long/],
  ])("refuses %s", (_, text, message) => {
    const error = expectRefused(text, value);
    expect(error.message).toMatch(message);
    expect(error.name).toBe("ShareFormatError");
  });

  it("refuses a non-string without echoing it", () => {
    const error = (() => {
      try {
        decodeShare({ share: GOLDEN } as unknown as string);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ShareFormatError);
    expect((error as ShareFormatError).message).not.toContain("AAEC");
  });

  it("the malformed cases above carry a correct checksum, so field checks are what refuse them", () => {
    expect(decodeShare(withChecksum(body({}))).value).toEqual(PATTERN_VALUE);
  });
});
