import { parseCardholderName } from "../domain/cardholder-name.js";
import type { Cvc } from "../domain/cvc.js";
import { parseCvc } from "../domain/cvc.js";
import { parseExpiry } from "../domain/expiry.js";
import type { FieldIssue, Parsed } from "../domain/field-issue.js";
import { accepted, issuesOf } from "../domain/field-issue.js";
import { Pan } from "../domain/pan.js";
import { findPanLikeRuns } from "../domain/pan-scan.js";

/**
 * A charge request to the sandbox processor, validated (docs/sandbox-processor.md, "Request").
 * The card number and CVC stay inside `Pan` and `Cvc`, whose string, JSON and inspect forms are
 * masked, so logging or echoing this object by mistake shows no card data (PCI DSS v4.0.1
 * 3.3.1.2, 3.4.1).
 */
export interface ChargeRequest {
  /** In the currency's minor unit, as Stripe counts it. */
  readonly amount: number;
  /** ISO 4217 code, lower case (Stripe's form). */
  readonly currency: string;
  readonly pan: Pan;
  readonly expMonth: number;
  /** Four digits. */
  readonly expYear: number;
  /** The expiry month is over: the processor declines with `expired_card`. */
  readonly expired: boolean;
  readonly cvc: Cvc | undefined;
}

/** Stripe's largest amount (99,999,999 in the minor unit: $999,999.99). */
export const MAX_AMOUNT = 99_999_999;
const MAX_DESCRIPTION_CHARS = 500;
const MAX_METADATA_KEYS = 20;
const TOP_FIELDS = new Set(["amount", "currency", "card", "description", "metadata"]);
const CARD_FIELDS = new Set(["number", "exp_month", "exp_year", "cvc", "name"]);
/** Field names are quoted in errors only when they cannot hold a card number. */
const QUOTABLE_NAME = /^[A-Za-z_]{1,64}$/;
const AMOUNT_DIGITS = /^[0-9]{1,9}$/;
const CURRENCY = /^[A-Za-z]{3}$/;

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function issue(field: string, code: string, message: string): FieldIssue {
  return { field, code, message };
}

function unknownFields(fields: Fields, allowed: ReadonlySet<string>, at: string): FieldIssue[] {
  return Object.keys(fields)
    .filter((key) => !allowed.has(key))
    .map((key) => {
      const field = QUOTABLE_NAME.test(key) ? `${at}${key}` : `${at}(unnamed)`;
      return issue(field, "FIELD_UNKNOWN", "This field is not accepted.");
    });
}

function parseAmount(input: unknown): Parsed<number> {
  const amount =
    typeof input === "number"
      ? input
      : typeof input === "string" && AMOUNT_DIGITS.test(input)
        ? Number(input)
        : Number.NaN;
  if (!Number.isInteger(amount) || amount < 1 || amount > MAX_AMOUNT) {
    const message = `The amount must be a whole number from 1 to ${MAX_AMOUNT} in the currency's minor unit.`;
    return { ok: false, issues: [issue("amount", "AMOUNT_INVALID", message)] };
  }
  return accepted(amount);
}

function parseCurrency(input: unknown): Parsed<string> {
  if (typeof input !== "string" || !CURRENCY.test(input)) {
    const message = "The currency must be a three-letter ISO 4217 code.";
    return { ok: false, issues: [issue("currency", "CURRENCY_INVALID", message)] };
  }
  return accepted(input.toLowerCase());
}

/** The description is neither echoed nor kept; a card number in it is still refused. */
function descriptionIssues(input: unknown): FieldIssue[] {
  if (input === undefined) return [];
  if (typeof input !== "string" || input.length > MAX_DESCRIPTION_CHARS) {
    const message = `The description must be a string of at most ${MAX_DESCRIPTION_CHARS} characters.`;
    return [issue("description", "DESCRIPTION_INVALID", message)];
  }
  if (findPanLikeRuns(input).length > 0) {
    const message = "The description must not contain a card number.";
    return [issue("description", "DESCRIPTION_INVALID", message)];
  }
  return [];
}

/** Stripe's `metadata` (string values), accepted so real templates work; neither echoed nor kept. */
function metadataIssues(input: unknown): FieldIssue[] {
  if (input === undefined) return [];
  const values = isObject(input) ? Object.values(input) : [];
  const fits =
    isObject(input) &&
    values.length <= MAX_METADATA_KEYS &&
    values.every((v) => typeof v === "string" && v.length <= MAX_DESCRIPTION_CHARS);
  if (!fits) {
    const message = `The metadata must be an object of at most ${MAX_METADATA_KEYS} strings.`;
    return [issue("metadata", "METADATA_INVALID", message)];
  }
  if (values.some((v) => findPanLikeRuns(String(v)).length > 0)) {
    return [issue("metadata", "METADATA_INVALID", "The metadata must not contain a card number.")];
  }
  return [];
}

interface CardExpiry {
  readonly month: number;
  readonly year: number;
  readonly expired: boolean;
}

/** Month and year as `parseExpiry` reads them; a past month is an outcome, not bad input. */
function parseCardExpiry(month: unknown, year: unknown, now: Date): Parsed<CardExpiry> {
  const parsed = parseExpiry(month, year, now);
  if (parsed.ok) return accepted({ ...parsed.value, expired: false });
  if (parsed.issues.length === 1 && parsed.issues[0]?.code === "CARD_EXPIRED") {
    // parseExpiry accepted both fields before judging the date: whole numbers, YY = 20YY.
    const fullYear = Number(year) < 100 ? 2000 + Number(year) : Number(year);
    return accepted({ month: Number(month), year: fullYear, expired: true });
  }
  return parsed;
}

function parseCard(input: unknown, now: Date): Parsed<Omit<ChargeRequest, "amount" | "currency">> {
  if (!isObject(input)) {
    return {
      ok: false,
      issues: [issue("card", "CARD_INVALID_TYPE", "The card must be an object.")],
    };
  }
  const pan = Pan.parse(input.number);
  const expiry = parseCardExpiry(input.exp_month, input.exp_year, now);
  const cvc = input.cvc === undefined || !pan.ok ? undefined : parseCvc(input.cvc, pan.value.brand);
  const issues = [
    ...unknownFields(input, CARD_FIELDS, "card."),
    ...issuesOf(pan),
    ...issuesOf(expiry),
    ...(cvc === undefined ? [] : issuesOf(cvc)),
    ...issuesOf(parseCardholderName(input.name)),
  ];
  if (!pan.ok || !expiry.ok || (cvc !== undefined && !cvc.ok) || issues.length > 0) {
    return { ok: false, issues };
  }
  return accepted({
    pan: pan.value,
    expMonth: expiry.value.month,
    expYear: expiry.value.year,
    expired: expiry.value.expired,
    cvc: cvc?.value,
  });
}

/** Validates a parsed JSON or form body; every issue is reported at once. */
export function parseChargeRequest(body: unknown, now: Date): Parsed<ChargeRequest> {
  if (!isObject(body)) {
    return { ok: false, issues: [issue("(body)", "BODY_INVALID", "The body must be an object.")] };
  }
  const amount = parseAmount(body.amount);
  const currency = parseCurrency(body.currency);
  const card = parseCard(body.card, now);
  const issues = [
    ...unknownFields(body, TOP_FIELDS, ""),
    ...issuesOf(amount),
    ...issuesOf(currency),
    ...issuesOf(card),
    ...descriptionIssues(body.description),
    ...metadataIssues(body.metadata),
  ];
  if (!amount.ok || !currency.ok || !card.ok || issues.length > 0) return { ok: false, issues };
  return accepted({ amount: amount.value, currency: currency.value, ...card.value });
}
