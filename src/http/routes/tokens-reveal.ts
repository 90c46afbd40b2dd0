import type { FastifyInstance } from "fastify";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";
import { tokenIdParamsSchema } from "../schemas.js";

const revealResponseSchema = {
  type: "object",
  additionalProperties: false,
  required: ["id", "card"],
  properties: {
    id: { type: "string" },
    card: {
      type: "object",
      additionalProperties: false,
      required: ["number", "exp_month", "exp_year", "brand"],
      properties: {
        number: { type: "string" },
        exp_month: { type: "integer" },
        exp_year: { type: "integer" },
        name: { type: "string" },
        brand: { type: "string" },
      },
    },
  },
} as const;

/**
 * POST /v1/tokens/{id}/reveal — the full card, for `tokens:reveal` only (PCI DSS 3.4.1, 7.2.2).
 * The caller states a purpose, which is written to the audit event with the access; no card data
 * is returned unless that event was written. POST, not GET: the purpose travels in a body and
 * the response must never be cached (Cache-Control: no-store).
 */
export function registerTokensReveal(app: FastifyInstance, deps: HttpDeps): void {
  app.post(
    "/v1/tokens/:id/reveal",
    {
      bodyLimit: 4 * 1024,
      schema: {
        params: tokenIdParamsSchema,
        body: {
          type: "object",
          additionalProperties: false,
          required: ["purpose"],
          properties: {
            purpose: {
              type: "string",
              minLength: 1,
              maxLength: 200,
              pattern: "^[^\\u0000-\\u001f]+$",
            },
          },
        },
        response: { 200: revealResponseSchema },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const { purpose } = request.body as { purpose: string };
      const revealed = await deps.tokens.reveal(principalOf(request), id, purpose);
      return reply.header("cache-control", "no-store").header("pragma", "no-cache").send(revealed);
    },
  );
}
