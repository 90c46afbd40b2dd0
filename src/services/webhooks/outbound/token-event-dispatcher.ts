import { findSealHorizon } from "../../../store/audit-repo.js";
import type { Database } from "../../../store/database.js";
import {
  advanceDispatchCursor,
  anyActiveDestination,
  type DispatchPosition,
  ensureDispatchCursor,
  findTokenEventsAfter,
  lockDispatchCursor,
  readDispatchCursor,
  type TokenAuditEvent,
} from "../../../store/event-destinations-repo.js";
import type { Clock } from "../../clock.js";
import type { TokenEventType } from "./event-catalogue.js";
import { publishEvents } from "./publisher.js";
import type { VaultEvent } from "./vault-event.js";

/** The cursor row of this dispatcher in event_dispatch_cursor. */
export const TOKEN_EVENTS_CURSOR = "token_events";

const TYPE_OF: Record<TokenAuditEvent["action"], TokenEventType> = {
  "token.create": "token.created",
  "token.delete": "token.deleted",
};

/** The merchant-facing event of an audited token action: same id, metadata only. */
export function tokenEventOf(row: TokenAuditEvent): VaultEvent {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    type: TYPE_OF[row.action],
    createdAt: row.occurred_at,
    data: { token: row.object_id },
  };
}

/**
 * The audit trail is the outbox of token events (docs/webhooks-outbound.md, "Outbox"): a token
 * is created or deleted in the same statement as its audit event, so reading successful
 * `token.create` / `token.delete` events yields exactly the committed token changes, with no
 * second write on the tokenization path. The dispatcher reads them in (txid, id) order, only
 * below the settled horizon the audit sealer uses (the oldest transaction still running,
 * `pg_snapshot_xmin(pg_current_snapshot())`: below it no event can still appear, so advancing
 * the cursor never skips one that commits later), queues the deliveries and advances the cursor
 * in the same transaction. The cursor row is locked FOR UPDATE SKIP LOCKED, so two nodes never
 * dispatch the same range; publishing is idempotent anyway (one delivery per destination and
 * event). Returns how many token events it queued deliveries for.
 */
export class TokenEventDispatcher {
  private ready: Promise<void> | undefined;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  async dispatch(limit: number): Promise<number> {
    this.ready ??= ensureDispatchCursor(this.db, TOKEN_EVENTS_CURSOR).catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    await this.ready;
    // Lock-free look first: an idle vault takes no lock and writes nothing.
    const seen = await readDispatchCursor(this.db, TOKEN_EVENTS_CURSOR);
    const horizon = await findSealHorizon(this.db);
    if (seen === undefined || BigInt(horizon) <= BigInt(seen.txid)) return 0;
    return this.db.transaction(async (tx) => {
      const settled = await findSealHorizon(tx);
      const from = await lockDispatchCursor(tx, TOKEN_EVENTS_CURSOR);
      if (from === undefined) return 0;
      // Everything below the horizon has been read once the cursor stands at (horizon, '').
      const end: DispatchPosition = { txid: settled, id: "" };
      if (BigInt(settled) <= BigInt(from.txid)) return 0;
      if (!(await anyActiveDestination(tx))) {
        await advanceDispatchCursor(tx, TOKEN_EVENTS_CURSOR, end);
        return 0;
      }
      const rows = await findTokenEventsAfter(tx, from, settled, limit);
      await publishEvents(tx, rows.map(tokenEventOf), this.clock.now());
      const last = rows.at(-1);
      const to = rows.length < limit || last === undefined ? end : { txid: last.txid, id: last.id };
      await advanceDispatchCursor(tx, TOKEN_EVENTS_CURSOR, to);
      return rows.length;
    });
  }
}
