import type { Clock } from "../services/clock.js";
import type { EphemeralStore } from "./ephemeral-store.js";
import { MemoryEphemeralStore } from "./memory-ephemeral-store.js";

export interface EphemeralStoreSettings {
  /** When set, every node shares one Redis; otherwise entries live in this process. */
  readonly redisUrl?: string | undefined;
  readonly prefix?: string;
  /** The memory adapter's clock (Redis keeps its own time). */
  readonly clock?: Clock;
  readonly onError?: (reason: string) => void;
}

/**
 * Opens the configured store: Redis when REDIS_URL is set (several vault nodes share it), else
 * memory. The Redis client loads on demand, so the embedded default never imports it. A Redis
 * that cannot be reached at start fails the start (EphemeralStoreUnavailableError).
 */
export async function openEphemeralStore(
  settings: EphemeralStoreSettings = {},
): Promise<EphemeralStore> {
  const prefix = settings.prefix === undefined ? {} : { prefix: settings.prefix };
  if (settings.redisUrl === undefined || settings.redisUrl === "") {
    return new MemoryEphemeralStore({
      ...prefix,
      ...(settings.clock === undefined ? {} : { clock: settings.clock }),
    });
  }
  const { RedisEphemeralStore } = await import("./redis-ephemeral-store.js");
  return RedisEphemeralStore.connect({
    url: settings.redisUrl,
    ...prefix,
    ...(settings.onError === undefined ? {} : { onError: settings.onError }),
  });
}
