import { beforeAll, describe, expect, it } from "vitest";
import { DOMAIN_ISSUE_CODES } from "../../../src/domain/field-issue.js";
import { IIN_RANGES } from "../../../src/domain/iin-table.js";
import type { BrandTable } from "../../../static/capture/card-rules.js";
import { rulesFor } from "../../../static/capture/card-rules.js";
import {
  contractFieldOf,
  FIELD_LABELS,
  formMessageFor,
  messageFor,
} from "../../../static/capture/messages.js";
import { servedBrandTable } from "./brand-table.js";

let table: BrandTable;
beforeAll(async () => {
  table = await servedBrandTable();
});

const FIELDS = Object.keys(FIELD_LABELS);
const CODES = [...DOMAIN_ISSUE_CODES, "FIELD_REQUIRED", "SOMETHING_NEW"];
const BRANDS = [...new Set(IIN_RANGES.map((r) => r.brand)), "unknown"];
/** Words that say which field a sentence is about. */
const FIELD_WORDS: Readonly<Record<string, RegExp>> = {
  number: /card number/i,
  exp_month: /expiry/i,
  exp_year: /expiry/i,
  cvc: /security code/i,
  name: /name/i,
};

describe("messageFor", () => {
  it("names the field in every message, for every code and brand", () => {
    for (const field of FIELDS) {
      for (const code of CODES) {
        for (const brand of BRANDS) {
          const message = messageFor({ field, code, brand }, rulesFor(table, brand));
          expect(message, `${field} ${code} ${brand}`).toMatch(FIELD_WORDS[field] as RegExp);
        }
      }
    }
  });

  it("gives each field's own codes a specific sentence, not the fallback", () => {
    const specific: [string, string][] = [
      ["number", "PAN_LUHN"],
      ["number", "PAN_LENGTH"],
      ["number", "PAN_LENGTH_FOR_BRAND"],
      ["exp_month", "EXP_MONTH_INVALID"],
      ["exp_year", "EXP_YEAR_INVALID"],
      ["exp_year", "CARD_EXPIRED"],
      ["exp_year", "EXP_YEAR_TOO_FAR"],
      ["cvc", "CVC_INVALID"],
      ["cvc", "CVC_REQUIRED"],
      ["name", "NAME_INVALID"],
    ];
    for (const [field, code] of specific) {
      expect(messageFor({ field, code }, rulesFor(table, "unknown"))).not.toMatch(
        /check this field/,
      );
    }
  });

  it("says the brand's lengths: Amex numbers have 15 digits and a 4-digit code", () => {
    const amex = rulesFor(table, "amex");
    expect(messageFor({ field: "number", code: "PAN_LENGTH_FOR_BRAND", brand: "amex" }, amex)).toBe(
      "The card number is the wrong length: American Express card numbers have 15 digits.",
    );
    expect(messageFor({ field: "cvc", code: "CVC_INVALID", brand: "amex" }, amex)).toBe(
      "The security code must have 4 digits for American Express.",
    );
    const visa = rulesFor(table, "visa");
    expect(messageFor({ field: "number", code: "PAN_LENGTH_FOR_BRAND", brand: "visa" }, visa)).toBe(
      "The card number is the wrong length: Visa card numbers have 13, 16 or 19 digits.",
    );
  });

  it("says why a name is refused", () => {
    const rules = rulesFor(table, "unknown");
    expect(messageFor({ field: "name", code: "NAME_INVALID", reason: "card_number" }, rules)).toBe(
      "The name on card must not contain a card number.",
    );
    expect(messageFor({ field: "name", code: "NAME_INVALID", reason: "too_long" }, rules)).toMatch(
      /at most 100/,
    );
  });

  it("never holds a run of four digits (it is never given the value, so it cannot echo it)", () => {
    for (const field of FIELDS) {
      for (const code of CODES) {
        for (const brand of BRANDS) {
          expect(messageFor({ field, code, brand }, rulesFor(table, brand))).not.toMatch(/\d{4}/);
        }
      }
    }
  });
});

describe("contractFieldOf", () => {
  it("reads the vault's field paths as the form's fields", () => {
    expect(contractFieldOf("number")).toBe("number");
    expect(contractFieldOf("card.number")).toBe("number");
    expect(contractFieldOf("card.exp_month")).toBe("exp_month");
    expect(contractFieldOf("cards.3.card.cvc")).toBe("cvc");
    expect(contractFieldOf("payload")).toBeUndefined();
    expect(contractFieldOf("constructor")).toBeUndefined();
    expect(contractFieldOf(undefined)).toBeUndefined();
  });
});

describe("formMessageFor", () => {
  it("tells the person what to do for an expired session, the network, rate limits", () => {
    expect(formMessageFor("CAPTURE_SESSION_INVALID", 401)).toMatch(/expired.*Reload/);
    expect(formMessageFor("NETWORK", 0)).toMatch(/connection/);
    expect(formMessageFor(undefined, 429)).toMatch(/Wait/);
    expect(formMessageFor("INTERNAL_ERROR", 500)).toMatch(/could not be saved/);
    // A stale payload is retried with a new one: it is not the session that expired.
    expect(formMessageFor("JWT_EXPIRED", 401)).toMatch(/could not be saved. Try again/);
    expect(formMessageFor(undefined, 401)).toMatch(/expired/);
  });
});
