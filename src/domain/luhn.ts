/**
 * The Luhn (mod 10) check digit that ends every PAN (ISO/IEC 7812-1 Annex B). It catches
 * every single-digit error and most adjacent transpositions; it is a typo check, not a
 * security control.
 */
const DIGITS_ONLY = /^[0-9]+$/;

/** Sum from the right, doubling every second digit; `doubleFirst` doubles the rightmost. */
function luhnSum(digits: string, doubleFirst: boolean): number {
  let sum = 0;
  let double = doubleFirst;
  for (let i = digits.length - 1; i >= 0; i--) {
    let digit = digits.charCodeAt(i) - 48;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    double = !double;
  }
  return sum;
}

/** True when `digits` is a non-empty string of ASCII digits whose last digit checks. */
export function luhnValid(digits: string): boolean {
  return DIGITS_ONLY.test(digits) && luhnSum(digits, false) % 10 === 0;
}

/** The digit to append to `partialDigits` so that the result passes `luhnValid`. */
export function luhnCheckDigit(partialDigits: string): number {
  if (partialDigits !== "" && !DIGITS_ONLY.test(partialDigits)) {
    throw new RangeError("luhnCheckDigit expects ASCII digits only");
  }
  return (10 - (luhnSum(partialDigits, true) % 10)) % 10;
}
