import { randomBytes } from "node:crypto";
import pg from "pg";
import { POSTGRES_URL } from "./databases.js";

/**
 * Where a CLI child's store lives: PGlite in its data directory (no settings), or a fresh
 * PostgreSQL schema named in the URL's startup options, so the child and the test process see
 * the same tables. `drop` removes the schema.
 */
export async function cliStoreEnv(driver: "pglite" | "postgres"): Promise<{
  env: Record<string, string>;
  drop: () => Promise<void>;
}> {
  if (driver === "pglite") return { env: {}, drop: async () => undefined };
  const schema = `pv_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const url = new URL(POSTGRES_URL as string);
  url.searchParams.set("options", `-c search_path=${schema}`);
  return {
    env: { DATABASE_URL: url.toString() },
    async drop() {
      const cleanup = new pg.Client({ connectionString: POSTGRES_URL });
      await cleanup.connect();
      await cleanup.query(`DROP SCHEMA ${schema} CASCADE`);
      await cleanup.end();
    },
  };
}
