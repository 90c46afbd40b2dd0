import type { FieldIssue, Parsed } from "./field-issue.js";
import { accepted } from "./field-issue.js";

export interface Expiry {
  month: number;
  /** Four-digit year. */
  year: number;
}

/** Cards are issued for a few years; 20 leaves room while catching typed-in nonsense. */
const MAX_YEARS_AHEAD = 20;
const SHORT_NUMBER = /^[0-9]{1,4}$/;

/** A whole number, or a string of up to 4 ASCII digits (form fields send strings). */
function toWholeNumber(input: unknown): number | undefined {
  if (typeof input === "number") return Number.isInteger(input) ? input : undefined;
  if (typeof input === "string" && SHORT_NUMBER.test(input)) return Number(input);
  return undefined;
}

function toMonth(input: unknown): number | undefined {
  const month = toWholeNumber(input);
  return month !== undefined && month >= 1 && month <= 12 ? month : undefined;
}

/** 0-99 means 20YY (cards print YY, ISO/IEC 7813); 1000-9999 is taken as written. */
function toYear(input: unknown): number | undefined {
  const year = toWholeNumber(input);
  if (year === undefined) return undefined;
  if (year >= 0 && year <= 99) return 2000 + year;
  return year >= 1000 && year <= 9999 ? year : undefined;
}

/**
 * A card is good through the last day of its expiry month, so it expires at the start of the
 * next month. We judge that in UTC so the answer does not depend on the server's time zone;
 * the issuer has the final word at authorization, this only stops obviously dead cards.
 */
function checkWindow(expiry: Expiry, now: Date, fieldPrefix: string): FieldIssue | undefined {
  const field = `${fieldPrefix}.exp_year`;
  const nowYear = now.getUTCFullYear();
  const nowMonthIndex = nowYear * 12 + now.getUTCMonth();
  if (expiry.year * 12 + (expiry.month - 1) < nowMonthIndex) {
    return { field, code: "CARD_EXPIRED", message: "The card has expired." };
  }
  if (expiry.year - nowYear > MAX_YEARS_AHEAD) {
    const message = `The expiry year must be at most ${MAX_YEARS_AHEAD} years from now.`;
    return { field, code: "EXP_YEAR_TOO_FAR", message };
  }
  return undefined;
}

/**
 * Month 1-12 and a 2- or 4-digit year, as numbers or digit strings. Date-level issues
 * (expired, too far ahead) are reported on `<prefix>.exp_year`.
 */
export function parseExpiry(
  month: unknown,
  year: unknown,
  now: Date,
  fieldPrefix = "card",
): Parsed<Expiry> {
  if (Number.isNaN(now.getTime())) throw new RangeError("parseExpiry needs a valid `now`");
  const m = toMonth(month);
  const y = toYear(year);
  const issues: FieldIssue[] = [];
  if (m === undefined) {
    const message = "The expiry month must be a whole number from 1 to 12.";
    issues.push({ field: `${fieldPrefix}.exp_month`, code: "EXP_MONTH_INVALID", message });
  }
  if (y === undefined) {
    const message = "The expiry year must be a two- or four-digit year.";
    issues.push({ field: `${fieldPrefix}.exp_year`, code: "EXP_YEAR_INVALID", message });
  }
  if (m === undefined || y === undefined) return { ok: false, issues };
  const expiry = { month: m, year: y };
  const outOfWindow = checkWindow(expiry, now, fieldPrefix);
  if (outOfWindow !== undefined) return { ok: false, issues: [outOfWindow] };
  return accepted(expiry);
}
