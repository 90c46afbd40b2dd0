import pg from "pg";
import { describe, expect, it } from "vitest";
import { DRIVERS, POSTGRES_URL } from "../support/databases.js";

// Shows up as a skipped test when DATABASE_URL is absent, so the skip is visible in the counts.
describe("PostgreSQL suites", () => {
  it.skipIf(POSTGRES_URL === undefined)("run against a reachable PostgreSQL", async () => {
    expect(DRIVERS.map((d) => d.name)).toContain("postgres");
    const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 5000 });
    await client.connect();
    const { rows } = await client.query<{ v: string }>(
      "SELECT current_setting('server_version_num') AS v",
    );
    await client.end();
    expect(Number(rows[0]?.v ?? "0")).toBeGreaterThanOrEqual(130000);
  });
});
