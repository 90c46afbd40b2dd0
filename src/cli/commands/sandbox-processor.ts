import type { Config } from "../../config/config.js";

/** STUB (issue 6, being written): `payvault sandbox-processor`. */
export async function runSandboxProcessor(_config: Config, _args: string[]): Promise<number> {
  return 2;
}
