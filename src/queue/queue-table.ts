import { randomInt } from "node:crypto";
import type { SqlClient } from "../store/database.js";

/**
 * A table that is its own work queue (webhook_events, event_deliveries). Each row carries
 * `id, state, attempts, run_at, locked_until, last_error, finished_at`:
 *
 *   queued --claim--> processing --complete--> done
 *                          |--fail, attempts left--> queued (run_at = now + backoff)
 *                          '--fail, last attempt---> dead (the dead-letter queue)
 *   dead --replay--> queued (attempts 0)      dead --purge--> deleted
 *
 * Claims use `FOR UPDATE SKIP LOCKED`, so several workers and nodes share one table without
 * handing a row to two of them. A claim is a lease: a worker that dies leaves its row
 * `processing` until `locked_until`, and the next claim takes it again (at-least-once). Why a
 * table and not a job-queue library: docs/webhooks.md ("The queue").
 */
export type QueueTable = "webhook_events" | "event_deliveries";

export type QueueState = "queued" | "processing" | "done" | "dead";

export interface RetryPolicy {
  /** Attempts before the row goes to the dead-letter queue (the first attempt counts). */
  readonly maxAttempts: number;
  /** The wait after the first failure; it doubles with each further failure. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 16,
  baseDelayMs: 10_000,
  maxDelayMs: 3_600_000,
};

/** How long a claim holds a row before another worker may take it again. */
export const DEFAULT_LEASE_MS = 60_000;

/**
 * Exponential backoff with "equal jitter": half the doubled delay is fixed, half random, so
 * retries of many rows that failed together spread out, yet never come sooner than half the
 * nominal wait. `attempts` counts the attempts made so far (1 after the first failure).
 */
export function backoffMs(attempts: number, policy: RetryPolicy, random = randomInt): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 30);
  const nominal = Math.min(policy.baseDelayMs * 2 ** exponent, policy.maxDelayMs);
  const half = Math.floor(nominal / 2);
  return half + (half > 0 ? random(0, half + 1) : 0);
}

/**
 * Takes up to `limit` due rows (queued and due, or processing with an expired lease), marks them
 * processing, counts the attempt and returns them, oldest first. `columns` is the SELECT list of
 * the returned rows (the caller's own columns; never user input).
 */
export async function claimDue<Row>(
  db: SqlClient,
  table: QueueTable,
  columns: string,
  now: Date,
  limit: number,
  leaseMs: number = DEFAULT_LEASE_MS,
): Promise<Row[]> {
  const result = await db.query<Row>(
    `UPDATE ${table} AS q
        SET state = 'processing', attempts = q.attempts + 1, locked_until = $2
      WHERE q.id IN (
        SELECT id FROM ${table}
         WHERE (state = 'queued' AND run_at <= $1)
            OR (state = 'processing' AND locked_until <= $1)
         ORDER BY run_at, id
         LIMIT $3
         FOR UPDATE SKIP LOCKED)
      RETURNING ${columns}`,
    [now, new Date(now.getTime() + leaseMs), limit],
  );
  return result.rows;
}

/** The attempt succeeded. Only a row still held by this attempt (state processing) changes. */
export async function complete(
  db: SqlClient,
  table: QueueTable,
  id: string,
  now: Date,
  extra: { lastStatus?: number } = {},
): Promise<boolean> {
  const setStatus = table === "event_deliveries" ? ", last_status = $3" : "";
  const params: unknown[] = [id, now];
  if (setStatus !== "") params.push(extra.lastStatus ?? null);
  const result = await db.query(
    `UPDATE ${table} SET state = 'done', locked_until = NULL, last_error = NULL, finished_at = $2${setStatus}
      WHERE id = $1 AND state = 'processing'`,
    params,
  );
  return result.rowCount === 1;
}

export interface FailureOutcome {
  readonly state: "queued" | "dead";
  readonly runAt: Date | undefined;
}

/**
 * The attempt failed with `error` (a short code, never a body or a secret): the row is queued
 * again after the backoff, or goes to the dead-letter queue when it has had its attempts.
 */
export async function fail(
  db: SqlClient,
  table: QueueTable,
  row: { readonly id: string; readonly attempts: number },
  error: string,
  now: Date,
  policy: RetryPolicy,
  extra: { lastStatus?: number } = {},
): Promise<FailureOutcome | undefined> {
  const dead = row.attempts >= policy.maxAttempts;
  const runAt = dead ? undefined : new Date(now.getTime() + backoffMs(row.attempts, policy));
  const setStatus = table === "event_deliveries" ? ", last_status = $5" : "";
  const params: unknown[] = [row.id, dead ? "dead" : "queued", runAt ?? now, error.slice(0, 200)];
  if (setStatus !== "") params.push(extra.lastStatus ?? null);
  const result = await db.query(
    `UPDATE ${table}
        SET state = $2, run_at = $3, locked_until = NULL, last_error = $4,
            finished_at = ${dead ? "$3" : "NULL"}${setStatus}
      WHERE id = $1 AND state = 'processing'`,
    params,
  );
  if (result.rowCount !== 1) return undefined;
  return { state: dead ? "dead" : "queued", runAt };
}

/** A dead row is queued again with its attempts reset. False when it is not in the DLQ. */
export async function replayDead(
  db: SqlClient,
  table: QueueTable,
  tenantId: string | undefined,
  id: string,
  now: Date,
): Promise<boolean> {
  const result = await db.query(
    `UPDATE ${table}
        SET state = 'queued', attempts = 0, run_at = $2, locked_until = NULL, finished_at = NULL
      WHERE id = $1 AND state = 'dead' AND ($3::text IS NULL OR tenant_id = $3)`,
    [id, now, tenantId ?? null],
  );
  return result.rowCount === 1;
}

/** Deletes a dead row. False when it is not in the DLQ (or is another tenant's). */
export async function purgeDead(
  db: SqlClient,
  table: QueueTable,
  tenantId: string | undefined,
  id: string,
): Promise<boolean> {
  const result = await db.query(
    `DELETE FROM ${table} WHERE id = $1 AND state = 'dead' AND ($2::text IS NULL OR tenant_id = $2)`,
    [id, tenantId ?? null],
  );
  return result.rowCount === 1;
}

/** Deletes every dead row (of one tenant, or all); returns how many. */
export async function purgeAllDead(
  db: SqlClient,
  table: QueueTable,
  tenantId: string | undefined,
): Promise<number> {
  const result = await db.query(
    `DELETE FROM ${table} WHERE state = 'dead' AND ($1::text IS NULL OR tenant_id = $1)`,
    [tenantId ?? null],
  );
  return result.rowCount;
}

/** Rows per state (the queue-depth gauges). */
export async function countByState(
  db: SqlClient,
  table: QueueTable,
): Promise<Record<QueueState, number>> {
  const result = await db.query<{ state: QueueState; n: number }>(
    `SELECT state, count(*)::int AS n FROM ${table} GROUP BY state`,
  );
  const counts: Record<QueueState, number> = { queued: 0, processing: 0, done: 0, dead: 0 };
  for (const row of result.rows) counts[row.state] = row.n;
  return counts;
}
