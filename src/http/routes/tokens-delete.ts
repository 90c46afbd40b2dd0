import type { FastifyInstance } from "fastify";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";
import { tokenIdParamsSchema } from "../schemas.js";

/** DELETE /v1/tokens/{id} — 204; the row and its ciphertext are gone (the deletion is audited). */
export function registerTokensDelete(app: FastifyInstance, deps: HttpDeps): void {
  app.delete(
    "/v1/tokens/:id",
    { schema: { params: tokenIdParamsSchema } },
    async (request, reply) => {
      await deps.tokens.remove(principalOf(request), (request.params as { id: string }).id);
      return reply.code(204).send();
    },
  );
}
