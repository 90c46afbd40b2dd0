import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/store/database.js";
import { withExclusiveLock } from "../../src/store/key-lifecycle-repo.js";
import { openPostgresDatabase } from "../../src/store/postgres-database.js";
import { POSTGRES_URL } from "../support/databases.js";

// The cluster-wide lock of KEK rotation, re-wrap and DEK job start (issue 3) on PostgreSQL.
describe.skipIf(POSTGRES_URL === undefined)("withExclusiveLock on PostgreSQL", () => {
  const schema = `pv_lock_${randomBytes(6).toString("hex")}`;
  const url = POSTGRES_URL as string;
  let small: Database;
  let other: Database;

  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.end();
    // A pool of one connection: the lock must not take the connection the work needs.
    small = await openPostgresDatabase({ connectionString: url, poolSize: 1, schema });
    other = await openPostgresDatabase({ connectionString: url, poolSize: 2, schema });
  });
  afterAll(async () => {
    await small?.close();
    await other?.close();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });

  it("runs sections that query the store even with a pool of one, two at once on different locks", async () => {
    const section = (name: string) =>
      withExclusiveLock(small, name, async () => {
        const { rows } = await small.query<{ n: number }>("SELECT 1::int AS n");
        return rows[0]?.n;
      });
    const outcome = await Promise.race([
      Promise.all([section("test:kek:live"), section("test:kek:test")]),
      new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 10_000)),
    ]);
    expect(outcome).toEqual([
      { acquired: true, value: 1 },
      { acquired: true, value: 1 },
    ]);
  });

  it("refuses a second holder on another node at once, and frees the lock when the first ends", async () => {
    let release!: () => void;
    const held = withExclusiveLock(
      small,
      "test:kek:live",
      () =>
        new Promise<void>((r) => {
          release = r;
        }),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await withExclusiveLock(other, "test:kek:live", async () => "second")).toEqual({
      acquired: false,
    });
    release();
    expect(await held).toEqual({ acquired: true, value: undefined });
    expect(await withExclusiveLock(other, "test:kek:live", async () => "second")).toEqual({
      acquired: true,
      value: "second",
    });
  });
});
