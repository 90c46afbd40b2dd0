import { createHash } from "node:crypto";
import pg from "pg";
import type { Database, QueryResult, SqlClient } from "./database.js";

// int8 → number: every int8 the schema holds (counters, sequence numbers) stays far below 2^53.
const typeParsers = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === pg.types.builtins.INT8) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  },
};

/**
 * Every statement is sent as a named prepared statement (name = hash of its text), so each pooled
 * connection parses and plans a repository's SQL once. The SQL texts are constants in the
 * repositories, so the set of names is small and fixed.
 */
const statementNames = new Map<string, string>();
function statementName(sql: string): string {
  let name = statementNames.get(sql);
  if (name === undefined) {
    name = `pv_${createHash("sha256").update(sql).digest("hex").slice(0, 24)}`;
    statementNames.set(sql, name);
  }
  return name;
}

function wrap(client: pg.Pool | pg.PoolClient): SqlClient {
  return {
    async query<Row>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<Row>> {
      const result = await client.query({
        name: statementName(sql),
        text: sql,
        values: params as unknown[],
        types: typeParsers,
      });
      return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
    },
    async exec(sql: string): Promise<void> {
      await client.query(sql);
    },
  };
}

export interface PostgresOptions {
  readonly connectionString: string;
  readonly poolSize: number;
  /** Schema to use for every connection (tests give each run its own). */
  readonly schema?: string;
}

/** The production driver: a node-postgres pool. */
export async function openPostgresDatabase(options: PostgresOptions): Promise<Database> {
  if (options.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(options.schema)) {
    throw new Error("schema name must be a lower-case SQL identifier");
  }
  const connection = {
    connectionString: options.connectionString,
    ...(options.schema === undefined ? {} : { options: `-c search_path=${options.schema}` }),
  };
  const pool = new pg.Pool({
    ...connection,
    max: options.poolSize,
    // An exhausted pool fails the request instead of hanging it.
    connectionTimeoutMillis: 30_000,
  });
  // A pooled connection that fails while idle must not crash the process.
  pool.on("error", () => undefined);
  const client = wrap(pool);
  await client.query("SELECT 1");
  return {
    kind: "postgres",
    query: client.query,
    exec: client.exec,
    async transaction(work) {
      const conn = await pool.connect();
      try {
        // Explicit: the lock-then-recheck patterns (key destruction) rely on a fresh snapshot per
        // statement, whatever default_transaction_isolation the database or role sets.
        await conn.query("BEGIN ISOLATION LEVEL READ COMMITTED");
        const result = await work(wrap(conn));
        await conn.query("COMMIT");
        return result;
      } catch (err) {
        await conn.query("ROLLBACK").catch(() => undefined);
        throw err;
      } finally {
        conn.release();
      }
    },
    async tryAdvisoryLock(namespace, key) {
      const lockClient = new pg.Client(connection);
      lockClient.on("error", () => undefined);
      await lockClient.connect();
      try {
        const { rows } = await lockClient.query<{ ok: boolean }>(
          "SELECT pg_try_advisory_lock($1::int, $2::int) AS ok",
          [namespace, key],
        );
        if (rows[0]?.ok === true) {
          return async () => {
            await lockClient
              .query("SELECT pg_advisory_unlock($1::int, $2::int)", [namespace, key])
              .catch(() => undefined);
            await lockClient.end().catch(() => undefined);
          };
        }
      } catch (err) {
        await lockClient.end().catch(() => undefined);
        throw err;
      }
      await lockClient.end().catch(() => undefined);
      return undefined;
    },
    close: () => pool.end(),
  };
}
