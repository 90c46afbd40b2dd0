/**
 * Live formatting of the card fields while keeping the caret where the person is typing: the
 * number grouped as printed on the card (4-4-4-4, Amex 4-6-5), the expiry as "MM / YY", the
 * CVC as digits. Each edit is re-derived from the digits alone, so pasting "4242-4242 …" or an
 * autofilled value ends up in the same shape as typing.
 */

const NON_DIGITS = /[^0-9]/g;
/** Amex prints 4-6-5; every other brand groups by four (19-digit numbers end 4-4-4-4-3). */
const AMEX_GROUPS = [4, 6, 5];
const DEFAULT_GROUPS = [4, 4, 4, 4, 3];
export const EXPIRY_SEPARATOR = " / ";

export function digitsOf(text) {
  return text.replace(NON_DIGITS, "");
}

export function groupsFor(brand) {
  return brand === "amex" ? AMEX_GROUPS : DEFAULT_GROUPS;
}

/** "4242424242424242" → "4242 4242 4242 4242"; "378282246310005" → "3782 822463 10005". */
export function formatNumber(digits, brand) {
  const parts = [];
  let start = 0;
  for (const size of groupsFor(brand)) {
    if (start >= digits.length) break;
    parts.push(digits.slice(start, start + size));
    start += size;
  }
  if (start < digits.length) parts.push(digits.slice(start));
  return parts.join(" ");
}

/** "1228" → "12 / 28"; fewer than three digits stay as typed. */
export function formatExpiry(digits) {
  return digits.length > 2 ? digits.slice(0, 2) + EXPIRY_SEPARATOR + digits.slice(2) : digits;
}

/** The index just after the `count`-th digit of `formatted` (0 when `count` is 0). */
export function caretAfterDigits(formatted, count) {
  if (count <= 0) return 0;
  let seen = 0;
  for (let i = 0; i < formatted.length; i++) {
    const code = formatted.charCodeAt(i);
    if (code >= 48 && code <= 57 && ++seen === count) return i + 1;
  }
  return formatted.length;
}

/**
 * One edit of a formatted field. `edit` is what the input event left: `value`, `caret`,
 * `inputType` and the field's digits before the edit (`previousDigits`). When a deletion only
 * removed a separator the form had added, the digit beside it goes instead, or Backspace would
 * seem stuck. `shape(value)` gives the field's digits (and how many it added in front);
 * `format(digits)` lays them out.
 */
export function applyEdit(edit, shape, format) {
  const { value, caret, inputType, previousDigits } = edit;
  let { digits, prepended } = shape(value);
  let before = Math.min(digitsOf(value.slice(0, caret)).length + prepended, digits.length);
  if (digits === previousDigits && inputType === "deleteContentBackward" && before > 0) {
    digits = digits.slice(0, before - 1) + digits.slice(before);
    before -= 1;
  } else if (digits === previousDigits && inputType === "deleteContentForward") {
    digits = digits.slice(0, before) + digits.slice(before + 1);
  }
  const formatted = format(digits);
  // At the end of the digits the caret goes to the end of the text (after any separator).
  const at = before >= digits.length ? formatted.length : caretAfterDigits(formatted, before);
  return { value: formatted, caret: at, digits };
}

/** The number field: digits, capped at the longest length the brand issues. */
export function editNumber(edit, brandOf, maxLengthOf) {
  const shape = (value) => {
    const all = digitsOf(value);
    return { digits: all.slice(0, maxLengthOf(brandOf(all))), prepended: 0 };
  };
  const result = applyEdit(edit, shape, (digits) => formatNumber(digits, brandOf(digits)));
  return { ...result, brand: brandOf(result.digits) };
}

/**
 * The expiry field: at most four digits; a first digit of 2-9 can only be a month, so it gets
 * its leading zero ("4" → "04"). A month and year around a separator ("1/28", or "12/2028"
 * from autofill) are read as such: the month padded, the year's last two digits kept.
 */
export function expiryShape(value) {
  const split = /^\s*([0-9]{1,2})\s*[/\-.]\s*([0-9]{2}|[0-9]{4})\s*$/.exec(value);
  if (split !== null) {
    const month = split[1].padStart(2, "0");
    return { digits: month + split[2].slice(-2), prepended: month.length - split[1].length };
  }
  const digits = digitsOf(value);
  if (digits.length > 0 && digits[0] >= "2") {
    return { digits: `0${digits}`.slice(0, 4), prepended: 1 };
  }
  return { digits: digits.slice(0, 4), prepended: 0 };
}

export function editExpiry(edit) {
  return applyEdit(edit, expiryShape, formatExpiry);
}

/** The CVC field: digits only, at most `maxLength` of them. */
export function editCvc(edit, maxLength) {
  const shape = (value) => ({ digits: digitsOf(value).slice(0, maxLength), prepended: 0 });
  return applyEdit(edit, shape, (digits) => digits);
}
