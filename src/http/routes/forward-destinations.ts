import type { FastifyInstance } from "fastify";
import type { ForwardDestinationRow } from "../../store/forward-repo.js";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";

const createBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["host", "path_prefix"],
  properties: {
    host: { type: "string", minLength: 1, maxLength: 300 },
    path_prefix: { type: "string", minLength: 1, maxLength: 1000, pattern: "^/" },
  },
} as const;

const destinationSchema = {
  type: "object",
  additionalProperties: false,
  required: ["id", "host", "path_prefix", "created_at"],
  properties: {
    id: { type: "string" },
    host: { type: "string" },
    path_prefix: { type: "string" },
    created_at: { type: "string" },
  },
} as const;

const idParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", pattern: "^fwd_[0-9A-Za-z]{1,64}$" } },
} as const;

function view(row: ForwardDestinationRow) {
  return {
    id: row.id,
    host: row.host,
    path_prefix: row.path_prefix,
    created_at: row.created_at.toISOString(),
  };
}

/**
 * A tenant's forward allowlist (docs/forwarding.md): exact HTTPS host (and port) plus a path
 * prefix per entry, no wildcards (PCI DSS 1.3.2, 1.4.2). Adding widens where card data may go,
 * so an admin user needs a fresh second factor (route table: stepUp). Another tenant's entry
 * is a 404. Every change is audited.
 */
export function registerForwardDestinations(app: FastifyInstance, deps: HttpDeps): void {
  app.post(
    "/v1/forward/destinations",
    { bodyLimit: 4096, schema: { body: createBodySchema, response: { 201: destinationSchema } } },
    async (request, reply) => {
      const body = request.body as { host: string; path_prefix: string };
      const row = await deps.forward.addDestination(principalOf(request), body);
      reply.code(201);
      return view(row);
    },
  );

  app.get(
    "/v1/forward/destinations",
    {
      schema: {
        response: {
          200: {
            type: "object",
            additionalProperties: false,
            required: ["destinations"],
            properties: { destinations: { type: "array", items: destinationSchema } },
          },
        },
      },
    },
    async (request) => ({
      destinations: (await deps.forward.listDestinations(principalOf(request))).map(view),
    }),
  );

  app.delete(
    "/v1/forward/destinations/:id",
    { schema: { params: idParams } },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      await deps.forward.removeDestination(principalOf(request), id);
      reply.code(204);
    },
  );
}
