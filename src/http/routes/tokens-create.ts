import type { FastifyInstance } from "fastify";
import type { TokenizeResult } from "../../services/tokens/token-service.js";
import type { TokenizeRequest } from "../../services/tokens/tokenize-input.js";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";
import { idempotent } from "../idempotent.js";
import { tokenizeRequestSchema, tokenizeResponseSchema } from "../schemas.js";

/** The body of a tokenize response (tokenizeResponseSchema): the token, and what became of it. */
export function tokenizeResponseBody(result: TokenizeResult): Record<string, unknown> {
  return {
    ...result.token,
    duplicate: result.duplicate,
    ...(result.cvcExpiresAt === undefined
      ? {}
      : { cvc_expires_at: result.cvcExpiresAt.toISOString() }),
  };
}

/**
 * POST /v1/tokens — tokenize one card. 201 with the new token; 200 with `duplicate: true` when the
 * tenant already holds a token for this card (dedupe on, the default).
 */
export function registerTokensCreate(app: FastifyInstance, deps: HttpDeps): void {
  app.post(
    "/v1/tokens",
    {
      config: { scope: "tokens:write" },
      bodyLimit: 16 * 1024,
      schema: {
        body: tokenizeRequestSchema,
        response: { 200: tokenizeResponseSchema, 201: tokenizeResponseSchema },
      },
    },
    async (request, reply) =>
      idempotent(deps, request, reply, async () => {
        const result = await deps.tokens.tokenize(
          principalOf(request),
          request.body as TokenizeRequest,
        );
        return { status: result.duplicate ? 200 : 201, body: tokenizeResponseBody(result) };
      }),
  );
}
