import { chainMac } from "../../audit/audit-event.js";
import type { KeyRing } from "../../keys/key-ring.js";
import { findChainHead, findSealableEvents } from "../../store/audit-repo.js";
import type { Database, SqlClient } from "../../store/database.js";
import { SYSTEM_OWNER } from "./audit-trail.js";

const SEAL_LOCK = 7302185532;
const BATCH = 2000;

/**
 * Extends the hash chain over committed events, off the request path. Requests only insert
 * events (each with its own row MAC), so the chain never serialises them; the sealer, one at a
 * time across all nodes (advisory lock), gives each finished event the next position and a
 * chain MAC that covers its predecessor. See findSealableEvents for why no committed event can
 * be skipped, and docs/architecture.md for the design.
 */
export class AuditSealer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly db: Database,
    private readonly keys: KeyRing,
  ) {}

  start(intervalMs: number, onError: (err: unknown) => void): void {
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
    const events = await findSealableEvents(tx, BATCH);
    if (events.length === 0) return 0;
    const key = await this.keys.activeKey(SYSTEM_OWNER, "audit");
    const head = await findChainHead(tx);
    let seq = head?.chain_seq ?? 0;
    let previous = head?.chain_mac ?? null;
    const ids: string[] = [];
    const seqs: number[] = [];
    const macs: string[] = [];
    for (const event of events) {
      seq += 1;
      previous = chainMac(key.material, seq, previous, event.row_mac);
      ids.push(event.id);
      seqs.push(seq);
      macs.push(previous.toString("hex"));
    }
    await tx.query(
      `UPDATE audit_events AS a SET chain_seq = v.seq, chain_mac = decode(v.mac, 'hex')
         FROM unnest($1::text[], $2::bigint[], $3::text[]) AS v(id, seq, mac)
        WHERE a.id = v.id AND a.chain_seq IS NULL`,
      [ids, seqs, macs],
    );
    return events.length;
  }
}
