import type { FastifyInstance } from "fastify";
import type { TenantJoseKeyRow } from "../../store/jose-keys-repo.js";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";

const registerBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["jwk", "use"],
  properties: {
    jwk: { type: "object", maxProperties: 20 },
    use: { type: "string", enum: ["sig", "enc"] },
    alg: { type: "string", maxLength: 20 },
  },
} as const;

const keyViewSchema = {
  type: "object",
  additionalProperties: false,
  required: ["kid", "use", "alg", "jwk", "created_at", "revoked_at"],
  properties: {
    kid: { type: "string" },
    use: { type: "string" },
    alg: { type: "string" },
    // Public members only: the service stores what node:crypto exported from the public key.
    jwk: { type: "object", additionalProperties: { type: "string" } },
    created_at: { type: "string" },
    revoked_at: { type: ["string", "null"] },
  },
} as const;

const kidParams = {
  type: "object",
  required: ["kid"],
  // The kid grammar registration accepts (src/jose/tenant-jwk.ts): 1-128 printable ASCII, so a
  // KMS key ARN works; send it URL-encoded.
  properties: { kid: { type: "string", pattern: "^[\\x21-\\x7e]{1,128}$" } },
} as const;

function view(row: TenantJoseKeyRow) {
  return {
    kid: row.kid,
    use: row.use,
    alg: row.alg,
    jwk: row.jwk,
    created_at: row.created_at.toISOString(),
    revoked_at: row.revoked_at?.toISOString() ?? null,
  };
}

/**
 * A tenant's public keys for server-to-server nested JWTs (docs/capture.md): register (the
 * tenant's administrator), list, revoke at once. Another tenant's key is a 404.
 */
export function registerTenantJoseKeys(app: FastifyInstance, deps: HttpDeps): void {
  app.post(
    "/v1/tenant/jose-keys",
    {
      bodyLimit: 8192,
      schema: { body: registerBodySchema, response: { 201: keyViewSchema } },
    },
    async (request, reply) => {
      const body = request.body as {
        jwk: Record<string, unknown>;
        use: "sig" | "enc";
        alg?: string;
      };
      const row = await deps.tenantJoseKeys.register(principalOf(request), body);
      reply.code(201);
      return view(row);
    },
  );

  app.get(
    "/v1/tenant/jose-keys",
    {
      schema: {
        response: {
          200: {
            type: "object",
            additionalProperties: false,
            properties: { keys: { type: "array", items: keyViewSchema } },
          },
        },
      },
    },
    async (request) => ({
      keys: (await deps.tenantJoseKeys.list(principalOf(request))).map(view),
    }),
  );

  app.delete(
    "/v1/tenant/jose-keys/:kid",
    { schema: { params: kidParams } },
    async (request, reply) => {
      await deps.tenantJoseKeys.revoke(
        principalOf(request),
        (request.params as { kid: string }).kid,
      );
      reply.code(204);
    },
  );
}
