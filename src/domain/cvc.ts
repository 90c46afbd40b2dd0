import type { Parsed } from "./field-issue.js";
import { accepted, rejected } from "./field-issue.js";
import type { Brand } from "./iin-table.js";
import { brandRules } from "./iin-table.js";
import { INSPECT_CUSTOM } from "./inspect-symbol.js";

const DIGITS_ONLY = /^[0-9]+$/;
const MASK = "***";

/**
 * The card verification code: sensitive authentication data. PCI DSS v4.0.1 3.3.1.2: it is
 * never retained after authorization, so this wrapper only ever renders as "***" and the
 * digits come out through `revealDigits()` alone.
 */
export class Cvc {
  readonly #digits: string;

  private constructor(digits: string) {
    this.#digits = digits;
  }

  /**
   * A string of 3 digits (4 for Amex's CID; 3 or 4 when the brand is unknown). Numbers are
   * refused: JSON numbers drop leading zeros, so 012 would silently become 12.
   */
  static parse(input: unknown, brand: Brand, field = "card.cvc"): Parsed<Cvc> {
    const lengths = brandRules(brand).cvcLengths;
    if (typeof input !== "string" || !lengths.includes(input.length) || !DIGITS_ONLY.test(input)) {
      const expected = lengths.join(" or ");
      return rejected(field, "CVC_INVALID", `The security code must be ${expected} digits.`);
    }
    return accepted(new Cvc(input));
  }

  /** The digits. Call only to hand the CVC to a processor for authorization. */
  revealDigits(): string {
    return this.#digits;
  }

  get length(): number {
    return this.#digits.length;
  }

  toString(): string {
    return MASK;
  }

  toJSON(): string {
    return MASK;
  }

  [INSPECT_CUSTOM](): string {
    return MASK;
  }
}

export function parseCvc(input: unknown, brand: Brand, field = "card.cvc"): Parsed<Cvc> {
  return Cvc.parse(input, brand, field);
}
