/**
 * Card brands by issuer identification number (IIN/BIN) prefix, with the PAN lengths and
 * CVC lengths each brand issues. Transcribed from the networks' public ranges as recorded in
 * shared/testdata/test-cards.json; a unit test pins this table against that file.
 */
export type Brand =
  | "visa"
  | "mastercard"
  | "amex"
  | "diners"
  | "discover"
  | "jcb"
  | "unionpay"
  | "mir"
  | "unknown";

export type KnownBrand = Exclude<Brand, "unknown">;

/** Prefixes of `digits` digits, read as an integer, from `from` to `to` inclusive. */
export interface IinRange {
  readonly brand: KnownBrand;
  readonly from: number;
  readonly to: number;
  readonly digits: number;
}

export const IIN_RANGES: readonly IinRange[] = [
  { brand: "visa", from: 4, to: 4, digits: 1 },
  { brand: "mastercard", from: 51, to: 55, digits: 2 },
  { brand: "mastercard", from: 2221, to: 2720, digits: 4 },
  { brand: "amex", from: 34, to: 34, digits: 2 },
  { brand: "amex", from: 37, to: 37, digits: 2 },
  { brand: "diners", from: 300, to: 305, digits: 3 },
  { brand: "diners", from: 36, to: 36, digits: 2 },
  { brand: "diners", from: 38, to: 38, digits: 2 },
  { brand: "diners", from: 39, to: 39, digits: 2 },
  { brand: "discover", from: 6011, to: 6011, digits: 4 },
  { brand: "discover", from: 644, to: 649, digits: 3 },
  { brand: "discover", from: 65, to: 65, digits: 2 },
  // Discover's co-branded range inside UnionPay's "62": the longer prefix wins (iin_note).
  { brand: "discover", from: 622126, to: 622925, digits: 6 },
  { brand: "jcb", from: 3528, to: 3589, digits: 4 },
  { brand: "unionpay", from: 62, to: 62, digits: 2 },
  { brand: "mir", from: 2200, to: 2204, digits: 4 },
];

export interface BrandRules {
  /** PAN lengths the brand issues. */
  readonly lengths: readonly number[];
  /** The CVC length the brand prints (4 for Amex's CID, 3 otherwise): for form hints. */
  readonly cvcLength: number;
  /** The CVC lengths a parser accepts for this brand. */
  readonly cvcLengths: readonly number[];
}

const STANDARD_CVC = { cvcLength: 3, cvcLengths: [3] } as const;

const BRAND_RULES: Readonly<Record<Brand, BrandRules>> = {
  visa: { lengths: [13, 16, 19], ...STANDARD_CVC },
  mastercard: { lengths: [16], ...STANDARD_CVC },
  amex: { lengths: [15], cvcLength: 4, cvcLengths: [4] },
  diners: { lengths: [14, 16, 19], ...STANDARD_CVC },
  discover: { lengths: [16, 19], ...STANDARD_CVC },
  jcb: { lengths: [16, 17, 18, 19], ...STANDARD_CVC },
  unionpay: { lengths: [16, 17, 18, 19], ...STANDARD_CVC },
  mir: { lengths: [16, 17, 18, 19], ...STANDARD_CVC },
  // A PAN outside every known range (private label, a new network) is still a PAN: accept
  // any ISO/IEC 7812 length and either CVC length, since we cannot know which it prints.
  unknown: { lengths: [12, 13, 14, 15, 16, 17, 18, 19], cvcLength: 3, cvcLengths: [3, 4] },
};

/** Longest prefix first, so a 6-digit range beats the 2-digit range that contains it. */
const BY_LONGEST_PREFIX = [...IIN_RANGES].sort((a, b) => b.digits - a.digits);
const DIGITS_ONLY = /^[0-9]+$/;

/** The brand whose longest matching IIN prefix starts `digits`; "unknown" when none does. */
export function detectBrand(digits: string): Brand {
  for (const range of BY_LONGEST_PREFIX) {
    if (digits.length < range.digits) continue;
    const prefix = digits.slice(0, range.digits);
    if (!DIGITS_ONLY.test(prefix)) continue;
    const value = Number(prefix);
    if (value >= range.from && value <= range.to) return range.brand;
  }
  return "unknown";
}

export function brandRules(brand: Brand): BrandRules {
  return BRAND_RULES[brand];
}
