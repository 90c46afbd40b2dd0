import { parseArgs } from "node:util";
import { openCore } from "../../app/core.js";
import type { Config } from "../../config/config.js";
import { createLogger } from "../../log/logger.js";
import { startServer } from "../../server.js";

export async function runServe(config: Config, args: string[]): Promise<number> {
  parseArgs({ args, options: {} });
  const logger = createLogger(config.logLevel);
  const core = await openCore(config);
  const server = await startServer(core, config, logger);
  logger.info(
    {
      url: server.url,
      store: core.db.kind,
      kek: core.keyManager.kind,
      sealed: core.sealStatus().sealed,
      client_cert_auth: config.clientCertAuth?.mode ?? "off",
    },
    "payvault listening",
  );
  if (server.tls?.selfSigned) {
    process.stdout.write(
      `payvault: serving ${server.url} with a self-signed certificate (${config.dataDir}/tls/localhost.crt)\n`,
    );
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  logger.info("payvault stopping");
  await server.stop();
  await core.close();
  logger.flush();
  return 0;
}
