import { randomBytes } from "node:crypto";
import pg from "pg";
import type { Database } from "../../src/store/database.js";
import { openPgliteDatabase } from "../../src/store/pglite-database.js";
import { openPostgresDatabase } from "../../src/store/postgres-database.js";

export interface TestDatabase {
  readonly db: Database;
  drop(): Promise<void>;
}

export interface Driver {
  readonly name: "pglite" | "postgres";
  open(): Promise<TestDatabase>;
}

/** PostgreSQL suites run when DATABASE_URL is set (CI sets it); otherwise they are skipped. */
export const POSTGRES_URL = process.env.DATABASE_URL;

const pglite: Driver = {
  name: "pglite",
  async open() {
    const db = await openPgliteDatabase(undefined);
    return { db, drop: () => db.close() };
  },
};

/** Each test database is a fresh schema, so parallel runs and files never collide. */
const postgres: Driver = {
  name: "postgres",
  async open() {
    const url = POSTGRES_URL as string;
    const schema = `pv_test_${randomBytes(6).toString("hex")}`;
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.end();
    const db = await openPostgresDatabase({ connectionString: url, poolSize: 8, schema });
    return {
      db,
      async drop() {
        await db.close();
        const cleanup = new pg.Client({ connectionString: url });
        await cleanup.connect();
        await cleanup.query(`DROP SCHEMA ${schema} CASCADE`);
        await cleanup.end();
      },
    };
  },
};

export const DRIVERS: readonly Driver[] =
  POSTGRES_URL === undefined ? [pglite] : [pglite, postgres];
