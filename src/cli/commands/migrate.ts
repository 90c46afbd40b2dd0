import { parseArgs } from "node:util";
import { openStore } from "../../app/core.js";
import type { Config } from "../../config/config.js";
import { migrate } from "../../store/migrate.js";

export async function runMigrate(config: Config, args: string[]): Promise<number> {
  parseArgs({ args, options: {} });
  const { db, release } = await openStore(config);
  try {
    const applied = await migrate(db);
    process.stdout.write(
      applied.length === 0
        ? "schema is up to date\n"
        : `applied migrations: ${applied.join(", ")}\n`,
    );
    return 0;
  } finally {
    await db.close();
    await release();
  }
}
