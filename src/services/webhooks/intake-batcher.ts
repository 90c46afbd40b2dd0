import type { Database } from "../../store/database.js";
import type { NewWebhookEvent } from "../../store/webhook-events-repo.js";
import { findReceivedKeys, insertWebhookEvents } from "../../store/webhook-events-repo.js";

export type IntakeOutcome = "queued" | "duplicate" | "endpoint_gone";

interface Pending {
  readonly event: NewWebhookEvent;
  readonly resolve: (outcome: IntakeOutcome) => void;
  readonly reject: (err: unknown) => void;
}

/** Rows per INSERT: well under PostgreSQL's 65,535 bind parameters (8 per row). */
const MAX_BATCH = 256;

function dedupeKey(event: NewWebhookEvent): string {
  return `${event.endpointId}\u0000${event.providerEventId}`;
}

/**
 * Group commit for the intake: events verified in the same turn of the event loop are queued by
 * one multi-row INSERT, and each request is answered only after that statement committed (an
 * acknowledged webhook is durable). Under load this turns thousands of round trips and commits
 * per second into a few hundred, which is what the intake target (3,000 events/s) needs; alone,
 * an event waits one turn of the loop. The unique key (endpoint, provider event id) decides
 * which requests were first: the rest are duplicates, inside a batch as across batches.
 */
export class IntakeBatcher {
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly db: Database,
    private readonly onQueued: () => void,
  ) {}

  /**
   * Resolves "queued" when this call queued the event, "duplicate" when it was already received,
   * "endpoint_gone" when the endpoint was deleted meanwhile (the row is not written).
   */
  add(event: NewWebhookEvent): Promise<IntakeOutcome> {
    return new Promise((resolve, reject) => {
      this.pending.push({ event, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_BATCH);
      void this.write(batch);
    }
  }

  private async write(batch: readonly Pending[]): Promise<void> {
    const firstByKey = new Map<string, NewWebhookEvent>();
    for (const { event } of batch) {
      const key = dedupeKey(event);
      if (!firstByKey.has(key)) firstByKey.set(key, event);
    }
    try {
      const inserted = await insertWebhookEvents(this.db, [...firstByKey.values()]);
      // Rows not inserted are duplicates, unless their endpoint was deleted since it was read
      // (the INSERT skips those instead of failing the whole batch on the foreign key).
      const missing = [...firstByKey.entries()].filter(([key]) => !inserted.has(key));
      const known =
        missing.length === 0
          ? new Set<string>()
          : await findReceivedKeys(
              this.db,
              missing.map(([, event]) => event),
            );
      for (const { event, resolve } of batch) {
        const key = dedupeKey(event);
        if (inserted.has(key) && firstByKey.get(key) === event) resolve("queued");
        else if (inserted.has(key) || known.has(key)) resolve("duplicate");
        else resolve("endpoint_gone");
      }
      if (inserted.size > 0) this.onQueued();
    } catch (err) {
      for (const { reject } of batch) reject(err);
    }
  }
}
