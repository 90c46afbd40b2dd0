import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ErrorCode } from "../../src/errors/registry.js";
import {
  auditCount,
  auth,
  CARDS,
  cardOf,
  EXP_MONTH,
  EXP_YEAR,
  expectNoPan,
  expectProblem,
  INVALID_LUHN,
  MASTERCARD_15_DIGITS,
  spaced,
  tokenize,
  tokenRowCount,
} from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/**
 * Hostile and broken request bodies. Every case must end in a 4xx problem with a stable code,
 * never a 5xx, never echo the card number, and never leave a row or a success audit event.
 */
interface BadInput {
  readonly name: string;
  /** An object is sent as JSON; a string or Buffer is sent as is. Absent: no body at all. */
  readonly payload?: object | string | Buffer;
  readonly contentType?: string;
  readonly code: ErrorCode;
  /** For VALIDATION_FAILED: the field errors that must be present, as [field, code]. */
  readonly fields?: readonly (readonly [string, string])[];
  /** Card numbers (or number-like strings) in the request that must not come back. */
  readonly pans: readonly string[];
}

const PAN = CARDS.visa;
const json = (value: unknown) => JSON.stringify(value);
/** The body of a valid request as JSON text, with `replace` applied to the text. */
const validText = (replace: (text: string) => string = (t) => t, number: string = PAN) =>
  replace(json({ card: cardOf(number, { name: "Ada Lovelace" }), metadata: { order: "o-1" } }));
const YEAR = new Date().getUTCFullYear();

const TOKENIZE_CASES: readonly BadInput[] = [
  {
    name: "malformed JSON (unquoted keys)",
    payload: `{card: {number: "${PAN}", exp_month: 12, exp_year: ${EXP_YEAR}}}`,
    code: "MALFORMED_JSON",
    pans: [PAN],
  },
  {
    name: "malformed JSON (trailing comma)",
    payload: validText((t) => t.replace(/}$/, ",}")),
    code: "MALFORMED_JSON",
    pans: [PAN],
  },
  {
    name: "truncated JSON",
    payload: validText((t) => t.slice(0, t.indexOf(PAN) + PAN.length + 1)),
    code: "MALFORMED_JSON",
    pans: [PAN],
  },
  {
    name: "two JSON documents",
    payload: `${validText()}${validText()}`,
    code: "MALFORMED_JSON",
    pans: [PAN],
  },
  {
    name: "empty body with a JSON content type",
    payload: "",
    code: "MALFORMED_JSON",
    pans: [],
  },
  {
    name: "card number as a JSON number",
    payload: `{"card":{"number":${PAN},"exp_month":12,"exp_year":${EXP_YEAR}}}`,
    code: "VALIDATION_FAILED",
    fields: [["card.number", "INVALID_TYPE"]],
    pans: [PAN],
  },
  {
    name: "exp_month as a string",
    payload: { card: { number: PAN, exp_month: "12", exp_year: EXP_YEAR } },
    code: "VALIDATION_FAILED",
    fields: [["card.exp_month", "INVALID_TYPE"]],
    pans: [PAN],
  },
  {
    name: "exp_year as a fraction",
    payload: { card: { number: PAN, exp_month: 12, exp_year: EXP_YEAR + 0.5 } },
    code: "VALIDATION_FAILED",
    fields: [["card.exp_year", "INVALID_TYPE"]],
    pans: [PAN],
  },
  {
    name: "card as a string",
    payload: { card: PAN },
    code: "VALIDATION_FAILED",
    fields: [["card", "INVALID_TYPE"]],
    pans: [PAN],
  },
  {
    name: "a top-level array",
    payload: [{ card: cardOf(PAN) }],
    code: "VALIDATION_FAILED",
    fields: [["", "INVALID_TYPE"]],
    pans: [PAN],
  },
  {
    name: "dedupe as a string",
    payload: { card: cardOf(PAN), dedupe: "no" },
    code: "VALIDATION_FAILED",
    fields: [["dedupe", "INVALID_TYPE"]],
    pans: [PAN],
  },
  {
    name: "unknown format",
    payload: { card: cardOf(PAN), format: "uuid" },
    code: "VALIDATION_FAILED",
    fields: [["format", "INVALID_VALUE"]],
    pans: [PAN],
  },
  {
    name: "missing card",
    payload: { metadata: {} },
    code: "VALIDATION_FAILED",
    fields: [["card", "FIELD_REQUIRED"]],
    pans: [],
  },
  {
    name: "missing card number",
    payload: { card: { exp_month: 12, exp_year: EXP_YEAR } },
    code: "VALIDATION_FAILED",
    fields: [["card.number", "FIELD_REQUIRED"]],
    pans: [],
  },
  {
    name: "non-digit PAN",
    payload: { card: cardOf("4242 4242 4242 42x2") },
    code: "VALIDATION_FAILED",
    fields: [["card.number", "PAN_NOT_DIGITS"]],
    pans: ["4242 4242 4242 42x2"],
  },
  {
    name: "PAN in non-ASCII digits (fullwidth)",
    payload: { card: cardOf("４２４２４２４２４２４２４２４２") },
    code: "VALIDATION_FAILED",
    fields: [["card.number", "PAN_NOT_DIGITS"]],
    pans: ["４２４２４２４２４２４２４２４２"],
  },
  ...INVALID_LUHN.map(
    (number): BadInput => ({
      name: `Luhn-failing PAN ${number.slice(0, 6)}…`,
      payload: { card: cardOf(number) },
      code: "VALIDATION_FAILED",
      fields: [["card.number", "PAN_LUHN"]],
      pans: [number],
    }),
  ),
  {
    name: "Luhn-failing PAN with spaces",
    payload: { card: cardOf(spaced(INVALID_LUHN[0])) },
    code: "VALIDATION_FAILED",
    fields: [["card.number", "PAN_LUHN"]],
    pans: [INVALID_LUHN[0]],
  },
  {
    name: "PAN too short (11 digits)",
    payload: { card: cardOf(PAN.slice(0, 11)) },
    code: "VALIDATION_FAILED",
    fields: [["card.number", "PAN_LENGTH"]],
    pans: [PAN.slice(0, 11)],
  },
  {
    name: "PAN too long (20 digits)",
    payload: { card: cardOf(`${PAN}4242`) },
    code: "VALIDATION_FAILED",
    fields: [["card.number", "PAN_LENGTH"]],
    pans: [PAN, `${PAN}4242`],
  },
  {
    name: "PAN field far over its length limit",
    payload: { card: cardOf(PAN.repeat(5)) },
    code: "VALIDATION_FAILED",
    fields: [["card.number", "TOO_LONG"]],
    pans: [PAN],
  },
  {
    name: "empty PAN",
    payload: { card: cardOf("") },
    code: "VALIDATION_FAILED",
    fields: [["card.number", "PAN_LENGTH"]],
    pans: [],
  },
  {
    name: "PAN length its brand does not issue (15-digit Mastercard)",
    payload: { card: cardOf(MASTERCARD_15_DIGITS) },
    code: "VALIDATION_FAILED",
    fields: [["card.number", "PAN_LENGTH_FOR_BRAND"]],
    pans: [MASTERCARD_15_DIGITS],
  },
  {
    name: "expired card",
    payload: { card: { number: PAN, exp_month: EXP_MONTH, exp_year: YEAR - 1 } },
    code: "VALIDATION_FAILED",
    fields: [["card.exp_year", "CARD_EXPIRED"]],
    pans: [PAN],
  },
  {
    name: "expiry absurdly far ahead",
    payload: { card: { number: PAN, exp_month: EXP_MONTH, exp_year: YEAR + 40 } },
    code: "VALIDATION_FAILED",
    fields: [["card.exp_year", "EXP_YEAR_TOO_FAR"]],
    pans: [PAN],
  },
  ...[13, 0, -1].map(
    (month): BadInput => ({
      name: `expiry month ${month}`,
      payload: { card: { number: PAN, exp_month: month, exp_year: EXP_YEAR } },
      code: "VALIDATION_FAILED",
      fields: [["card.exp_month", "EXP_MONTH_INVALID"]],
      pans: [PAN],
    }),
  ),
  {
    name: "unknown top-level field",
    payload: { card: cardOf(PAN), cvv: "123" },
    code: "VALIDATION_FAILED",
    fields: [["cvv", "UNKNOWN_FIELD"]],
    pans: [PAN],
  },
  {
    name: "unknown card field",
    payload: { card: cardOf(PAN, { pin: "1234" }) },
    code: "VALIDATION_FAILED",
    fields: [["card.pin", "UNKNOWN_FIELD"]],
    pans: [PAN],
  },
  {
    // A CVC is held in the ephemeral store, never stored: one of the wrong length is refused.
    name: "a CVC of the wrong length",
    payload: { card: cardOf(PAN, { cvc: "12345" }) },
    code: "VALIDATION_FAILED",
    fields: [["card.cvc", "CVC_INVALID"]],
    pans: [PAN],
  },
  {
    name: "__proto__ key at the top level",
    payload: validText((t) => t.replace(/}$/, ',"__proto__":{"isAdmin":true}}')),
    code: "FORBIDDEN_JSON_KEY",
    pans: [PAN],
  },
  {
    name: "__proto__ key inside the card",
    payload: validText((t) => t.replace('{"number"', '{"__proto__":{"x":1},"number"')),
    code: "FORBIDDEN_JSON_KEY",
    pans: [PAN],
  },
  {
    name: "__proto__ key inside metadata",
    payload: validText((t) => t.replace('{"order"', '{"__proto__":"x","order"')),
    code: "FORBIDDEN_JSON_KEY",
    pans: [PAN],
  },
  {
    name: "constructor.prototype",
    payload: validText((t) => t.replace(/}$/, ',"constructor":{"prototype":{"polluted":"yes"}}}')),
    code: "FORBIDDEN_JSON_KEY",
    pans: [PAN],
  },
  {
    name: "invalid UTF-8 bytes (0xff 0xfe) in card.name",
    payload: Buffer.concat([
      Buffer.from(validText().split("Ada Lovelace")[0] as string, "utf8"),
      Buffer.from([0xff, 0xfe]),
      Buffer.from(validText().split("Ada Lovelace")[1] as string, "utf8"),
    ]),
    code: "INVALID_UTF8",
    pans: [PAN],
  },
  {
    name: "a UTF-8-encoded surrogate (CESU-8 bytes) in metadata",
    payload: Buffer.concat([
      Buffer.from(validText().split("o-1")[0] as string, "utf8"),
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from(validText().split("o-1")[1] as string, "utf8"),
    ]),
    code: "INVALID_UTF8",
    pans: [PAN],
  },
  {
    name: "lone surrogate escape in card.name",
    payload: validText((t) => t.replace("Ada Lovelace", "Ada \\ud800Lovelace")),
    code: "INVALID_UNICODE",
    pans: [PAN],
  },
  {
    name: "lone surrogate escape in metadata",
    payload: validText((t) => t.replace("o-1", "o-1\\udc00")),
    code: "INVALID_UNICODE",
    pans: [PAN],
  },
  {
    name: "lone surrogate escape in a metadata key",
    payload: validText((t) => t.replace('"order"', '"ord\\ud83der"')),
    code: "INVALID_UNICODE",
    pans: [PAN],
  },
  {
    name: "NUL escape in metadata",
    payload: validText((t) => t.replace("o-1", "o-\\u00001")),
    code: "INVALID_UNICODE",
    pans: [PAN],
  },
  {
    name: "NUL escape in card.name",
    payload: validText((t) => t.replace("Ada Lovelace", "Ada\\u0000Lovelace")),
    code: "INVALID_UNICODE",
    pans: [PAN],
  },
  {
    name: "body over 16 KiB",
    payload: { card: cardOf(PAN), metadata: { a: "x".repeat(450) }, padding: "x".repeat(17_000) },
    code: "PAYLOAD_TOO_LARGE",
    pans: [PAN],
  },
  {
    name: "text/plain content type",
    payload: validText(),
    contentType: "text/plain",
    code: "UNSUPPORTED_MEDIA_TYPE",
    pans: [PAN],
  },
  {
    name: "JSON declared in a charset other than UTF-8",
    payload: validText(),
    contentType: "application/json; charset=utf-16",
    code: "UNSUPPORTED_MEDIA_TYPE",
    pans: [PAN],
  },
  {
    name: "form-encoded content type",
    payload: `number=${PAN}&exp_month=12&exp_year=${EXP_YEAR}`,
    contentType: "application/x-www-form-urlencoded",
    code: "UNSUPPORTED_MEDIA_TYPE",
    pans: [PAN],
  },
  {
    name: "metadata holding a card number",
    payload: { card: cardOf(CARDS.mastercard), metadata: { note: `card ${PAN}` } },
    code: "VALIDATION_FAILED",
    fields: [["metadata", "METADATA_CONTAINS_PAN"]],
    pans: [PAN, CARDS.mastercard],
  },
  {
    name: "metadata holding a card number with spaces",
    payload: { card: cardOf(CARDS.mastercard), metadata: { note: spaced(CARDS.amex2) } },
    code: "VALIDATION_FAILED",
    fields: [["metadata", "METADATA_CONTAINS_PAN"]],
    pans: [CARDS.amex2, CARDS.mastercard],
  },
  {
    name: "metadata key that is a card number",
    payload: { card: cardOf(CARDS.mastercard), metadata: { [PAN]: "x" } },
    code: "VALIDATION_FAILED",
    fields: [["metadata", "METADATA_CONTAINS_PAN"]],
    pans: [PAN, CARDS.mastercard],
  },
  {
    name: "metadata value that is not a string",
    payload: { card: cardOf(PAN), metadata: { n: 1 } },
    code: "VALIDATION_FAILED",
    fields: [["metadata.n", "INVALID_TYPE"]],
    pans: [PAN],
  },
  {
    name: "card.name with a control character",
    payload: { card: cardOf(PAN, { name: "Ada\u0007Lovelace" }) },
    code: "VALIDATION_FAILED",
    fields: [["card.name", "NAME_INVALID"]],
    pans: [PAN],
  },
  {
    name: "card.name with a newline",
    payload: { card: cardOf(PAN, { name: "Ada\nLovelace" }) },
    code: "VALIDATION_FAILED",
    fields: [["card.name", "NAME_INVALID"]],
    pans: [PAN],
  },
  {
    name: "card.name with a bidi override",
    payload: { card: cardOf(PAN, { name: "Ada \u202eecalevoL" }) },
    code: "VALIDATION_FAILED",
    fields: [["card.name", "NAME_INVALID"]],
    pans: [PAN],
  },
  {
    name: "card.name holding a card number",
    payload: { card: cardOf(CARDS.mastercard, { name: `Ada ${PAN}` }) },
    code: "VALIDATION_FAILED",
    fields: [["card.name", "NAME_INVALID"]],
    pans: [PAN, CARDS.mastercard],
  },
  {
    name: "card.name over 100 characters",
    payload: { card: cardOf(PAN, { name: "A".repeat(101) }) },
    code: "VALIDATION_FAILED",
    fields: [["card.name", "NAME_INVALID"]],
    pans: [PAN],
  },
  {
    name: "card.name over the schema's 200 characters",
    payload: { card: cardOf(PAN, { name: "A".repeat(201) }) },
    code: "VALIDATION_FAILED",
    fields: [["card.name", "TOO_LONG"]],
    pans: [PAN],
  },
  {
    name: "expires_at that is not a date-time",
    payload: { card: cardOf(PAN), expires_at: "tomorrow" },
    code: "VALIDATION_FAILED",
    fields: [["expires_at", "INVALID_FORMAT"]],
    pans: [PAN],
  },
];

const REVEAL_CASES: readonly BadInput[] = [
  { name: "malformed JSON", payload: `{"purpose": refund}`, code: "MALFORMED_JSON", pans: [] },
  { name: "truncated JSON", payload: `{"purpose": "ref`, code: "MALFORMED_JSON", pans: [] },
  { name: "empty body with a JSON content type", payload: "", code: "MALFORMED_JSON", pans: [] },
  {
    name: "purpose as a number",
    payload: { purpose: 42 },
    code: "VALIDATION_FAILED",
    fields: [["purpose", "INVALID_TYPE"]],
    pans: [],
  },
  {
    name: "missing purpose",
    payload: {},
    code: "VALIDATION_FAILED",
    fields: [["purpose", "FIELD_REQUIRED"]],
    pans: [],
  },
  {
    name: "empty purpose",
    payload: { purpose: "" },
    code: "VALIDATION_FAILED",
    fields: [["purpose", "TOO_SHORT"]],
    pans: [],
  },
  {
    name: "purpose with a control character",
    payload: { purpose: "refund\nforged audit line" },
    code: "VALIDATION_FAILED",
    fields: [["purpose", "INVALID_VALUE"]],
    pans: [],
  },
  {
    name: "unknown field carrying a card number",
    payload: { purpose: "refund", number: CARDS.mastercard },
    code: "VALIDATION_FAILED",
    fields: [["number", "UNKNOWN_FIELD"]],
    pans: [CARDS.mastercard],
  },
  {
    name: "__proto__ key",
    payload: `{"purpose":"refund","__proto__":{"isAdmin":true}}`,
    code: "FORBIDDEN_JSON_KEY",
    pans: [],
  },
  {
    name: "constructor.prototype",
    payload: `{"purpose":"refund","constructor":{"prototype":{"isAdmin":true}}}`,
    code: "FORBIDDEN_JSON_KEY",
    pans: [],
  },
  {
    name: "invalid UTF-8 bytes",
    payload: Buffer.concat([
      Buffer.from('{"purpose":"ref'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]),
    code: "INVALID_UTF8",
    pans: [],
  },
  {
    name: "lone surrogate escape in purpose",
    payload: `{"purpose":"refund \\ud800"}`,
    code: "INVALID_UNICODE",
    pans: [],
  },
  {
    name: "NUL escape in purpose",
    payload: `{"purpose":"refund\\u0000"}`,
    code: "INVALID_UNICODE",
    pans: [],
  },
  {
    name: "body over 4 KiB",
    payload: { purpose: "x".repeat(5_000) },
    code: "PAYLOAD_TOO_LARGE",
    pans: [],
  },
  {
    name: "text/plain content type",
    payload: `{"purpose":"refund"}`,
    contentType: "text/plain",
    code: "UNSUPPORTED_MEDIA_TYPE",
    pans: [],
  },
];

for (const driver of DRIVERS) {
  describe(`bad input on ${driver.name}`, () => {
    let vault: TestVault;
    let key: string;

    beforeAll(async () => {
      vault = await startTestVault(driver);
      key = await vault.newKey(vault.tenantId, ["tokens:write", "tokens:reveal"]);
    });
    afterAll(async () => vault?.close());

    const send = (url: string, input: BadInput) => {
      const isRaw = typeof input.payload === "string" || Buffer.isBuffer(input.payload);
      const contentType =
        input.contentType ?? (input.payload === undefined ? undefined : "application/json");
      return vault.app.inject({
        method: "POST",
        url,
        headers: {
          ...auth(key),
          ...(contentType === undefined ? {} : { "content-type": contentType }),
        },
        ...(input.payload === undefined
          ? {}
          : { payload: isRaw ? (input.payload as string | Buffer) : json(input.payload) }),
      });
    };

    /** Asserts the refusal; returns the response body for extra checks. */
    const expectRefused = async (
      url: string,
      input: BadInput,
      extraPans: readonly string[],
      auditAction: string,
    ) => {
      const tokens = await tokenRowCount(vault);
      const events = await auditCount(vault, auditAction);
      const res = await send(url, input);
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, res.body).toBeLessThan(500);
      const problem = expectProblem(res, input.code);
      if (input.code === "VALIDATION_FAILED") {
        expect(problem.errors?.length, res.body).toBeGreaterThan(0);
        for (const [field, code] of input.fields ?? []) {
          expect(problem.errors, res.body).toContainEqual(
            expect.objectContaining({ field, code, message: expect.any(String) }),
          );
        }
      } else {
        expect(problem.errors).toBeUndefined();
      }
      expectNoPan(res.body, ...input.pans, ...extraPans);
      expect(await tokenRowCount(vault)).toBe(tokens);
      expect(await auditCount(vault, auditAction)).toBe(events);
      return problem;
    };

    describe("POST /v1/tokens", () => {
      for (const input of TOKENIZE_CASES) {
        it(`${input.name} → ${input.code}`, async () => {
          await expectRefused("/v1/tokens", input, [], "token.create");
        });
      }

      it("no body at all → 400 on the body itself, nothing stored", async () => {
        // The field of the whole body is its JSON Pointer, "" (RFC 6901).
        await expectRefused(
          "/v1/tokens",
          {
            name: "missing body",
            code: "VALIDATION_FAILED",
            fields: [["", "INVALID_TYPE"]],
            pans: [],
          },
          [],
          "token.create",
        );
      });

      it("prototype keys pollute nothing", async () => {
        await send("/v1/tokens", TOKENIZE_CASES.find((c) => c.name === "constructor.prototype")!);
        await send(
          "/v1/tokens",
          TOKENIZE_CASES.find((c) => c.name.startsWith("__proto__ key at"))!,
        );
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
      });

      it("a refused batch item leaves no row and no token.create event either", async () => {
        const tokens = await tokenRowCount(vault);
        const events = await auditCount(vault, "token.create");
        const res = await vault.app.inject({
          method: "POST",
          url: "/v1/tokens/batch",
          headers: auth(key),
          payload: {
            cards: [
              { card: cardOf(INVALID_LUHN[1]) },
              { card: { number: PAN, exp_month: 13, exp_year: EXP_YEAR } },
              { card: cardOf(PAN), metadata: { note: CARDS.amex } },
            ],
          },
        });
        expect(res.statusCode, res.body).toBe(200);
        const { results } = res.json() as {
          results: { status: number; error?: { errors: { field: string; code: string }[] } }[];
        };
        expect(results.map((r) => r.status)).toEqual([400, 400, 400]);
        expect(results[0]?.error?.errors).toContainEqual(
          expect.objectContaining({ field: "cards.0.card.number", code: "PAN_LUHN" }),
        );
        expect(results[1]?.error?.errors).toContainEqual(
          expect.objectContaining({ field: "cards.1.card.exp_month", code: "EXP_MONTH_INVALID" }),
        );
        expect(results[2]?.error?.errors).toContainEqual(
          expect.objectContaining({ field: "cards.2.metadata", code: "METADATA_CONTAINS_PAN" }),
        );
        expectNoPan(res.body, INVALID_LUHN[1], PAN, CARDS.amex);
        expect(await tokenRowCount(vault)).toBe(tokens);
        expect(await auditCount(vault, "token.create")).toBe(events);
      });
    });

    describe("POST /v1/tokens/:id/reveal", () => {
      let tokenId: string;
      const REVEALED = CARDS.mastercard4;

      beforeAll(async () => {
        tokenId = (await tokenize(vault, key, { card: cardOf(REVEALED) })).id;
      });

      for (const input of REVEAL_CASES) {
        it(`${input.name} → ${input.code}`, async () => {
          await expectRefused(`/v1/tokens/${tokenId}/reveal`, input, [REVEALED], "token.reveal");
        });
      }

      it("no body at all → 400 on the body itself and no card data", async () => {
        await expectRefused(
          `/v1/tokens/${tokenId}/reveal`,
          {
            name: "missing body",
            code: "VALIDATION_FAILED",
            fields: [["", "INVALID_TYPE"]],
            pans: [],
          },
          [REVEALED],
          "token.reveal",
        );
      });

      it("a token id that is not an id → 400 on the id", async () => {
        for (const id of ["tok_x!", "tok_%00abc", "x".repeat(65), "tok_..%2F..%2Fetc"]) {
          const problem = await expectRefused(
            `/v1/tokens/${id}/reveal`,
            { name: "bad id", payload: { purpose: "refund" }, code: "VALIDATION_FAILED", pans: [] },
            [REVEALED],
            "token.reveal",
          );
          expect(problem.errors?.map((e) => e.field)).toEqual(["id"]);
        }
      });

      it("a purpose holding a card number never reaches the audit trail in clear", async () => {
        // The purpose is stored in the audit event as written; a card number typed into it
        // would be cardholder data at rest outside the vault's encryption (PCI DSS 3.5.1).
        for (const purpose of [`refund ${CARDS.visa2}`, `refund ${spaced(CARDS.amex2)}`]) {
          const res = await vault.app.inject({
            method: "POST",
            url: `/v1/tokens/${tokenId}/reveal`,
            headers: auth(key),
            payload: { purpose },
          });
          expect(res.statusCode, res.body).toBeLessThan(500);
          expectNoPan(res.body, CARDS.visa2, CARDS.amex2);
        }
        const { rows } = await vault.core.db.query<{ t: string }>(
          "SELECT a::text AS t FROM audit_events a",
        );
        expectNoPan(rows.map((r) => r.t).join("\n"), CARDS.visa2, CARDS.amex2);
      });

      it("the token still reveals after every refusal", async () => {
        const res = await vault.app.inject({
          method: "POST",
          url: `/v1/tokens/${tokenId}/reveal`,
          headers: auth(key),
          payload: { purpose: "final check" },
        });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().card.number).toBe(REVEALED);
      });
    });
  });
}
