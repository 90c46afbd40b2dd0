/**
 * The storage port. Repositories speak PostgreSQL's SQL dialect to a `SqlClient`; the two
 * drivers (embedded PGlite and a node-postgres pool) only move rows. Drivers normalise the
 * value types that differ between them: `bytea` → Buffer, `int8` → number, `timestamptz` → Date.
 */
export interface QueryResult<Row> {
  readonly rows: Row[];
  readonly rowCount: number;
}

export interface SqlClient {
  query<Row = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<QueryResult<Row>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export type DriverKind = "pglite" | "postgres";

export interface Database extends SqlClient {
  readonly kind: DriverKind;
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: SqlClient) => Promise<T>): Promise<T>;
  /**
   * PostgreSQL: takes the session-level advisory lock (namespace, key) on a connection of its
   * own, outside the pool (so holding it never takes a connection the work needs), or returns
   * undefined at once when another session holds it. The release unlocks and closes that
   * connection; if the process dies, the server releases the lock with the connection.
   * PGlite (one process per data directory) has no such lock: undefined there is never returned,
   * the release does nothing.
   */
  tryAdvisoryLock(namespace: number, key: number): Promise<(() => Promise<void>) | undefined>;
  close(): Promise<void>;
}
