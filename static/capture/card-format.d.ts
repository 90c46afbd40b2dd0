/** Types of card-format.js, for the TypeScript tests that import it. */
export interface FieldEdit {
  readonly value: string;
  readonly caret: number;
  readonly inputType?: string | undefined;
  readonly previousDigits?: string | undefined;
}

export interface EditResult {
  readonly value: string;
  readonly caret: number;
  readonly digits: string;
}

export const EXPIRY_SEPARATOR: string;
export function digitsOf(text: string): string;
export function groupsFor(brand: string): readonly number[];
export function formatNumber(digits: string, brand: string): string;
export function formatExpiry(digits: string): string;
export function caretAfterDigits(formatted: string, count: number): number;
export function applyEdit(
  edit: FieldEdit,
  shape: (value: string) => { digits: string; prepended: number },
  format: (digits: string) => string,
): EditResult;
export function editNumber(
  edit: FieldEdit,
  brandOf: (digits: string) => string,
  maxLengthOf: (brand: string) => number,
): EditResult & { brand: string };
export function expiryShape(value: string): { digits: string; prepended: number };
export function editExpiry(edit: FieldEdit): EditResult;
export function editCvc(edit: FieldEdit, maxLength: number): EditResult;
