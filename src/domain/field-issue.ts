/**
 * One problem with one input field, as returned by every parser in `domain/`.
 *
 * The message never contains the value that was sent: a rejected card number is still a
 * card number, and echoing it into a response body or a log would put cardholder data where
 * PCI DSS v4.0.1 3.5.1 does not allow it in clear.
 */
export interface FieldIssue {
  /** Path of the field, e.g. `card.number`, or `cards/3/card.exp_month` inside a batch. */
  field: string;
  /** Stable UPPER_SNAKE code that clients can switch on. */
  code: string;
  /** A sentence for humans; never contains the input value. */
  message: string;
}

/** The outcome of parsing untrusted input: a value, or every issue found. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; issues: FieldIssue[] };

/** The failure branch alone: assignable to `Parsed<T>` for any `T`. */
export type Rejected = { ok: false; issues: FieldIssue[] };

/** Codes produced by the domain parsers (the HTTP layer may add its own). */
export const DOMAIN_ISSUE_CODES = [
  "PAN_INVALID_TYPE",
  "PAN_NOT_DIGITS",
  "PAN_LENGTH",
  "PAN_LUHN",
  "PAN_LENGTH_FOR_BRAND",
  "EXP_MONTH_INVALID",
  "EXP_YEAR_INVALID",
  "CARD_EXPIRED",
  "EXP_YEAR_TOO_FAR",
  "CVC_INVALID",
  "CVC_REQUIRED",
  "NAME_INVALID",
  "CARD_INVALID_TYPE",
  "CARD_UNKNOWN_FIELD",
] as const;

export type DomainIssueCode = (typeof DOMAIN_ISSUE_CODES)[number];

export function accepted<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function rejected(field: string, code: DomainIssueCode, message: string): Rejected {
  return { ok: false, issues: [{ field, code, message }] };
}

/** The issues of a result, or none: lets a parser collect every field's issues at once. */
export function issuesOf(result: Parsed<unknown>): FieldIssue[] {
  return result.ok ? [] : result.issues;
}
