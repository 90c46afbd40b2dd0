/**
 * The card rules the capture frame checks before it encrypts anything: brand by IIN prefix,
 * Luhn, the brand's PAN and CVC lengths, expiry and the cardholder name. The brand table is
 * the vault's own (src/domain/iin-table.ts), served as /capture/assets/brands.json; this file
 * only applies it, so the browser and the vault judge a card the same way (a unit test checks
 * that they agree).
 *
 * Every issue names a field of the tokenize contract (number, exp_month, exp_year, cvc, name)
 * and a code from the vault's field-issue codes; it never carries the value that was typed.
 */

const DIGITS_ONLY = /^[0-9]+$/;
/** ISO/IEC 7812-1 PAN lengths. */
const PAN_MIN_LENGTH = 12;
const PAN_MAX_LENGTH = 19;
/** The vault refuses expiry years more than 20 years ahead (src/domain/expiry.ts). */
export const MAX_YEARS_AHEAD = 20;
/** The vault's cardholder name limit (src/domain/cardholder-name.ts). */
export const MAX_NAME_CHARS = 100;
/** Controls, lone surrogates, line/paragraph separators and bidi overrides (Trojan Source). */
const FORBIDDEN_NAME_CHARS = /[\p{Cc}\p{Cs}\p{Zl}\p{Zp}\u202A-\u202E\u2066-\u2069]/u;
/** 12 or more digits, however separated: a card number typed into the name field. */
const NUMBER_IN_NAME = /(?:[0-9][ \-.]?){11}[0-9]/;

/**
 * The brand table from brands.json (`{ ranges: [{ brand, from, to, digits }], rules: { brand:
 * { lengths, cvcLength, cvcLengths } } }`), with the ranges sorted longest prefix first so a
 * 6-digit range beats the 2-digit range that contains it (test-cards.json's iin_note).
 */
export function brandTableFrom(json) {
  if (json === null || typeof json !== "object" || !Array.isArray(json.ranges)) {
    throw new TypeError("brands.json: expected { ranges, rules }");
  }
  const rules = json.rules;
  if (rules === null || typeof rules !== "object" || rules.unknown === undefined) {
    throw new TypeError("brands.json: expected rules for every brand and for unknown");
  }
  const ranges = json.ranges
    .map(({ brand, from, to, digits }) => ({ brand, from, to, digits }))
    .sort((a, b) => b.digits - a.digits);
  for (const range of ranges) {
    if (rules[range.brand] === undefined) throw new TypeError("brands.json: a brand has no rules");
  }
  return { ranges, rules };
}

/** The brand whose longest matching IIN prefix starts `digits`; "unknown" when none does. */
export function detectBrand(table, digits) {
  for (const range of table.ranges) {
    if (digits.length < range.digits) continue;
    const prefix = digits.slice(0, range.digits);
    if (!DIGITS_ONLY.test(prefix)) continue;
    const value = Number(prefix);
    if (value >= range.from && value <= range.to) return range.brand;
  }
  return "unknown";
}

export function rulesFor(table, brand) {
  return table.rules[brand] ?? table.rules.unknown;
}

/** The Luhn (mod 10) check of ISO/IEC 7812-1 Annex B: a typo check, not a security control. */
export function luhnValid(digits) {
  if (!DIGITS_ONLY.test(digits)) return false;
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let digit = digits.charCodeAt(i) - 48;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    double = !double;
  }
  return sum % 10 === 0;
}

function issue(field, code, extra) {
  return extra === undefined ? { field, code } : { field, code, ...extra };
}

/**
 * The card number's first problem, in the order a person fixes them: missing, too short or
 * long for any card, the wrong length for its brand, then the check digit. `digits` is the
 * number without the spaces the form adds.
 */
export function checkNumber(table, digits) {
  if (digits.length === 0) return issue("number", "FIELD_REQUIRED");
  if (!DIGITS_ONLY.test(digits)) return issue("number", "PAN_NOT_DIGITS");
  if (digits.length < PAN_MIN_LENGTH || digits.length > PAN_MAX_LENGTH) {
    return issue("number", "PAN_LENGTH");
  }
  const brand = detectBrand(table, digits);
  if (!rulesFor(table, brand).lengths.includes(digits.length)) {
    return issue("number", "PAN_LENGTH_FOR_BRAND", { brand });
  }
  if (!luhnValid(digits)) return issue("number", "PAN_LUHN");
  return undefined;
}

/**
 * The expiry field's text as month and year digits: "MM / YY" as the form formats it, and the
 * "MM/YYYY" or "M/YY" that browsers' autofill may put there.
 */
export function expiryPartsOf(text) {
  const withSeparator = /^\s*([0-9]{1,2})\s*[/\-.]\s*([0-9]{2}|[0-9]{4})\s*$/.exec(text);
  if (withSeparator !== null) {
    return { month: withSeparator[1].padStart(2, "0"), year: withSeparator[2].slice(-2) };
  }
  const digits = text.replace(/[^0-9]/g, "");
  return { month: digits.slice(0, 2), year: digits.slice(2, 4) };
}

/**
 * Month 01-12 and a two-digit year (20YY, ISO/IEC 7813), not past and at most 20 years ahead.
 * A card is good through the last day of its month; like the vault, judge that in UTC.
 */
export function checkExpiry(text, now) {
  const { month, year } = expiryPartsOf(text);
  if (month === "" && year === "") return [issue("exp_month", "FIELD_REQUIRED")];
  const issues = [];
  const m = Number(month);
  if (month.length !== 2 || m < 1 || m > 12) issues.push(issue("exp_month", "EXP_MONTH_INVALID"));
  if (year.length !== 2) issues.push(issue("exp_year", "EXP_YEAR_INVALID"));
  if (issues.length > 0) return issues;
  const y = 2000 + Number(year);
  const nowYear = now.getUTCFullYear();
  if (y * 12 + (m - 1) < nowYear * 12 + now.getUTCMonth()) {
    return [issue("exp_year", "CARD_EXPIRED")];
  }
  if (y - nowYear > MAX_YEARS_AHEAD) return [issue("exp_year", "EXP_YEAR_TOO_FAR")];
  return [];
}

/** 3 digits, or 4 for Amex's CID; either when the brand is unknown. */
export function checkCvc(table, brand, cvc) {
  if (cvc.length === 0) return issue("cvc", "CVC_REQUIRED");
  const lengths = rulesFor(table, brand).cvcLengths;
  if (!DIGITS_ONLY.test(cvc) || !lengths.includes(cvc.length)) {
    return issue("cvc", "CVC_INVALID", { brand });
  }
  return undefined;
}

/** The name as the vault will keep it: trimmed and NFC-normalised. */
export function normalizeName(name) {
  return name.trim().normalize("NFC");
}

/** 1-100 characters, no control or bidi-override characters, no card number. */
export function checkName(name) {
  const normalized = normalizeName(name);
  if (normalized.length === 0) return issue("name", "FIELD_REQUIRED");
  if ([...normalized].length > MAX_NAME_CHARS) {
    return issue("name", "NAME_INVALID", { reason: "too_long" });
  }
  if (FORBIDDEN_NAME_CHARS.test(normalized)) {
    return issue("name", "NAME_INVALID", { reason: "characters" });
  }
  if (NUMBER_IN_NAME.test(normalized)) {
    return issue("name", "NAME_INVALID", { reason: "card_number" });
  }
  return undefined;
}

/**
 * Checks the whole form at once so a person can fix every field in one go. `form` holds the
 * fields as typed: `{ number (digits only), expiry, cvc, name }`. On success `card` is the
 * tokenize contract's card object.
 */
export function validateCard(table, form, now) {
  const brand = detectBrand(table, form.number);
  const issues = [
    checkNumber(table, form.number),
    ...checkExpiry(form.expiry, now),
    checkCvc(table, brand, form.cvc),
    checkName(form.name),
  ].filter((found) => found !== undefined);
  if (issues.length > 0) return { ok: false, issues };
  const { month, year } = expiryPartsOf(form.expiry);
  const card = {
    number: form.number,
    exp_month: Number(month),
    exp_year: 2000 + Number(year),
    cvc: form.cvc,
    name: normalizeName(form.name),
  };
  return { ok: true, card };
}
