import type { FastifyInstance } from "fastify";
import { MAX_OVERLAP_SECONDS } from "../../services/webhooks/outbound/destination-secrets.js";
import type {
  DeliveryRow,
  DeliveryState,
  EventDestinationRow,
} from "../../store/event-destinations-repo.js";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";
import { decodeCursor, encodeCursor } from "../page-cursor.js";

/**
 * Merchants' endpoints for the vault's events and the deliveries to them
 * (docs/webhooks-outbound.md), scope `webhooks:manage`. The signing secret is in the 201 of a
 * registration and the 200 of a rotation only; no other answer carries it. Responses are
 * allowlists (additionalProperties: false): no sealed secret or payload can reach a client.
 */
const createBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["url", "event_types"],
  properties: {
    url: { type: "string", minLength: 9, maxLength: 2048 },
    event_types: {
      type: "array",
      minItems: 1,
      maxItems: 32,
      items: { type: "string", minLength: 1, maxLength: 100 },
    },
    description: { type: "string", maxLength: 200 },
  },
} as const;

const rotateBodySchema = {
  type: ["object", "null"],
  additionalProperties: false,
  properties: {
    overlap_seconds: { type: "integer", minimum: 0, maximum: MAX_OVERLAP_SECONDS },
  },
} as const;

const destinationIdParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", pattern: "^evd_[0-9A-Za-z]{22}$" } },
} as const;

const deliveryIdParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", pattern: "^dlv_[0-9A-Za-z]{22}$" } },
} as const;

const deliveriesQuerySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    state: { type: "string", enum: ["queued", "processing", "done", "dead"] },
    destination_id: { type: "string", pattern: "^evd_[0-9A-Za-z]{22}$" },
    // Query values are strings (the validator does not coerce): 1 to 500.
    limit: { type: "string", pattern: "^(500|[1-4][0-9]{2}|[1-9][0-9]?)$" },
    cursor: { type: "string", pattern: "^[A-Za-z0-9_-]{1,200}$" },
  },
} as const;

const nullableString = { type: ["string", "null"] } as const;

const destinationProperties = {
  id: { type: "string" },
  url: { type: "string" },
  event_types: { type: "array", items: { type: "string" } },
  description: { type: "string" },
  status: { type: "string" },
  created_at: { type: "string" },
  updated_at: { type: "string" },
} as const;

const destinationSchema = {
  type: "object",
  additionalProperties: false,
  required: Object.keys(destinationProperties),
  properties: destinationProperties,
} as const;

const withSecretSchema = {
  type: "object",
  additionalProperties: false,
  required: [...Object.keys(destinationProperties), "secret"],
  properties: {
    ...destinationProperties,
    secret: { type: "string" },
    previous_secret_expires_at: { type: "string" },
  },
} as const;

const deliveryProperties = {
  id: { type: "string" },
  destination_id: { type: "string" },
  event_id: { type: "string" },
  event_type: { type: "string" },
  state: { type: "string" },
  attempts: { type: "integer" },
  last_status: { type: ["integer", "null"] },
  last_error: nullableString,
  created_at: { type: "string" },
  run_at: { type: "string" },
  finished_at: nullableString,
} as const;

const deliverySchema = {
  type: "object",
  additionalProperties: false,
  required: Object.keys(deliveryProperties),
  properties: deliveryProperties,
} as const;

function destinationView(row: EventDestinationRow) {
  return {
    id: row.id,
    url: row.url,
    event_types: row.event_types,
    description: row.description,
    status: row.status,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

function deliveryView(row: DeliveryRow) {
  return {
    id: row.id,
    destination_id: row.destination_id,
    event_id: row.event_id,
    event_type: row.event_type,
    state: row.state,
    attempts: row.attempts,
    last_status: row.last_status,
    last_error: row.last_error,
    created_at: row.created_at.toISOString(),
    run_at: row.run_at.toISOString(),
    finished_at: row.finished_at?.toISOString() ?? null,
  };
}

export function registerEventDestinations(app: FastifyInstance, deps: HttpDeps): void {
  app.post(
    "/v1/event-destinations",
    { bodyLimit: 16_384, schema: { body: createBodySchema, response: { 201: withSecretSchema } } },
    async (request, reply) => {
      const body = request.body as { url: string; event_types: string[]; description?: string };
      const created = await deps.events.create(principalOf(request), {
        url: body.url,
        eventTypes: body.event_types,
        ...(body.description === undefined ? {} : { description: body.description }),
      });
      reply.code(201);
      return { ...destinationView(created.destination), secret: created.secret };
    },
  );

  app.get(
    "/v1/event-destinations",
    {
      schema: {
        response: {
          200: {
            type: "object",
            additionalProperties: false,
            properties: { data: { type: "array", items: destinationSchema } },
          },
        },
      },
    },
    async (request) => ({
      data: (await deps.events.list(principalOf(request))).map(destinationView),
    }),
  );

  app.get(
    "/v1/event-destinations/:id",
    { schema: { params: destinationIdParams, response: { 200: destinationSchema } } },
    async (request) =>
      destinationView(
        await deps.events.get(principalOf(request), (request.params as { id: string }).id),
      ),
  );

  app.post(
    "/v1/event-destinations/:id/rotate-secret",
    {
      bodyLimit: 1024,
      schema: {
        params: destinationIdParams,
        body: rotateBodySchema,
        response: { 200: withSecretSchema },
      },
    },
    async (request) => {
      const body = (request.body ?? {}) as { overlap_seconds?: number };
      const rotated = await deps.events.rotateSecret(
        principalOf(request),
        (request.params as { id: string }).id,
        ...(body.overlap_seconds === undefined ? [] : [body.overlap_seconds]),
      );
      return {
        ...destinationView(rotated.destination),
        secret: rotated.secret,
        previous_secret_expires_at: rotated.previousExpiresAt.toISOString(),
      };
    },
  );

  app.delete(
    "/v1/event-destinations/:id",
    { schema: { params: destinationIdParams } },
    async (request, reply) => {
      await deps.events.remove(principalOf(request), (request.params as { id: string }).id);
      reply.code(204);
    },
  );

  app.get(
    "/v1/event-deliveries",
    {
      schema: {
        querystring: deliveriesQuerySchema,
        response: {
          200: {
            type: "object",
            additionalProperties: false,
            properties: {
              data: { type: "array", items: deliverySchema },
              next_cursor: nullableString,
            },
          },
        },
      },
    },
    async (request) => {
      const query = request.query as {
        state?: DeliveryState;
        destination_id?: string;
        limit?: string;
        cursor?: string;
      };
      const limit = query.limit === undefined ? 100 : Number(query.limit);
      const rows = await deps.events.listDeliveries(principalOf(request), {
        state: query.state,
        destinationId: query.destination_id,
        after: query.cursor === undefined ? undefined : decodeCursor(query.cursor),
        limit,
      });
      const last = rows.at(-1);
      return {
        data: rows.map(deliveryView),
        next_cursor:
          rows.length === limit && last !== undefined
            ? encodeCursor(last.created_at, last.id)
            : null,
      };
    },
  );

  app.post(
    "/v1/event-deliveries/:id/replay",
    { schema: { params: deliveryIdParams, response: { 200: deliverySchema } } },
    async (request) =>
      deliveryView(
        await deps.events.replayDelivery(
          principalOf(request),
          (request.params as { id: string }).id,
        ),
      ),
  );

  app.delete(
    "/v1/event-deliveries/:id",
    { schema: { params: deliveryIdParams } },
    async (request, reply) => {
      await deps.events.purgeDelivery(principalOf(request), (request.params as { id: string }).id);
      reply.code(204);
    },
  );
}
