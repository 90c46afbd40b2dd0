/** Types of messages.js, for the TypeScript tests that import it. */
import type { BrandRulesJson, ContractField } from "./card-rules.js";

export const FIELD_LABELS: Readonly<Record<ContractField, string>>;
export function brandName(brand: string): string | undefined;
export function messageFor(
  issue: { field: string | undefined; code: string; brand?: string; reason?: string },
  rules: BrandRulesJson,
): string;
export function contractFieldOf(path: unknown): ContractField | undefined;
export function formMessageFor(code: string | undefined, status: number): string;
