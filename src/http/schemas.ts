/**
 * JSON schemas shared by the token routes. Requests reject unknown fields; responses are
 * allowlists (additionalProperties: false), so a field added to a service result later cannot
 * reach a client, let alone carry card data, unless a schema names it.
 */
export const cardInputSchema = {
  type: "object",
  additionalProperties: false,
  required: ["number", "exp_month", "exp_year"],
  properties: {
    // A string, never a JSON number: 16–19 digit numbers do not survive IEEE-754 doubles.
    number: { type: "string", maxLength: 64 },
    exp_month: { type: "integer" },
    exp_year: { type: "integer" },
    name: { type: "string", maxLength: 200 },
    // Held encrypted in the ephemeral store until authorization, never stored (PCI DSS 3.3.1.2).
    cvc: { type: "string", maxLength: 8 },
  },
} as const;

export const tokenizeRequestSchema = {
  type: "object",
  additionalProperties: false,
  required: ["card"],
  properties: {
    card: cardInputSchema,
    format: { type: "string", enum: ["random", "card_alias"] },
    expires_at: { type: "string", format: "date-time", maxLength: 64 },
    metadata: {
      type: "object",
      maxProperties: 20,
      propertyNames: { type: "string", pattern: "^[A-Za-z0-9_.-]{1,40}$" },
      additionalProperties: { type: "string", maxLength: 500 },
    },
    dedupe: { type: "boolean" },
    persistent: { type: "boolean" },
  },
} as const;

export const tokenViewSchema = {
  type: "object",
  additionalProperties: false,
  required: [
    "id",
    "format",
    "card",
    "fingerprint",
    "metadata",
    "created_at",
    "expires_at",
    "persistent",
  ],
  properties: {
    id: { type: "string" },
    format: { type: "string" },
    card: {
      type: "object",
      additionalProperties: false,
      required: ["brand", "bin", "last4", "exp_month", "exp_year"],
      properties: {
        brand: { type: "string" },
        bin: { type: "string" },
        last4: { type: "string" },
        exp_month: { type: "integer" },
        exp_year: { type: "integer" },
      },
    },
    fingerprint: { type: "string" },
    metadata: { type: "object", additionalProperties: { type: "string" } },
    created_at: { type: "string" },
    expires_at: { type: ["string", "null"] },
    persistent: { type: "boolean" },
  },
} as const;

export const tokenizeResponseSchema = {
  ...tokenViewSchema,
  required: [...tokenViewSchema.required, "duplicate"],
  properties: {
    ...tokenViewSchema.properties,
    duplicate: { type: "boolean" },
    // When the request carried a CVC: until when the vault holds it for authorization.
    cvc_expires_at: { type: "string" },
  },
} as const;

export const fieldErrorSchema = {
  type: "object",
  additionalProperties: false,
  required: ["field", "code", "message"],
  properties: { field: { type: "string" }, code: { type: "string" }, message: { type: "string" } },
} as const;

export const tokenIdParamsSchema = {
  type: "object",
  additionalProperties: false,
  required: ["id"],
  properties: { id: { type: "string", minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_]+$" } },
} as const;
