import { newId } from "../../../crypto/random.js";
import { findPanLikeRuns } from "../../../domain/pan-scan.js";
import type { SqlClient } from "../../../store/database.js";
import {
  findSubscribedDestinations,
  insertDeliveries,
  type NewDelivery,
} from "../../../store/event-destinations-repo.js";
import { isEventType, subscribes } from "./event-catalogue.js";
import type { VaultEvent } from "./vault-event.js";

/** Standard Webhooks: the id is printable ASCII without `.` (it is `.`-joined into the MAC input). */
const EVENT_ID = /^[\x21-\x2d\x2f-\x7e]{1,256}$/;

/** The delivered body (Standard Webhooks "Payload structure"): type, timestamp, data. */
export function payloadOf(event: VaultEvent): string {
  return JSON.stringify({
    type: event.type,
    timestamp: event.createdAt.toISOString(),
    data: event.data,
  });
}

/**
 * Queues one delivery per (event, active destination of its tenant subscribed to its type), in
 * the caller's transaction, so an event is queued exactly when what it reports committed. A
 * repeat of an (event, destination) pair does nothing (UNIQUE + ON CONFLICT DO NOTHING): safe
 * to publish twice. An event whose payload holds anything that looks like a card number is
 * refused (PCI DSS 3.2.1, 3.4.1: no PAN leaves in a notification).
 */
export async function publishEvents(
  tx: SqlClient,
  events: readonly VaultEvent[],
  now: Date,
): Promise<number> {
  if (events.length === 0) return 0;
  const payloads = events.map((event) => {
    if (!EVENT_ID.test(event.id))
      throw new RangeError("an event id is printable ASCII without '.'");
    if (!isEventType(event.type)) throw new RangeError("not an event type of the catalogue");
    const payload = payloadOf(event);
    if (findPanLikeRuns(payload).length > 0) {
      throw new RangeError("an event payload must not carry a card number");
    }
    return payload;
  });
  const tenants = [...new Set(events.map((event) => event.tenantId))];
  const destinations = await findSubscribedDestinations(tx, tenants);
  if (destinations.length === 0) return 0;
  const deliveries: NewDelivery[] = [];
  events.forEach((event, i) => {
    for (const destination of destinations) {
      if (destination.tenant_id !== event.tenantId) continue;
      if (!subscribes(destination.event_types, event.type)) continue;
      deliveries.push({
        id: newId("dlv"),
        tenant_id: event.tenantId,
        destination_id: destination.id,
        event_id: event.id,
        event_type: event.type,
        payload: payloads[i] as string,
        created_at: now,
      });
    }
  });
  return insertDeliveries(tx, deliveries);
}
