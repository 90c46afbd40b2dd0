import type { Core } from "../../app/core.js";
import { openCore } from "../../app/core.js";
import type { Config } from "../../config/config.js";

/** Runs a CLI command against the vault's store and keys, then seals its audit events and closes. */
export async function withCore<T>(config: Config, work: (core: Core) => Promise<T>): Promise<T> {
  const core = await openCore(config);
  try {
    return await work(core);
  } finally {
    await core.sealer.sealPending().catch(() => undefined);
    await core.close();
  }
}

/** The actor recorded for CLI actions: the operating-system user who ran them. */
export function cliActor(): string {
  return `cli:${process.env.USER ?? process.env.LOGNAME ?? "unknown"}`;
}
