import type { FastifyInstance } from "fastify";
import type { ForwardRequest } from "../../services/forward/forward-service.js";
import {
  FORM_CONTENT_TYPE,
  FORWARD_METHODS,
  JSON_CONTENT_TYPE,
} from "../../services/forward/forward-template.js";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";

/** The largest forward request accepted (template and body together). */
export const FORWARD_BODY_LIMIT = 64 * 1024;

const forwardBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["url"],
  properties: {
    url: { type: "string", minLength: 1, maxLength: 8192 },
    method: { type: "string", enum: [...FORWARD_METHODS] },
    headers: {
      type: "object",
      maxProperties: 32,
      propertyNames: { type: "string", minLength: 1, maxLength: 64 },
      additionalProperties: { type: "string", maxLength: 4096 },
    },
    // Any JSON value (a form body is checked by the service: an object of strings).
    body: {},
    content_type: { type: "string", enum: [JSON_CONTENT_TYPE, FORM_CONTENT_TYPE] },
    // Never longer than PAYVAULT_OUTBOUND_TIMEOUT_MS: the outbound client takes the smaller.
    timeout_ms: { type: "integer", minimum: 100, maximum: 120_000 },
  },
} as const;

const forwardResponseSchema = {
  type: "object",
  additionalProperties: false,
  required: ["status", "headers", "body"],
  properties: {
    status: { type: "integer" },
    headers: { type: "object", additionalProperties: { type: "string" } },
    body: { type: "string" },
  },
} as const;

/**
 * POST /v1/forward (scope proxy:forward; docs/forwarding.md): fills the template's token
 * placeholders with the card, sends it to an allowlisted processor over verified HTTPS and
 * relays the processor's status, allowlisted headers and card-scrubbed body. The answer is
 * never cached (Cache-Control: no-store).
 */
export function registerForward(app: FastifyInstance, deps: HttpDeps): void {
  app.post(
    "/v1/forward",
    {
      bodyLimit: FORWARD_BODY_LIMIT,
      schema: { body: forwardBodySchema, response: { 200: forwardResponseSchema } },
    },
    async (request, reply) => {
      const relayed = await deps.forward.forward(
        principalOf(request),
        request.body as ForwardRequest,
        request.log,
      );
      return reply.header("cache-control", "no-store").header("pragma", "no-cache").send(relayed);
    },
  );
}
