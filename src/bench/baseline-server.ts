import { join } from "node:path";
import { openStore } from "../app/core.js";
import { loadConfig } from "../config/config.js";
import { selfSignedLocalhost } from "../http/tls.js";
import { createLogger } from "../log/logger.js";
import { BARE_SCHEMA_SQL } from "./bare-schema.js";
import { buildBaselineApp } from "./baseline-app.js";

/**
 * The benchmark's baseline server, a process of its own like the vault: configured from the same
 * PAYVAULT_* variables (port, host, data directory, DATABASE_URL, pool size, log level) and
 * opening the store exactly as the vault does (openStore), so the only difference the
 * benchmark sees is the vault's logic. Stops on SIGINT/SIGTERM.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const store = await openStore(config);
  await store.db.exec(BARE_SCHEMA_SQL);
  const tls = await selfSignedLocalhost(join(config.dataDir));
  const app = buildBaselineApp(store.db, logger, tls);
  await app.listen({ port: config.port, host: config.host });
  logger.info({ store: store.db.kind }, "baseline listening");
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await app.close();
  await store.db.close();
  await store.release();
  logger.flush();
}

main().catch((err: unknown) => {
  process.stderr.write(`baseline: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
