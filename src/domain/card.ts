import { parseCardholderName } from "./cardholder-name.js";
import type { Cvc } from "./cvc.js";
import { parseCvc } from "./cvc.js";
import { parseExpiry } from "./expiry.js";
import type { FieldIssue, Parsed } from "./field-issue.js";
import { accepted, issuesOf, rejected } from "./field-issue.js";
import type { Brand } from "./iin-table.js";
import { Pan } from "./pan.js";

/**
 * Cardholder data as the vault stores it (PCI DSS v4.0.1 glossary). The CVC is not part of
 * it: it is sensitive authentication data and is never stored (3.3.1.2).
 */
export interface Card {
  pan: Pan;
  expMonth: number;
  /** Four-digit year. */
  expYear: number;
  name?: string;
}

export interface ParsedCard {
  card: Card;
  cvc?: Cvc;
}

export interface ParseCardOptions {
  /** Path of the card object in the request, e.g. "cards/3/card" in a batch. */
  fieldPrefix?: string;
  requireCvc?: boolean;
}

const CARD_FIELDS: ReadonlySet<string> = new Set([
  "number",
  "exp_month",
  "exp_year",
  "cvc",
  "name",
]);
/** Only plain names are echoed in a field path; anything else could be data, not a name. */
const ECHOABLE_KEY = /^[A-Za-z_]{1,64}$/;

function isRecord(input: unknown): input is Record<string, unknown> {
  return typeof input === "object" && input !== null && !Array.isArray(input);
}

/** Unknown fields are refused, so card data sent under a misspelt name is never ignored. */
function unknownFieldIssues(input: Record<string, unknown>, prefix: string): FieldIssue[] {
  return Object.keys(input)
    .filter((key) => !CARD_FIELDS.has(key))
    .map((key) => ({
      field: ECHOABLE_KEY.test(key) ? `${prefix}.${key}` : prefix,
      code: "CARD_UNKNOWN_FIELD",
      message: "The card object has a field that is not allowed.",
    }));
}

function parseCvcField(
  input: unknown,
  brand: Brand,
  prefix: string,
  required: boolean,
): Parsed<Cvc | undefined> {
  const field = `${prefix}.cvc`;
  if (input !== undefined) return parseCvc(input, brand, field);
  if (required) return rejected(field, "CVC_REQUIRED", "The security code is required.");
  return accepted(undefined);
}

/**
 * Validates a card object `{ number, exp_month, exp_year, cvc?, name? }` and reports every
 * field's issues together, so a person can fix the whole form at once.
 */
export function parseCard(
  input: unknown,
  now: Date,
  opts: ParseCardOptions = {},
): Parsed<ParsedCard> {
  const prefix = opts.fieldPrefix ?? "card";
  if (!isRecord(input)) return rejected(prefix, "CARD_INVALID_TYPE", "The card must be an object.");
  const pan = Pan.parse(input.number, `${prefix}.number`);
  const expiry = parseExpiry(input.exp_month, input.exp_year, now, prefix);
  // With an unreadable number the brand is unknown, which accepts a 3- or 4-digit CVC.
  const brand = pan.ok ? pan.value.brand : "unknown";
  const cvc = parseCvcField(input.cvc, brand, prefix, opts.requireCvc === true);
  const name = parseCardholderName(input.name, `${prefix}.name`);
  const unknown = unknownFieldIssues(input, prefix);
  if (!pan.ok || !expiry.ok || !cvc.ok || !name.ok || unknown.length > 0) {
    const issues = [pan, expiry, cvc, name].flatMap(issuesOf);
    return { ok: false, issues: [...issues, ...unknown] };
  }
  const card: Card = { pan: pan.value, expMonth: expiry.value.month, expYear: expiry.value.year };
  if (name.value !== undefined) card.name = name.value;
  return accepted(cvc.value === undefined ? { card } : { card, cvc: cvc.value });
}
