import type { Parsed } from "./field-issue.js";
import { accepted, rejected } from "./field-issue.js";
import { findPanLikeRuns } from "./pan-scan.js";

const MAX_NAME_CHARS = 100;
/**
 * Control characters, lone surrogates, line/paragraph separators and bidi overrides: none
 * belongs in a name, and they can corrupt logs, break UTF-8 storage or make a name display
 * as something else (Trojan Source, CVE-2021-42574). ZWJ/ZWNJ stay allowed: some scripts
 * need them.
 */
const FORBIDDEN = /[\p{Cc}\p{Cs}\p{Zl}\p{Zp}\u202A-\u202E\u2066-\u2069]/u;

/**
 * The optional cardholder name: trimmed, NFC-normalised, 1-100 Unicode characters, letters
 * of any script. The name is cardholder data (PCI DSS v4.0.1 glossary) and is stored with the
 * PAN's protection, but a card number typed into the name field would escape the PAN's own
 * handling (fingerprinting, masking, 3.5.1), so a PAN-like run makes the name invalid.
 */
export function parseCardholderName(
  input: unknown,
  field = "card.name",
): Parsed<string | undefined> {
  if (input === undefined) return accepted(undefined);
  if (typeof input !== "string") {
    return rejected(field, "NAME_INVALID", "The cardholder name must be a string.");
  }
  const name = input.trim().normalize("NFC");
  // A code point is at most two UTF-16 units: only short strings need counting.
  const tooLong = name.length > MAX_NAME_CHARS * 2 || [...name].length > MAX_NAME_CHARS;
  if (name.length === 0 || tooLong) {
    const message = `The cardholder name must have 1 to ${MAX_NAME_CHARS} characters.`;
    return rejected(field, "NAME_INVALID", message);
  }
  if (FORBIDDEN.test(name)) {
    return rejected(field, "NAME_INVALID", "The cardholder name contains control characters.");
  }
  if (findPanLikeRuns(name).length > 0) {
    return rejected(field, "NAME_INVALID", "The cardholder name must not contain a card number.");
  }
  return accepted(name);
}
