import type { Config } from "../../config/config.js";

/** STUB (issue 6, being written): `payvault webhooks dlq list|replay|purge`. */
export async function runWebhooks(_config: Config, _args: string[]): Promise<number> {
  return 2;
}
