import { parseTokenId } from "../../domain/token-format.js";
import type { FieldError } from "../../errors/registry.js";

/**
 * Placeholders of the forward proxy's templates (docs/forwarding.md): `{{ tok_….number }}`,
 * `.exp_month`, `.exp_year`, `.name` and `.cvc`, whitespace inside the braces optional. A
 * template string is split once into literal text and placeholders; anything else between
 * `{{` and `}}` (or a `{{` never closed) is an error naming the field, never echoing the text,
 * which may hold card data a caller pasted by mistake.
 */
export const CARD_FIELDS = ["number", "exp_month", "exp_year", "name", "cvc"] as const;
export type CardField = (typeof CARD_FIELDS)[number];

export interface Placeholder {
  readonly tokenId: string;
  readonly field: CardField;
}

/** Literal text and placeholders, in order. */
export type TemplateText = readonly (string | Placeholder)[];

/** Field error codes of FORWARD_TEMPLATE_INVALID (docs/errors.md). */
export const FORWARD_ISSUE_CODES = [
  "PLACEHOLDER_INVALID",
  "PLACEHOLDER_FIELD_UNKNOWN",
  "PLACEHOLDER_NOT_ALLOWED",
  "PLACEHOLDER_REQUIRED",
  "TOO_MANY_TOKENS",
  "TOO_MANY_PLACEHOLDERS",
  "TEMPLATE_TOO_DEEP",
  "FORM_VALUE_INVALID",
  "BODY_NOT_ALLOWED",
  "HEADER_NOT_ALLOWED",
] as const;
export type ForwardIssueCode = (typeof FORWARD_ISSUE_CODES)[number];

export const issue = (field: string, code: ForwardIssueCode, message: string): FieldError => ({
  field,
  code,
  message,
});

const OPEN = "{{";
const CLOSE = "}}";
const INNER = /^\s*([^\s.]+)\.([^\s]*)\s*$/;
const FIELD_SET: ReadonlySet<string> = new Set(CARD_FIELDS);

export type ParsedText =
  | { readonly ok: true; readonly text: TemplateText }
  | { readonly ok: false; readonly issue: FieldError };

/** Splits `value` (at `path`) into literal text and placeholders. */
export function parseTemplateText(value: string, path: string): ParsedText {
  const parts: (string | Placeholder)[] = [];
  let cursor = 0;
  for (;;) {
    const open = value.indexOf(OPEN, cursor);
    if (open < 0) break;
    const close = value.indexOf(CLOSE, open + OPEN.length);
    if (close < 0) {
      return { ok: false, issue: issue(path, "PLACEHOLDER_INVALID", "A `{{` is never closed.") };
    }
    const match = INNER.exec(value.slice(open + OPEN.length, close));
    const tokenId = match === null ? undefined : parseTokenId(match[1]);
    if (match === null || tokenId === undefined) {
      const message = "A placeholder must be {{ <token id>.<field> }}.";
      return { ok: false, issue: issue(path, "PLACEHOLDER_INVALID", message) };
    }
    const field = match[2] ?? "";
    if (!FIELD_SET.has(field)) {
      const message = `A placeholder names one of ${CARD_FIELDS.join(", ")}.`;
      return { ok: false, issue: issue(path, "PLACEHOLDER_FIELD_UNKNOWN", message) };
    }
    if (open > cursor) parts.push(value.slice(cursor, open));
    parts.push({ tokenId, field: field as CardField });
    cursor = close + CLOSE.length;
  }
  if (cursor < value.length || parts.length === 0) parts.push(value.slice(cursor));
  return { ok: true, text: parts };
}

export const hasPlaceholders = (text: TemplateText): boolean =>
  text.some((part) => typeof part !== "string");

/** The card values a template can name, for one token. */
export interface CardValues {
  readonly number: string;
  readonly exp_month: number;
  readonly exp_year: number;
  readonly name: string | undefined;
  readonly cvc: string | undefined;
}

/**
 * One field as text: the month as two digits (`03`), the year as four, an absent name as the
 * empty string. A missing CVC never gets here: the service refuses before (CVC_NOT_AVAILABLE).
 */
export function fieldText(values: CardValues, field: CardField): string {
  switch (field) {
    case "exp_month":
      return String(values.exp_month).padStart(2, "0");
    case "exp_year":
      return String(values.exp_year);
    case "name":
      return values.name ?? "";
    case "cvc":
      if (values.cvc === undefined) throw new Error("CVC not taken");
      return values.cvc;
    case "number":
      return values.number;
  }
}

export type ValuesOf = (tokenId: string) => CardValues;

export function renderText(text: TemplateText, valuesOf: ValuesOf): string {
  let out = "";
  for (const part of text) {
    out += typeof part === "string" ? part : fieldText(valuesOf(part.tokenId), part.field);
  }
  return out;
}

/**
 * A JSON string value: exactly one placeholder and nothing else becomes the field's own JSON
 * type (a number for `exp_month`/`exp_year`, a string otherwise); anything else is the
 * interpolated string.
 */
export function renderJsonString(text: TemplateText, valuesOf: ValuesOf): string | number {
  const [only] = text;
  if (text.length === 1 && only !== undefined && typeof only !== "string") {
    const values = valuesOf(only.tokenId);
    if (only.field === "exp_month") return values.exp_month;
    if (only.field === "exp_year") return values.exp_year;
  }
  return renderText(text, valuesOf);
}
