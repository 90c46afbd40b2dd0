import type { FastifyInstance } from "fastify";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";
import { tokenIdParamsSchema, tokenViewSchema } from "../schemas.js";

/** GET /v1/tokens/{id} — the masked view (BIN, last 4, brand, expiry); another tenant's token is a 404. */
export function registerTokensGet(app: FastifyInstance, deps: HttpDeps): void {
  app.get(
    "/v1/tokens/:id",
    {
      schema: { params: tokenIdParamsSchema, response: { 200: tokenViewSchema } },
    },
    async (request) => deps.tokens.get(principalOf(request), (request.params as { id: string }).id),
  );
}
