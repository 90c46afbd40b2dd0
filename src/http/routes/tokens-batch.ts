import type { FastifyInstance } from "fastify";
import type { TokenizeRequest } from "../../services/tokens/tokenize-input.js";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";
import { idempotent } from "../idempotent.js";
import { problemOf } from "../problem.js";
import { fieldErrorSchema, tokenizeRequestSchema, tokenViewSchema } from "../schemas.js";
import { compileSchema, toFieldErrors } from "../validation.js";

export const MAX_BATCH = 1000;
const validateItem = compileSchema(tokenizeRequestSchema);

const itemResultSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    status: { type: "integer" },
    token: { ...tokenViewSchema },
    duplicate: { type: "boolean" },
    cvc_expires_at: { type: "string" },
    error: {
      type: "object",
      additionalProperties: false,
      properties: {
        code: { type: "string" },
        title: { type: "string" },
        errors: { type: "array", items: fieldErrorSchema },
      },
    },
  },
} as const;

/**
 * POST /v1/tokens/batch — up to 1,000 cards; the response holds one result per item, in order:
 * either the token (status 201, or 200 with duplicate) or that item's error (status 400 with
 * its field errors). One bad card does not fail the others.
 */
export function registerTokensBatch(app: FastifyInstance, deps: HttpDeps): void {
  app.post(
    "/v1/tokens/batch",
    {
      bodyLimit: 2 * 1024 * 1024,
      schema: {
        body: {
          type: "object",
          additionalProperties: false,
          required: ["cards"],
          properties: {
            cards: { type: "array", minItems: 1, maxItems: MAX_BATCH, items: { type: "object" } },
          },
        },
        response: {
          200: {
            type: "object",
            additionalProperties: false,
            required: ["results"],
            properties: { results: { type: "array", items: itemResultSchema } },
          },
        },
      },
    },
    async (request, reply) =>
      idempotent(deps, request, reply, async () => {
        const { cards } = request.body as { cards: unknown[] };
        const shapeErrors = cards.map((item, i) =>
          validateItem(item) ? undefined : toFieldErrors(validateItem.errors ?? [], `cards.${i}.`),
        );
        const positions = cards.flatMap((_, i) => (shapeErrors[i] === undefined ? [i] : []));
        const valid = positions.map((i) => cards[i]) as TokenizeRequest[];
        const outcomes = await deps.tokens.tokenizeBatch(
          principalOf(request),
          valid,
          (k) => `cards.${positions[k]}.`,
        );
        let next = 0;
        const results = shapeErrors.map((errors) => {
          if (errors !== undefined) return failed("VALIDATION_FAILED", errors, request.id);
          const outcome = outcomes[next++];
          if (outcome === undefined || !outcome.ok) {
            return failed(
              outcome?.code === "VALIDATION_FAILED" ? "VALIDATION_FAILED" : "INTERNAL_ERROR",
              outcome?.ok === false ? outcome.errors : [],
              request.id,
            );
          }
          return {
            status: outcome.duplicate ? 200 : 201,
            token: outcome.token,
            duplicate: outcome.duplicate,
            ...(outcome.cvcExpiresAt === undefined
              ? {}
              : { cvc_expires_at: outcome.cvcExpiresAt.toISOString() }),
          };
        });
        return { status: 200, body: { results } };
      }),
  );
}

function failed(
  code: "VALIDATION_FAILED" | "INTERNAL_ERROR",
  errors: readonly { field: string; code: string; message: string }[],
  requestId: string,
) {
  const problem = problemOf(code, requestId, { errors });
  return {
    status: problem.status,
    error: { code: problem.code, title: problem.title, errors: [...errors] },
  };
}
