import { PGlite, types } from "@electric-sql/pglite";
import type { Database, QueryResult, SqlClient } from "./database.js";

/** PGlite returns `bytea` as Uint8Array; repositories work with Buffer. */
function toBuffers<Row>(rows: Row[]): Row[] {
  for (const row of rows) {
    const record = row as Record<string, unknown>;
    for (const key in record) {
      const value = record[key];
      if (value instanceof Uint8Array && !Buffer.isBuffer(value)) {
        record[key] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      }
    }
  }
  return rows;
}

function wrap(client: Pick<PGlite, "query" | "exec">): SqlClient {
  return {
    async query<Row>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<Row>> {
      const result = await client.query<Row>(sql, params as unknown[]);
      return { rows: toBuffers(result.rows), rowCount: result.affectedRows ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await client.exec(sql);
    },
  };
}

/**
 * The embedded default: PostgreSQL compiled to WebAssembly, in this process, persisted in a data
 * directory. One process at a time may open a data directory (see `data-dir-lock.ts`).
 */
export async function openPgliteDatabase(dataDir: string | undefined): Promise<Database> {
  const options = { parsers: { [types.INT8]: (value: string) => Number(value) } };
  // No data directory: an in-memory instance (tests and throwaway runs).
  const pg = dataDir === undefined ? new PGlite(options) : new PGlite(dataDir, options);
  await pg.waitReady;
  const client = wrap(pg);
  return {
    kind: "pglite",
    query: client.query,
    exec: client.exec,
    transaction: (work) => pg.transaction((tx) => work(wrap(tx))),
    // One process owns a PGlite data directory: the callers' in-process guard is the lock.
    tryAdvisoryLock: async () => async () => undefined,
    close: () => pg.close(),
  };
}
