import type { Parsed } from "./field-issue.js";
import { accepted, rejected } from "./field-issue.js";
import type { Brand } from "./iin-table.js";
import { brandRules, detectBrand } from "./iin-table.js";
import { INSPECT_CUSTOM } from "./inspect-symbol.js";
import { luhnValid } from "./luhn.js";

export type { TextSpan } from "./pan-scan.js";
export { findPanLikeRuns, scrubPans } from "./pan-scan.js";

/** ISO/IEC 7812-1 PAN lengths. */
export const PAN_MIN_LENGTH = 12;
export const PAN_MAX_LENGTH = 19;
/** Longest input worth stripping: 19 digits with a separator between each, and then some. */
const MAX_INPUT_CHARS = 64;
const SEPARATORS = /[ -]/g;
const DIGITS_ONLY = /^[0-9]*$/;

/**
 * The BIN shown with a PAN: 8 digits for PANs of 16 or more digits (the industry's move to
 * 8-digit BINs), 6 otherwise. PCI DSS v4.0.1 3.4.1 allows at most the BIN and last four.
 */
export function binOf(digits: string): string {
  return digits.slice(0, digits.length >= 16 ? 8 : 6);
}

/**
 * BIN + '*' for every hidden digit + last 4 (PCI DSS 3.4.1: at most BIN and last four are
 * displayed). Anything shorter than a PAN is fully starred, because BIN + last 4 would leave
 * nothing hidden.
 */
export function maskPan(digits: string): string {
  if (digits.length < PAN_MIN_LENGTH) return "*".repeat(digits.length);
  const bin = binOf(digits);
  const hidden = digits.length - bin.length - 4;
  return bin + "*".repeat(hidden) + digits.slice(-4);
}

type PanCheck = { code: "PAN_NOT_DIGITS" | "PAN_LENGTH" | "PAN_LUHN"; message: string };

/** The first rule the separator-free `digits` break, in the order a person would fix them. */
function checkDigits(digits: string): PanCheck | undefined {
  if (!DIGITS_ONLY.test(digits)) {
    return { code: "PAN_NOT_DIGITS", message: "The card number may contain only digits." };
  }
  if (digits.length < PAN_MIN_LENGTH || digits.length > PAN_MAX_LENGTH) {
    return { code: "PAN_LENGTH", message: "The card number must have 12 to 19 digits." };
  }
  if (!luhnValid(digits)) {
    return { code: "PAN_LUHN", message: "The card number is not valid; check it for typos." };
  }
  return undefined;
}

/**
 * A primary account number. The digits live in a private field and come out only through
 * `revealDigits()`, so every place that handles the clear number can be found with grep;
 * every accidental rendering (string, JSON, console.log) shows the masked form.
 */
export class Pan {
  readonly #digits: string;
  readonly brand: Brand;

  private constructor(digits: string, brand: Brand) {
    this.#digits = digits;
    this.brand = brand;
  }

  /** Accepts digits with optional ASCII spaces and dashes (as printed on cards and typed). */
  static parse(input: unknown, field = "card.number"): Parsed<Pan> {
    if (typeof input !== "string") {
      return rejected(field, "PAN_INVALID_TYPE", "The card number must be a string of digits.");
    }
    if (input.length > MAX_INPUT_CHARS) {
      return rejected(field, "PAN_LENGTH", "The card number must have 12 to 19 digits.");
    }
    const digits = input.replace(SEPARATORS, "");
    const failure = checkDigits(digits);
    if (failure !== undefined) return rejected(field, failure.code, failure.message);
    const brand = detectBrand(digits);
    if (!brandRules(brand).lengths.includes(digits.length)) {
      const message = "The card number has a length that its card brand does not issue.";
      return rejected(field, "PAN_LENGTH_FOR_BRAND", message);
    }
    return accepted(new Pan(digits, brand));
  }

  /** The full number. Every call site is a place where cardholder data is in clear. */
  revealDigits(): string {
    return this.#digits;
  }

  get length(): number {
    return this.#digits.length;
  }

  get bin(): string {
    return binOf(this.#digits);
  }

  get last4(): string {
    return this.#digits.slice(-4);
  }

  get masked(): string {
    return maskPan(this.#digits);
  }

  toString(): string {
    return this.masked;
  }

  toJSON(): string {
    return this.masked;
  }

  [INSPECT_CUSTOM](): string {
    return this.masked;
  }
}
