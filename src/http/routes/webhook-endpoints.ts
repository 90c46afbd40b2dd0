import type { FastifyInstance } from "fastify";
import type { CreateEndpointInput } from "../../services/webhooks/webhook-service.js";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";

const idParams = {
  type: "object",
  additionalProperties: false,
  required: ["id"],
  properties: { id: { type: "string", pattern: "^whe_[A-Za-z0-9]{1,64}$" } },
} as const;

const headerName = { type: "string", pattern: "^[a-z0-9][a-z0-9-]{0,63}$" } as const;
const fieldPath = { type: "string", minLength: 1, maxLength: 200 } as const;

const createBody = {
  type: "object",
  additionalProperties: false,
  required: ["provider"],
  properties: {
    provider: { type: "string", enum: ["stripe", "standard", "paypal", "hmac"] },
    description: { type: "string", maxLength: 200, pattern: "^[^\\u0000-\\u001f]*$" },
    secret: { type: "string", minLength: 1, maxLength: 512 },
    event_id_field: fieldPath,
    event_type_field: fieldPath,
    hmac: {
      type: "object",
      additionalProperties: false,
      required: ["signature_header", "algorithm", "encoding"],
      properties: {
        signature_header: headerName,
        algorithm: { type: "string", enum: ["sha256", "sha512"] },
        encoding: { type: "string", enum: ["hex", "base64"] },
        prefix: { type: "string", maxLength: 32 },
        timestamp_header: headerName,
        timestamp_separator: { type: "string", maxLength: 8 },
        tolerance_seconds: { type: "integer", minimum: 1, maximum: 3600 },
      },
    },
    paypal: {
      type: "object",
      additionalProperties: false,
      required: ["webhook_id", "certificates"],
      properties: {
        webhook_id: { type: "string", pattern: "^[A-Za-z0-9_-]{1,128}$" },
        certificates: {
          type: "array",
          minItems: 1,
          maxItems: 4,
          items: {
            type: "object",
            additionalProperties: false,
            required: ["url", "pem"],
            properties: {
              url: { type: "string", maxLength: 2048 },
              pem: { type: "string", maxLength: 16384 },
            },
          },
        },
      },
    },
  },
} as const;

interface CreateBody {
  provider: CreateEndpointInput["provider"];
  description?: string;
  secret?: string;
  event_id_field?: string;
  event_type_field?: string;
  hmac?: NonNullable<CreateEndpointInput["settings"]["hmac"]>;
  paypal?: NonNullable<CreateEndpointInput["settings"]["paypal"]>;
}

const rotateBody = {
  type: "object",
  additionalProperties: false,
  required: ["secret"],
  properties: {
    secret: { type: "string", minLength: 1, maxLength: 512 },
    overlap_seconds: { type: "integer", minimum: 0, maximum: 604800 },
  },
} as const;

/**
 * Webhook intake endpoints (`webhooks:manage`): one per provider account, with the secret the
 * provider gave (sealed under the tenant's `webhook` DEK, never shown again) or, for PayPal, the
 * webhook id and certificate. The response names the URL to give the provider.
 */
export function registerWebhookEndpoints(app: FastifyInstance, deps: HttpDeps): void {
  const withUrl = <T extends { intake_path: string }>(view: T) => ({
    ...view,
    url: `${deps.origin.get()}${view.intake_path}`,
  });

  app.post(
    "/v1/webhook-endpoints",
    { bodyLimit: 64 * 1024, schema: { body: createBody } },
    async (request, reply) => {
      const body = request.body as CreateBody;
      const view = await deps.webhooks.createEndpoint(principalOf(request), {
        provider: body.provider,
        ...(body.description === undefined ? {} : { description: body.description }),
        ...(body.secret === undefined ? {} : { secret: body.secret }),
        settings: {
          ...(body.hmac === undefined ? {} : { hmac: body.hmac }),
          ...(body.paypal === undefined ? {} : { paypal: body.paypal }),
          ...(body.event_id_field === undefined ? {} : { event_id_field: body.event_id_field }),
          ...(body.event_type_field === undefined
            ? {}
            : { event_type_field: body.event_type_field }),
        },
      });
      return reply.code(201).send(withUrl(view));
    },
  );

  app.get("/v1/webhook-endpoints", async (request) => {
    const views = await deps.webhooks.listEndpoints(principalOf(request));
    return { data: views.map(withUrl) };
  });

  app.get("/v1/webhook-endpoints/:id", { schema: { params: idParams } }, async (request) => {
    const { id } = request.params as { id: string };
    return withUrl(await deps.webhooks.getEndpoint(principalOf(request), id));
  });

  app.post(
    "/v1/webhook-endpoints/:id/secrets",
    { bodyLimit: 4 * 1024, schema: { params: idParams, body: rotateBody } },
    async (request) => {
      const { id } = request.params as { id: string };
      const body = request.body as { secret: string; overlap_seconds?: number };
      return withUrl(
        await deps.webhooks.rotateSecret(principalOf(request), id, {
          secret: body.secret,
          ...(body.overlap_seconds === undefined ? {} : { overlapSeconds: body.overlap_seconds }),
        }),
      );
    },
  );

  app.delete(
    "/v1/webhook-endpoints/:id",
    { schema: { params: idParams } },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      await deps.webhooks.deleteEndpoint(principalOf(request), id);
      return reply.code(204).send();
    },
  );
}
