import type { KeyRing } from "../../../keys/key-ring.js";
import type { VaultMetrics } from "../../../metrics/metrics.js";
import type { SafeFetch } from "../../../outbound/safe-fetch.js";
import type { RetryPolicy } from "../../../queue/queue-table.js";
import type { Database, SqlClient } from "../../../store/database.js";
import type { AuditTrail } from "../../audit/audit-trail.js";
import type { Clock } from "../../clock.js";

/** One of the vault's own events, as merchants receive it: metadata only, never card data. */
export interface VaultEvent {
  /** `evt_…`: the Standard Webhooks `webhook-id` of every delivery of this event. */
  readonly id: string;
  readonly tenantId: string;
  /** e.g. `token.created`, `payment.succeeded`. */
  readonly type: string;
  readonly createdAt: Date;
  readonly data: Readonly<Record<string, unknown>>;
}

export interface EventDestinationsDeps {
  readonly db: Database;
  readonly keys: KeyRing;
  readonly audit: AuditTrail;
  readonly clock: Clock;
  readonly safeFetch: SafeFetch;
  readonly metrics: VaultMetrics;
  readonly retry: RetryPolicy;
}

/** STUB (issue 6, being written): merchants' event destinations and the delivery queue. */
export class EventDestinations {
  constructor(readonly deps: EventDestinationsDeps) {}

  /** Queues a delivery of `event` to each of the tenant's active destinations subscribed to its type. */
  async publish(_tx: SqlClient, _event: VaultEvent): Promise<number> {
    return 0;
  }

  /** One pass of the delivery worker: claim due deliveries, send them; returns how many it took. */
  async deliverDue(_limit = 32): Promise<number> {
    return 0;
  }

  /** One pass of the token-event dispatcher (audit trail -> deliveries); returns how many events. */
  async dispatchTokenEvents(_limit = 500): Promise<number> {
    return 0;
  }
}
