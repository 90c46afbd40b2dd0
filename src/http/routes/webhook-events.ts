import type { FastifyInstance } from "fastify";
import type { QueueState } from "../../queue/queue-table.js";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";

const idParams = {
  type: "object",
  additionalProperties: false,
  required: ["id"],
  properties: { id: { type: "string", pattern: "^evt_[A-Za-z0-9]{1,64}$" } },
} as const;

const listQuery = {
  type: "object",
  additionalProperties: false,
  properties: {
    state: { type: "string", enum: ["queued", "processing", "done", "dead"] },
    endpoint_id: { type: "string", pattern: "^whe_[A-Za-z0-9]{1,64}$" },
    after: { type: "string", pattern: "^evt_[A-Za-z0-9]{1,64}$" },
    limit: { type: "string", pattern: "^(500|[1-4][0-9]{2}|[1-9][0-9]?)$" },
  },
} as const;

/**
 * Received events (`webhooks:manage`): metadata only. `state=dead` lists the dead-letter queue;
 * a dead event is replayed (queued again, attempts start over) or purged, each audited.
 */
export function registerWebhookEvents(app: FastifyInstance, deps: HttpDeps): void {
  app.get("/v1/webhook-events", { schema: { querystring: listQuery } }, async (request) => {
    const query = request.query as {
      state?: QueueState;
      endpoint_id?: string;
      after?: string;
      limit?: string;
    };
    const limit = query.limit === undefined ? 100 : Number(query.limit);
    const data = await deps.webhooks.listEvents(principalOf(request), {
      limit,
      ...(query.state === undefined ? {} : { state: query.state }),
      ...(query.endpoint_id === undefined ? {} : { endpointId: query.endpoint_id }),
      ...(query.after === undefined ? {} : { after: query.after }),
    });
    const last = data.at(-1);
    return { data, next: data.length === limit && last !== undefined ? last.id : null };
  });

  app.get("/v1/webhook-events/:id", { schema: { params: idParams } }, async (request) => {
    const { id } = request.params as { id: string };
    return deps.webhooks.getEvent(principalOf(request), id);
  });

  app.post("/v1/webhook-events/:id/replay", { schema: { params: idParams } }, async (request) => {
    const { id } = request.params as { id: string };
    const principal = principalOf(request);
    return deps.webhooks.replay({ name: principal.keyId, tenantId: principal.tenantId }, id);
  });

  app.delete("/v1/webhook-events/:id", { schema: { params: idParams } }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const principal = principalOf(request);
    await deps.webhooks.purge({ name: principal.keyId, tenantId: principal.tenantId }, id);
    return reply.code(204).send();
  });
}
