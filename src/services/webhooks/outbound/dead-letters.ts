import { purgeAllDead, purgeDead, replayDead } from "../../../queue/queue-table.js";
import type { SqlClient } from "../../../store/database.js";
import { type DeliveryRow, listDeliveries } from "../../../store/event-destinations-repo.js";

/**
 * The dead-letter queue of event deliveries for operators (`payvault webhooks dlq …`), without
 * a principal: the CLI runs as an OS account on the vault host and audits its own actions
 * (PCI DSS 10.2.1.2, 10.2.1.5). The HTTP routes go through EventDestinations instead, which
 * scope every call to the caller's tenant and audit it.
 */
export async function listDeadDeliveries(
  db: SqlClient,
  options: { readonly tenantId?: string; readonly limit: number },
): Promise<DeliveryRow[]> {
  return listDeliveries(db, {
    tenantId: options.tenantId,
    state: "dead",
    destinationId: undefined,
    after: undefined,
    limit: options.limit,
  });
}

/** Queues a dead delivery again (attempts reset, due at `now`); false when it is not dead. */
export function replayDeadDelivery(db: SqlClient, id: string, now: Date): Promise<boolean> {
  return replayDead(db, "event_deliveries", undefined, id, now);
}

/** Deletes a dead delivery; false when it is not dead (or does not exist). */
export function purgeDeadDelivery(db: SqlClient, id: string): Promise<boolean> {
  return purgeDead(db, "event_deliveries", undefined, id);
}

/** Deletes every dead delivery, of one tenant or of all; returns how many. */
export function purgeAllDeadDeliveries(db: SqlClient, tenantId?: string): Promise<number> {
  return purgeAllDead(db, "event_deliveries", tenantId);
}
