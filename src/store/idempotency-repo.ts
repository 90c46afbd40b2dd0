import type { SqlClient } from "./database.js";

export interface IdempotencyRow {
  readonly request_hash: string;
  readonly state: "in_flight" | "done";
  readonly response_status: number | null;
  readonly response_body: string | null;
  readonly created_at: Date;
  readonly locked_until: Date;
}

/** Claims a key for a new request; false when the key is already there. */
export async function claimIdempotencyKey(
  db: SqlClient,
  args: { tenantId: string; key: string; requestHash: string; now: Date; lockedUntil: Date },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO idempotency_keys (tenant_id, key, request_hash, state, created_at, locked_until)
     VALUES ($1, $2, $3, 'in_flight', $4, $5) ON CONFLICT DO NOTHING`,
    [args.tenantId, args.key, args.requestHash, args.now, args.lockedUntil],
  );
  return rowCount === 1;
}

export async function findIdempotencyKey(
  db: SqlClient,
  tenantId: string,
  key: string,
): Promise<IdempotencyRow | undefined> {
  const { rows } = await db.query<IdempotencyRow>(
    `SELECT request_hash, state, response_status, response_body, created_at, locked_until
       FROM idempotency_keys WHERE tenant_id = $1 AND key = $2`,
    [tenantId, key],
  );
  return rows[0];
}

/**
 * Takes over a key whose request was abandoned (its lock ran out: the node died mid-request) or
 * whose record is past retention. Only one caller can win: the row must still be as it was read.
 */
export async function reclaimIdempotencyKey(
  db: SqlClient,
  args: {
    tenantId: string;
    key: string;
    requestHash: string;
    now: Date;
    lockedUntil: Date;
    staleBefore: Date;
  },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE idempotency_keys
        SET request_hash = $3, state = 'in_flight', response_status = NULL, response_body = NULL,
            created_at = $4, locked_until = $5
      WHERE tenant_id = $1 AND key = $2
        AND ((state = 'in_flight' AND locked_until < $4) OR created_at < $6)`,
    [args.tenantId, args.key, args.requestHash, args.now, args.lockedUntil, args.staleBefore],
  );
  return rowCount === 1;
}

export async function completeIdempotencyKey(
  db: SqlClient,
  tenantId: string,
  key: string,
  status: number,
  body: string,
): Promise<void> {
  await db.query(
    `UPDATE idempotency_keys SET state = 'done', response_status = $3, response_body = $4
      WHERE tenant_id = $1 AND key = $2`,
    [tenantId, key, status, body],
  );
}

export async function releaseIdempotencyKey(
  db: SqlClient,
  tenantId: string,
  key: string,
): Promise<void> {
  await db.query(
    "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND state = 'in_flight'",
    [tenantId, key],
  );
}

export async function purgeIdempotencyKeys(db: SqlClient, createdBefore: Date): Promise<number> {
  const { rowCount } = await db.query("DELETE FROM idempotency_keys WHERE created_at < $1", [
    createdBefore,
  ]);
  return rowCount;
}
