import { userInfo } from "node:os";
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

/**
 * The actor recorded for CLI actions: the operating-system account that ran them, from the
 * process's uid (getpwuid), never from $USER or $LOGNAME, which the caller sets at will. Two-person
 * control from the CLI therefore needs two OS accounts (with group access to the data directory);
 * the HTTP ceremony routes take two different sys:admin API keys (PCI DSS 3.6.1.2, 3.7.6).
 */
export function cliActor(): string {
  const { username, uid } = userInfo();
  return `cli:${username || `uid-${uid}`}`;
}
