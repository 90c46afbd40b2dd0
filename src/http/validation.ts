import type { ErrorObject, ValidateFunction } from "ajv";
import { Ajv } from "ajv";
import addFormatsModule from "ajv-formats";
import type { FieldError } from "../errors/registry.js";

// ajv-formats is CommonJS; under ESM interop its function may arrive as `.default`.
type AddFormats = (ajv: Ajv, formats: string[]) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ??
  addFormatsModule) as unknown as AddFormats;

/**
 * One Ajv instance for every request schema. Nothing is coerced or removed: a field of the wrong
 * type or a field the schema does not name is an error (STYLE: request schemas reject unknown
 * fields), never silently fixed.
 */
export const ajv = new Ajv({
  allErrors: true,
  coerceTypes: false,
  removeAdditional: false,
  useDefaults: false,
  strict: true,
});
addFormats(ajv, ["date-time"]);

export function compileSchema(schema: object): ValidateFunction {
  return ajv.compile(schema);
}

/** Field error codes this file produces (docs/errors.md lists them; a test pins the list). */
export const SCHEMA_ISSUE_CODES = [
  "FIELD_REQUIRED",
  "UNKNOWN_FIELD",
  "INVALID_TYPE",
  "TOO_LONG",
  "TOO_SHORT",
  "INVALID_VALUE",
  "INVALID_FORMAT",
] as const;

/** `/card/number` → `card.number`; `/cards/3/card/number` → `cards.3.card.number`. */
function fieldPath(instancePath: string, extra?: string): string {
  const parts = instancePath.split("/").filter((p) => p !== "");
  if (extra !== undefined) parts.push(extra);
  return parts.map(safeSegment).join(".");
}

const PLAIN_SEGMENT = /^[A-Za-z0-9_.-]{1,64}$/;
const LONG_DIGIT_RUN = /\d{12}/;

/**
 * Object keys in a path are chosen by the client and could be anything, a card number
 * included: a key that is not a plain name, or that holds a run of 12+ digits, is shown as `*`.
 */
function safeSegment(segment: string): string {
  return PLAIN_SEGMENT.test(segment) && !LONG_DIGIT_RUN.test(segment) ? segment : "*";
}

/**
 * Turns Ajv errors into per-field errors with stable codes. The messages are written here and
 * never include the rejected value (it might be a card number).
 */
export function toFieldErrors(errors: readonly ErrorObject[], prefix = ""): FieldError[] {
  return errors.map((e) => {
    const params = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case "additionalProperties":
        return {
          field: prefix + fieldPath(e.instancePath, String(params.additionalProperty)),
          code: "UNKNOWN_FIELD",
          message: "This field is not part of the request schema.",
        };
      case "required":
        return {
          field: prefix + fieldPath(e.instancePath, String(params.missingProperty)),
          code: "FIELD_REQUIRED",
          message: "This field is required.",
        };
      case "type":
        return {
          field: prefix + fieldPath(e.instancePath),
          code: "INVALID_TYPE",
          message: `This field must be of type ${String(params.type)}.`,
        };
      case "maxLength":
      case "maxItems":
      case "maxProperties":
        return {
          field: prefix + fieldPath(e.instancePath),
          code: "TOO_LONG",
          message: `At most ${String(params.limit)} allowed.`,
        };
      case "minLength":
      case "minItems":
        return {
          field: prefix + fieldPath(e.instancePath),
          code: "TOO_SHORT",
          message: `At least ${String(params.limit)} required.`,
        };
      case "enum":
        return {
          field: prefix + fieldPath(e.instancePath),
          code: "INVALID_VALUE",
          message: `Allowed values: ${(params.allowedValues as unknown[]).join(", ")}.`,
        };
      case "format":
        return {
          field: prefix + fieldPath(e.instancePath),
          code: "INVALID_FORMAT",
          message: `This field must be a ${String(params.format)}.`,
        };
      default:
        return {
          field: prefix + fieldPath(e.instancePath),
          code: "INVALID_VALUE",
          message: "This value is not allowed here.",
        };
    }
  });
}
