import { sealDigest, sealMac } from "../../audit/audit-event.js";
import type { KeyRing } from "../../keys/key-ring.js";
import type { StoredEvent } from "../../store/audit-repo.js";
import {
  findEventsInRange,
  findLastSeal,
  findSealHorizon,
  insertSeal,
} from "../../store/audit-repo.js";
import type { Database, SqlClient } from "../../store/database.js";
import type { Clock } from "../clock.js";
import { SYSTEM_OWNER } from "./audit-trail.js";

const SEAL_LOCK = 7302185532;
/** Events one seal covers at most (more when one transaction wrote more). */
const BATCH = 5000;

/**
 * Extends the hash chain over committed events, off the request path. Requests only insert
 * events (each with its own row MAC) and never wait on one another; events are never updated.
 * The sealer, one at a time across all nodes (advisory lock), appends a seal covering every
 * event whose transaction id lies between the previous seal's horizon and the current one (the
 * oldest transaction still running): no committed event can later appear in a range already
 * sealed, so none escapes the chain. See docs/architecture.md.
 */
export class AuditSealer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly db: Database,
    private readonly keys: KeyRing,
    private readonly clock: Clock,
  ) {}

  /** Starts sealing every `intervalMs`; a second call while started does nothing. */
  start(intervalMs: number, onError: (err: unknown) => void): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      this.sealPending().catch(onError);
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /** Seals everything sealable now; returns how many events it sealed. */
  async sealPending(): Promise<number> {
    if (this.running !== undefined) return this.running;
    this.running = (async () => {
      let total = 0;
      for (;;) {
        const sealed = await this.db.transaction((tx) => this.sealBatch(tx));
        total += sealed;
        if (sealed < BATCH) return total;
      }
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async sealBatch(tx: SqlClient): Promise<number> {
    const { rows } = await tx.query<{ locked: boolean }>(
      "SELECT pg_try_advisory_xact_lock($1) AS locked",
      [SEAL_LOCK],
    );
    if (rows[0]?.locked !== true) return 0;
    const last = await findLastSeal(tx);
    const from = last?.to_txid ?? "0";
    const horizon = await findSealHorizon(tx);
    if (BigInt(horizon) <= BigInt(from)) return 0;
    const { events, to } = await this.coveredEvents(tx, from, horizon);
    if (events.length === 0) return 0;
    const key = await this.keys.activeKey(SYSTEM_OWNER, "audit");
    const content = {
      seq: (last?.seq ?? 0) + 1,
      fromTxid: from,
      toTxid: to,
      eventCount: events.length,
      digest: sealDigest(events),
    };
    await insertSeal(tx, {
      seq: content.seq,
      from_txid: from,
      to_txid: to,
      event_count: content.eventCount,
      digest: content.digest,
      mac_key_id: key.id,
      chain_mac: sealMac(key.material, content, last?.chain_mac ?? null),
      sealed_at: this.clock.now(),
    });
    return events.length;
  }

  /**
   * The events of the next seal and its upper bound: up to the horizon, or, past BATCH events,
   * up to the first transaction that does not fit (a transaction's events are never split).
   */
  private async coveredEvents(
    tx: SqlClient,
    from: string,
    horizon: string,
  ): Promise<{ events: StoredEvent[]; to: string }> {
    const events = await findEventsInRange(tx, from, horizon, BATCH + 1);
    if (events.length <= BATCH) return { events, to: horizon };
    const cut = (events[BATCH] as StoredEvent).txid;
    const fitting = events.filter((e) => BigInt(e.txid) < BigInt(cut));
    if (fitting.length > 0) return { events: fitting, to: cut };
    // One transaction wrote more than BATCH events: seal all of them together.
    const to = String(BigInt(cut) + 1n);
    return { events: await findEventsInRange(tx, from, to, Number.MAX_SAFE_INTEGER), to };
  }
}
