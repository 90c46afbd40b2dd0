import type { KeyRing } from "../../keys/key-ring.js";
import type { VaultMetrics } from "../../metrics/metrics.js";
import type { RetryPolicy } from "../../queue/queue-table.js";
import type { Database } from "../../store/database.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { EventDestinations } from "./outbound/event-destinations.js";

export interface WebhookServiceDeps {
  readonly db: Database;
  readonly keys: KeyRing;
  readonly audit: AuditTrail;
  readonly clock: Clock;
  readonly metrics: VaultMetrics;
  readonly events: EventDestinations;
  readonly retry: RetryPolicy;
  readonly maxBodyBytes: number;
}

/** STUB (issue 6, being written): webhook intake endpoints, intake, processing, dead letters. */
export class WebhookService {
  constructor(readonly deps: WebhookServiceDeps) {}

  async processDue(_limit = 32): Promise<number> {
    return 0;
  }
}
