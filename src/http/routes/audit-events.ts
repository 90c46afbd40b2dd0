import type { FastifyInstance } from "fastify";
import { findTenantEvents } from "../../store/audit-repo.js";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";
import { decodeCursor, encodeCursor } from "../page-cursor.js";

const querySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    // Query values are strings (the validator does not coerce): 1 to 500.
    limit: { type: "string", pattern: "^(500|[1-4][0-9]{2}|[1-9][0-9]?)$" },
    action: { type: "string", pattern: "^[a-z_]{1,40}\\.[a-z_.]{1,40}$" },
    since: { type: "string", format: "date-time" },
    until: { type: "string", format: "date-time" },
    cursor: { type: "string", pattern: "^[A-Za-z0-9_-]{1,200}$" },
  },
} as const;

interface Query {
  limit?: string;
  action?: string;
  since?: string;
  until?: string;
  cursor?: string;
}

/**
 * The caller's tenant's audit events, oldest first, a page at a time (PCI DSS 10.2, 10.4.1:
 * reviewing the trail; 10.3.1: read access to it is its own scope, `audit:read`; 10.2.1.3: each
 * read is itself an `audit.read` event). Only the
 * tenant's own events: the vault's system events are read with the CLI. The integrity of the
 * trail is checked with `payvault audit verify`.
 */
export function registerAuditEvents(app: FastifyInstance, deps: HttpDeps): void {
  app.get("/v1/audit/events", { schema: { querystring: querySchema } }, async (request) => {
    const query = request.query as Query;
    const limit = query.limit === undefined ? 100 : Number(query.limit);
    const principal = principalOf(request);
    const events = await findTenantEvents(deps.db, {
      tenantId: principal.tenantId,
      after: query.cursor === undefined ? undefined : decodeCursor(query.cursor),
      since: query.since === undefined ? undefined : new Date(query.since),
      until: query.until === undefined ? undefined : new Date(query.until),
      action: query.action,
      limit,
    });
    // Reading the trail is itself in the trail (PCI DSS 10.2.1.3: all access to audit logs).
    await deps.audit.record(deps.db, {
      tenantId: principal.tenantId,
      actor: principal.keyId,
      action: "audit.read",
      objectId: undefined,
      outcome: "success",
      details: { ip: request.ip, events: events.length, filter: query.action ?? "" },
    });
    const last = events.at(-1);
    return {
      data: events.map((event) => ({
        id: event.id,
        occurred_at: event.occurred_at.toISOString(),
        actor: event.actor,
        action: event.action,
        object_id: event.object_id,
        outcome: event.outcome,
        details: event.details,
      })),
      next_cursor:
        events.length === limit && last !== undefined
          ? encodeCursor(last.occurred_at, last.id)
          : null,
    };
  });
}
