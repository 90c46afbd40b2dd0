/**
 * What the person reads. Every message names the field and says what is wrong; none is ever
 * built from what was typed (PCI DSS v4.0.1 3.4.1: no more of the number is shown than the
 * person can already see), so these functions never receive a field's value: only the field,
 * the issue code, and the brand and its rules.
 */

const BRAND_NAMES = {
  visa: "Visa",
  mastercard: "Mastercard",
  amex: "American Express",
  diners: "Diners Club",
  discover: "Discover",
  jcb: "JCB",
  unionpay: "UnionPay",
  mir: "Mir",
};

/** The field names of the tokenize contract, as the form labels them. */
export const FIELD_LABELS = {
  number: "Card number",
  exp_month: "Expiry date",
  exp_year: "Expiry date",
  cvc: "Security code",
  name: "Name on card",
};

export function brandName(brand) {
  return BRAND_NAMES[brand];
}

/** [13, 16, 19] → "13, 16 or 19". */
function alternatives(numbers) {
  if (numbers.length <= 1) return numbers.join("");
  return `${numbers.slice(0, -1).join(", ")} or ${numbers[numbers.length - 1]}`;
}

function numberMessage(code, brand, rules) {
  switch (code) {
    case "FIELD_REQUIRED":
      return "Enter the card number.";
    case "PAN_LENGTH":
      return "The card number must have 12 to 19 digits.";
    case "PAN_LENGTH_FOR_BRAND": {
      const name = brandName(brand);
      const lengths = alternatives(rules.lengths);
      return name === undefined
        ? `The card number must have ${lengths} digits.`
        : `The card number is the wrong length: ${name} card numbers have ${lengths} digits.`;
    }
    case "PAN_LUHN":
      return "The card number is not valid. Check it for typos.";
    case "PAN_NOT_DIGITS":
    case "PAN_INVALID_TYPE":
      return "The card number may contain only digits.";
    default:
      return undefined;
  }
}

function expiryMessage(code) {
  switch (code) {
    case "FIELD_REQUIRED":
      return "Enter the expiry date as MM / YY.";
    case "EXP_MONTH_INVALID":
      return "The expiry month must be from 01 to 12 (MM / YY).";
    case "EXP_YEAR_INVALID":
      return "The expiry year must have two digits (MM / YY).";
    case "CARD_EXPIRED":
      return "The expiry date is in the past: this card has expired.";
    case "EXP_YEAR_TOO_FAR":
      return "The expiry year is too far in the future. Check it for typos.";
    default:
      return undefined;
  }
}

function cvcMessage(code, brand, rules) {
  switch (code) {
    case "FIELD_REQUIRED":
    case "CVC_REQUIRED":
      return "Enter the security code.";
    case "CVC_INVALID": {
      const name = brandName(brand);
      const digits = `${alternatives(rules.cvcLengths)} digits`;
      return name === undefined
        ? `The security code must have ${digits}.`
        : `The security code must have ${digits} for ${name}.`;
    }
    default:
      return undefined;
  }
}

function nameMessage(code, reason) {
  if (code === "FIELD_REQUIRED") return "Enter the name as it appears on the card.";
  if (code !== "NAME_INVALID") return undefined;
  switch (reason) {
    case "too_long":
      return "The name on card must have at most 100 characters.";
    case "characters":
      return "The name on card contains characters that cannot be used.";
    case "card_number":
      return "The name on card must not contain a card number.";
    default:
      return "The name on card is not valid. Use 1 to 100 letters as printed on the card.";
  }
}

/**
 * The sentence for one issue `{ field, code, brand?, reason? }` (the browser's or the vault's).
 * `rules` are the brand's lengths from brands.json. A code this file does not know still gets
 * a sentence that names the field.
 */
export function messageFor(issue, rules) {
  const brand = issue.brand ?? "unknown";
  let message;
  if (issue.field === "number") message = numberMessage(issue.code, brand, rules);
  else if (issue.field === "exp_month" || issue.field === "exp_year")
    message = expiryMessage(issue.code);
  else if (issue.field === "cvc") message = cvcMessage(issue.code, brand, rules);
  else if (issue.field === "name") message = nameMessage(issue.code, issue.reason);
  if (message !== undefined) return message;
  const label = FIELD_LABELS[issue.field];
  return label === undefined ? "The card details are not valid." : `${label}: check this field.`;
}

/**
 * The field of the tokenize contract a vault field error is about: "number", "card.number" and
 * "cards.0.card.number" all mean the number. Anything else is not a field of this form.
 */
export function contractFieldOf(path) {
  if (typeof path !== "string") return undefined;
  const last = path.slice(path.lastIndexOf(".") + 1);
  return Object.hasOwn(FIELD_LABELS, last) ? last : undefined;
}

/** Messages for failures that are not about one field, by the vault's problem code. */
export function formMessageFor(code, status) {
  // A stale payload (JWT_EXPIRED, also 401) is not a stale session: a new submit makes a new one.
  if (code === "CAPTURE_SESSION_INVALID" || (code === undefined && status === 401)) {
    return "This card form has expired. Reload the page and enter the card again.";
  }
  if (code === "NETWORK") return "The card could not be sent. Check your connection and try again.";
  if (code === "FRAME_LOAD_FAILED") return "The card form could not load. Reload the page.";
  if (status === 429) return "Too many attempts. Wait a minute and try again.";
  if (status === 503) return "Card saving is unavailable right now. Try again in a few minutes.";
  return "The card could not be saved. Try again.";
}
