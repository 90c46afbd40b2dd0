import type { Core } from "../app/core.js";
import { VaultError } from "../errors/registry.js";
import { ENVIRONMENTS } from "../keys/key-manager.js";
import { deleteFinished } from "../queue/queue-table.js";

export interface MaintenanceOptions {
  readonly intervalMs: number;
  readonly autoReencrypt: boolean;
  readonly onError: (err: unknown) => void;
}

export interface MaintenanceReport {
  readonly tokensPurged: number;
  readonly keysDestroyed: number;
  readonly rewrapped: number;
  readonly reencrypted: number;
  /** Capture and session keys replaced at the end of their cryptoperiod. */
  readonly joseKeysRotated: number;
  /** The admin access-token signing key replaced at the end of its cryptoperiod. */
  readonly accessTokenKeysRotated: number;
  /** Processed webhook events and completed deliveries past their 30 days, deleted. */
  readonly webhookRowsDeleted: number;
}

/** How long processed webhook events and completed deliveries are kept (docs/webhooks.md). */
export const FINISHED_WEBHOOK_ROWS_KEPT_MS = 30 * 86_400_000;

const ACTOR = "system:maintenance";

/**
 * One pass of the scheduled key and retention work (PCI DSS 3.2.1, 3.7.4, 3.7.5): purge tokens
 * past retention and shred the epoch keys left empty; finish any KEK re-wrap an interrupted
 * rotation left; and (when enabled) move tokens off keys retired by their cryptoperiod. Every
 * step is compare-and-set or holds a cluster-wide lock, so passes on several nodes at once are
 * safe. A re-wrap another node is running (a KEK rotation) is left to it. `signal` stops a
 * re-encryption job between batches (it stays running; the next pass finishes it).
 */
export async function runMaintenance(
  core: Core,
  autoReencrypt: boolean,
  signal?: AbortSignal,
): Promise<MaintenanceReport> {
  const purge = await core.retention.purge(ACTOR);
  let rewrapped = 0;
  for (const environment of ENVIRONMENTS) {
    try {
      rewrapped += await core.lifecycle.rewrap(environment, ACTOR);
    } catch (err) {
      if (!(err instanceof VaultError && err.code === "ROTATION_IN_PROGRESS")) throw err;
    }
  }
  const reencrypted = autoReencrypt ? await core.lifecycle.reencryptStale(ACTOR, signal) : 0;
  // Capture and session keys past their cryptoperiod (the old ones stay accepted for the overlap).
  const joseKeysRotated = (await core.joseKeys.rotateDue(ACTOR)).length;
  const accessTokenKeysRotated = (await core.accessTokenKeys.rotateDue(ACTOR)).length;
  const horizon = new Date(core.clock.now().getTime() - FINISHED_WEBHOOK_ROWS_KEPT_MS);
  const webhookRowsDeleted =
    (await deleteFinished(core.db, "webhook_events", horizon)) +
    (await deleteFinished(core.db, "event_deliveries", horizon));
  return {
    webhookRowsDeleted,
    joseKeysRotated,
    accessTokenKeysRotated,
    tokensPurged: purge.tokensPurged,
    keysDestroyed: purge.keysDestroyed.length,
    rewrapped,
    reencrypted,
  };
}

/** Runs maintenance every `intervalMs` while the vault is unsealed; returns a stopper. */
export function scheduleMaintenance(core: Core, options: MaintenanceOptions): () => Promise<void> {
  if (options.intervalMs === 0) return async () => undefined;
  let running: Promise<unknown> | undefined;
  // A job may wait for other nodes to stop using retired keys: stopping must not wait for it.
  const stop = new AbortController();
  const timer = setInterval(() => {
    if (running !== undefined || core.sealStatus().sealed) return;
    running = runMaintenance(core, options.autoReencrypt, stop.signal)
      .catch(options.onError)
      .finally(() => {
        running = undefined;
      });
  }, options.intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    stop.abort();
    await running;
  };
}
