import { readFileSync } from "node:fs";
import fc from "fast-check";
import type { Brand } from "../../../src/domain/iin-table.js";
import { brandRules, IIN_RANGES } from "../../../src/domain/iin-table.js";
import { luhnCheckDigit } from "../../../src/domain/luhn.js";
import { Pan } from "../../../src/domain/pan.js";

/** The published test cards: the only card numbers tests may spell out. */
export interface TestCards {
  valid: { brand: Brand; number: string }[];
  invalid_luhn: string[];
  iin_ranges: { brand: Brand; prefixes: string[]; lengths: number[]; cvc_length?: number }[];
}

export const testCards: TestCards = JSON.parse(
  readFileSync(new URL("../../../../shared/testdata/test-cards.json", import.meta.url), "utf8"),
);

export function testCard(brand: Brand): string {
  const card = testCards.valid.find((c) => c.brand === brand);
  if (card === undefined) throw new Error(`no ${brand} test card`);
  return card.number;
}

/** `partial` completed with its Luhn check digit. */
export function withCheckDigit(partial: string): string {
  return partial + String(luhnCheckDigit(partial));
}

export function digitsArb(minLength: number, maxLength = minLength): fc.Arbitrary<string> {
  return fc.string({ unit: fc.constantFrom(..."0123456789"), minLength, maxLength });
}

/** Luhn-valid, 12-19 digits, first digit outside every IIN range (so brand "unknown"). */
const unknownBrandPanArb = fc
  .tuple(fc.constantFrom("0", "1", "7", "8", "9"), fc.integer({ min: 12, max: 19 }))
  .chain(([first, length]) => digitsArb(length - 2).map((rest) => withCheckDigit(first + rest)));

/** Luhn-valid numbers in a brand's range with one of its lengths. */
const knownBrandPanArb = fc
  .constantFrom(...IIN_RANGES)
  .chain((range) =>
    fc.tuple(
      fc.integer({ min: range.from, max: range.to }),
      fc.constantFrom(...brandRules(range.brand).lengths),
      fc.constant(range.digits),
    ),
  )
  .chain(([prefix, length, digits]) =>
    digitsArb(length - digits - 1).map((rest) => withCheckDigit(String(prefix) + rest)),
  );

/** Digits of random PANs that `Pan.parse` accepts, of every length 12-19. */
export const panDigitsArb: fc.Arbitrary<string> = fc
  .oneof(unknownBrandPanArb, knownBrandPanArb)
  .filter((digits) => Pan.parse(digits).ok);

export const panArb: fc.Arbitrary<Pan> = panDigitsArb.map((digits) => parsePan(digits));

/** Parses a PAN a test knows to be valid. */
export function parsePan(input: string): Pan {
  const parsed = Pan.parse(input);
  if (!parsed.ok) throw new Error(`test PAN rejected: ${parsed.issues[0]?.code}`);
  return parsed.value;
}
