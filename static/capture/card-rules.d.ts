/** Types of card-rules.js, for the TypeScript tests that import it. */
export type BrandName =
  | "visa"
  | "mastercard"
  | "amex"
  | "diners"
  | "discover"
  | "jcb"
  | "unionpay"
  | "mir"
  | "unknown";

export interface BrandTableJson {
  readonly ranges: readonly { brand: string; from: number; to: number; digits: number }[];
  readonly rules: Readonly<Record<string, BrandRulesJson>>;
}

export interface BrandRulesJson {
  readonly lengths: readonly number[];
  readonly cvcLength: number;
  readonly cvcLengths: readonly number[];
}

export interface BrandTable {
  readonly ranges: readonly { brand: string; from: number; to: number; digits: number }[];
  readonly rules: Readonly<Record<string, BrandRulesJson>>;
}

export type ContractField = "number" | "exp_month" | "exp_year" | "cvc" | "name";

export interface CardIssue {
  readonly field: ContractField;
  readonly code: string;
  readonly brand?: string;
  readonly reason?: "too_long" | "characters" | "card_number";
}

export interface CardForm {
  readonly number: string;
  readonly expiry: string;
  readonly cvc: string;
  readonly name: string;
}

export interface CaptureCard {
  readonly number: string;
  readonly exp_month: number;
  readonly exp_year: number;
  readonly cvc: string;
  readonly name: string;
}

export const MAX_YEARS_AHEAD: number;
export const MAX_NAME_CHARS: number;
export function brandTableFrom(json: unknown): BrandTable;
export function detectBrand(table: BrandTable, digits: string): string;
export function rulesFor(table: BrandTable, brand: string): BrandRulesJson;
export function luhnValid(digits: string): boolean;
export function checkNumber(table: BrandTable, digits: string): CardIssue | undefined;
export function expiryPartsOf(text: string): { month: string; year: string };
export function checkExpiry(text: string, now: Date): CardIssue[];
export function checkCvc(table: BrandTable, brand: string, cvc: string): CardIssue | undefined;
export function normalizeName(name: string): string;
export function checkName(name: string): CardIssue | undefined;
export function validateCard(
  table: BrandTable,
  form: CardForm,
  now: Date,
): { ok: true; card: CaptureCard } | { ok: false; issues: CardIssue[] };
