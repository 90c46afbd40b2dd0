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

/**
 * How long a claim holds a row before another worker may take it again: longer than a pass can
 * take (32 deliveries, 8 at a time, each at most the 30 s outbound timeout: 2 minutes).
 */
export const DEFAULT_LEASE_MS = 300_000;

/** What identifies one claim of a row: a later claim changes both (attempts only grow). */
export interface Claim {
  readonly id: string;
  readonly attempts: number;
  readonly locked_until: Date | null;
}

/**
 * Exponential backoff with "equal jitter": half the doubled delay is fixed, half random, so
 * retries of many rows that failed together spread out, yet never come sooner than half the
 * nominal wait. `attempts` counts the attempts made so far (1 after the first failure).
 */
export function backoffMs(
  attempts: number,
  policy: RetryPolicy,
  random: (min: number, max: number) => number = (min, max) => randomInt(min, max),
): number {
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
  maxAttempts: number,
  leaseMs: number = DEFAULT_LEASE_MS,
): Promise<Row[]> {
  // A row whose lease lapsed after its last attempt (the worker died on it, e.g. a poison event
  // that crashes the process) goes to the dead-letter queue instead of being retried forever.
  await db.query(
    `UPDATE ${table}
        SET state = 'dead', locked_until = NULL, last_error = 'LEASE_EXPIRED', finished_at = $1
      WHERE state = 'processing' AND locked_until <= $1 AND attempts >= $2`,
    [now, maxAttempts],
  );
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

/**
 * The attempt succeeded. Only a row still held by THIS claim changes: once a lease lapsed and
 * another worker claimed the row, the late worker's outcome is dropped (its claim no longer
 * matches), so it can neither complete nor dead-letter the other worker's attempt.
 */
export async function complete(
  db: SqlClient,
  table: QueueTable,
  claim: Claim,
  now: Date,
  extra: { lastStatus?: number } = {},
): Promise<boolean> {
  const setStatus = table === "event_deliveries" ? ", last_status = $5" : "";
  const params: unknown[] = [claim.id, now, claim.attempts, claim.locked_until];
  if (setStatus !== "") params.push(extra.lastStatus ?? null);
  const result = await db.query(
    `UPDATE ${table} SET state = 'done', locked_until = NULL, last_error = NULL, finished_at = $2${setStatus}
      WHERE id = $1 AND state = 'processing' AND attempts = $3 AND locked_until = $4`,
    params,
  );
  return result.rowCount === 1;
}

/**
 * `complete` for many claims in one statement (the batch path of the event worker). Returns how
 * many rows it completed: fewer than `claims` means some lease lapsed and another worker holds
 * those rows, so the caller rolls back and settles the claims one by one.
 */
export async function completeAll(
  db: SqlClient,
  table: QueueTable,
  claims: readonly Claim[],
  now: Date,
): Promise<number> {
  const result = await db.query(
    `UPDATE ${table} AS q
        SET state = 'done', locked_until = NULL, last_error = NULL, finished_at = $4
       FROM unnest($1::text[], $2::int[], $3::timestamptz[]) AS c (id, attempts, locked_until)
      WHERE q.id = c.id AND q.state = 'processing'
        AND q.attempts = c.attempts AND q.locked_until = c.locked_until`,
    [
      claims.map((c) => c.id),
      claims.map((c) => c.attempts),
      claims.map((c) => c.locked_until),
      now,
    ],
  );
  return result.rowCount;
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
  row: Claim,
  error: string,
  now: Date,
  policy: RetryPolicy,
  extra: { lastStatus?: number } = {},
): Promise<FailureOutcome | undefined> {
  const dead = row.attempts >= policy.maxAttempts;
  const runAt = dead ? undefined : new Date(now.getTime() + backoffMs(row.attempts, policy));
  const setStatus = table === "event_deliveries" ? ", last_status = $7" : "";
  const params: unknown[] = [
    row.id,
    dead ? "dead" : "queued",
    runAt ?? now,
    error.slice(0, 200),
    row.attempts,
    row.locked_until,
  ];
  if (setStatus !== "") params.push(extra.lastStatus ?? null);
  const result = await db.query(
    `UPDATE ${table}
        SET state = $2, run_at = $3, locked_until = NULL, last_error = $4,
            finished_at = ${dead ? "$3" : "NULL"}${setStatus}
      WHERE id = $1 AND state = 'processing' AND attempts = $5 AND locked_until = $6`,
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
  // Done rows are not counted: they are history (kept 30 days), and counting them would scan
  // the table at every scrape; the others are read through the partial indexes.
  const result = await db.query<{ state: QueueState; n: number }>(
    `SELECT state, count(*)::int AS n FROM ${table}
      WHERE state IN ('queued', 'processing', 'dead') GROUP BY state`,
  );
  const counts: Record<QueueState, number> = { queued: 0, processing: 0, done: 0, dead: 0 };
  for (const row of result.rows) counts[row.state] = row.n;
  return counts;
}

/**
 * Deletes rows that finished (`done`) before `before`: the queues keep no history forever (PCI
 * DSS 3.2.1: only the metadata needed, only as long as needed). Dead rows stay until an operator
 * replays or purges them. Returns how many were deleted.
 */
export async function deleteFinished(
  db: SqlClient,
  table: QueueTable,
  before: Date,
): Promise<number> {
  const result = await db.query(`DELETE FROM ${table} WHERE state = 'done' AND finished_at < $1`, [
    before,
  ]);
  return result.rowCount;
}
