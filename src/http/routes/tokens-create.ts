import type { FastifyInstance } from "fastify";
import { VaultError } from "../../errors/registry.js";
import { JOSE_CONTENT_TYPE } from "../../services/capture/nested-jwt.js";
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
  // Encapsulated, so `application/jose` bodies are parsed for this route only.
  app.register(async (scoped) => registerRoute(scoped, deps));
}

function isJose(contentType: string | undefined): boolean {
  return contentType?.split(";")[0]?.trim().toLowerCase() === JOSE_CONTENT_TYPE;
}

/**
 * The body is JSON, or (for PCI-scoped merchants) `application/jose`: a nested JWT whose
 * `request` claim is the same JSON, opened before validation (docs/capture.md). With
 * `Accept: application/jose` the response is encrypted to the tenant's registered key.
 */
function registerRoute(app: FastifyInstance, deps: HttpDeps): void {
  app.addContentTypeParser(JOSE_CONTENT_TYPE, { parseAs: "string" }, (_request, body, done) =>
    done(null, body),
  );
  app.post(
    "/v1/tokens",
    {
      bodyLimit: 16 * 1024,
      schema: {
        body: tokenizeRequestSchema,
        response: { 200: tokenizeResponseSchema, 201: tokenizeResponseSchema },
      },
      preValidation: async (request) => {
        const encryptedReply = isJose(request.headers.accept);
        if (!isJose(request.headers["content-type"])) {
          if (encryptedReply) throw new VaultError("UNSUPPORTED_MEDIA_TYPE");
          return;
        }
        const principal = principalOf(request);
        if (encryptedReply) await deps.nestedJwt.requireResponseKey(principal);
        request.body = await deps.nestedJwt.open(String(request.body), principal, {
          method: "POST",
          path: "/v1/tokens",
        });
      },
      onSend: async (request, reply, payload) => {
        if (!isJose(request.headers.accept) || reply.statusCode >= 300) return payload;
        reply.header("content-type", JOSE_CONTENT_TYPE);
        return deps.nestedJwt.encryptResponse(principalOf(request), String(payload));
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
